"""pydantic-ai's `ConversationStore` and the app's catalogue on a SQLite file: the store written once for
SQL (storage/sql_store.py) over the SQLite database (storage/sqlite_database.py), and how its journal tells that
a server is gone: on one host, a process id that no longer runs."""

from __future__ import annotations

import os
import socket

from storage.sql_database import Statements
from storage.sql_journal import SQLTurnJournal
from storage.sql_store import SQLConversationStore
from storage.sqlite_database import SQLiteDatabase


class SQLiteTurnJournal(SQLTurnJournal):
    def server_gone(self, statements: Statements, server_id: str) -> bool:
        return not _process_still_running(server_id)


class SQLiteConversationStore(SQLiteDatabase, SQLConversationStore):
    journal_type = SQLiteTurnJournal


def _process_still_running(server_id: str) -> bool:
    host, _, rest = server_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
