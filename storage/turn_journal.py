"""Turns in progress, written down as they stream, so a server that dies mid-answer loses almost nothing.

The conversation itself is saved through pydantic-ai's `ConversationStore` when a turn ends (complete,
stopped or failed). Until then, the prompt and the answer so far live here, in the same database: one
row when the turn starts, then one small row per checkpoint (append-only, whatever the length of the
conversation). A turn that ends normally deletes its rows; rows left by a server that was killed are
what `left_by_earlier_servers` finds at the next start.

Which servers are gone: on SQLite (one host) a process id that no longer runs; on PostgreSQL (replicas
on any host) a server whose session lock PostgreSQL no longer holds, since it ends with its connection.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from storage.database import SQLiteDatabase, off_the_event_loop

if TYPE_CHECKING:
    import psycopg

    from storage.postgres_database import PostgresDatabase


@dataclass(frozen=True)
class UnfinishedTurn:
    turn_id: str
    scope: str
    conversation_id: str
    prompt: str
    model: str
    partial: str
    """The answer as far as its last checkpoint."""


class TurnJournal(ABC):
    def __init__(self, server_id: str | None = None) -> None:
        self.server_id = server_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        """This server process (host, pid, a random part, since a restarted container often reuses its pid)."""
        self.ends_owed: set[str] = set()
        """Turns that ended while the database was away, their entries still to end (`chat.journal`)."""

    @abstractmethod
    async def begin(self, scope: str, conversation_id: str, prompt: str, model: str) -> str:
        """A new turn's prompt, before the model is asked; returns the turn's id."""

    @abstractmethod
    async def append(self, turn_id: str, text: str) -> None:
        """The answer's text since the previous checkpoint."""

    @abstractmethod
    async def finish(self, turn_id: str) -> None:
        """The turn is saved (or was put back): nothing of it to keep."""

    @abstractmethod
    async def left_by_earlier_servers(self) -> list[UnfinishedTurn]:
        """Turns of server processes that are gone, each claimed for this server (so that of two replicas
        looking at once, one puts it back); a server still running keeps its own."""

    @abstractmethod
    async def running(self, scope: str, conversation_id: str) -> bool:
        """Whether a turn of this conversation is running on any server (saved turns leave no rows)."""

    def close(self) -> None:
        """This server is going: let go of what marks it as running."""


class SQLiteTurnJournal(TurnJournal):
    def __init__(self, database: SQLiteDatabase, server_id: str | None = None) -> None:
        super().__init__(server_id)
        self.database = database

    @off_the_event_loop
    def begin(self, scope: str, conversation_id: str, prompt: str, model: str) -> str:
        turn_id = uuid.uuid4().hex
        self.database.db.execute(
            "INSERT INTO running_turns (turn_id, scope, conversation_id, prompt, model, server_id, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [turn_id, scope, conversation_id, prompt, model, self.server_id, datetime.now(UTC).isoformat()],
        )
        return turn_id

    @off_the_event_loop
    def append(self, turn_id: str, text: str) -> None:
        if text:  # a checkpoint that comes after the turn's save (one writer at a time) finds no turn to add to
            self.database.db.execute(
                "INSERT INTO running_turn_text (turn_id, text) SELECT turn_id, ? FROM running_turns WHERE turn_id = ?",
                [text, turn_id],
            )

    @off_the_event_loop
    def finish(self, turn_id: str) -> None:
        with self.database.write() as connection:
            self.forget_in(connection, turn_id)

    @staticmethod
    def forget_in(connection: sqlite3.Connection, turn_id: str) -> None:
        """`finish`'s deletes, inside a transaction already open (its own, or the turn's save)."""
        connection.execute("DELETE FROM running_turns WHERE turn_id = ?", [turn_id])
        connection.execute("DELETE FROM running_turn_text WHERE turn_id = ?", [turn_id])

    @off_the_event_loop
    def left_by_earlier_servers(self) -> list[UnfinishedTurn]:
        db = self.database.db
        turns = db.execute(
            "SELECT turn_id, scope, conversation_id, prompt, model, server_id FROM running_turns"
            " WHERE server_id != ? ORDER BY started_at",
            [self.server_id],
        ).fetchall()
        unfinished = []
        for turn_id, scope, conversation_id, prompt, model, server_id in turns:
            if _process_still_running(server_id) or not self._claim(turn_id, server_id):
                continue
            texts = db.execute("SELECT text FROM running_turn_text WHERE turn_id = ? ORDER BY id", [turn_id])
            partial = "".join(text for (text,) in texts)
            unfinished.append(UnfinishedTurn(turn_id, scope, conversation_id, prompt, model, partial))
        return unfinished

    @off_the_event_loop
    def running(self, scope: str, conversation_id: str) -> bool:
        sql = "SELECT 1 FROM running_turns WHERE scope = ? AND conversation_id = ? LIMIT 1"
        return self.database.db.execute(sql, [scope, conversation_id]).fetchone() is not None

    def _claim(self, turn_id: str, gone_server: str) -> bool:
        sql = "UPDATE running_turns SET server_id = ? WHERE turn_id = ? AND server_id = ?"
        return self.database.db.execute(sql, [self.server_id, turn_id, gone_server]).rowcount == 1


class PostgresTurnJournal(TurnJournal):
    """The journal in PostgreSQL. This server holds a session lock named after its id on a connection of
    its own for as long as it lives; PostgreSQL releases it when that connection ends (exit, kill -9, a
    lost host), so a turn whose server's lock can be taken was left by a server that is gone."""

    def __init__(self, database: PostgresDatabase, server_id: str | None = None) -> None:
        super().__init__(server_id)
        self.database = database
        self._alive: psycopg.Connection | None = None
        self._taking = threading.Lock()

    def hold_alive_lock(self) -> None:
        import psycopg

        with self._taking:  # one connection takes it: a second one asking for the same lock would wait forever
            if self._alive is None:
                self._alive = psycopg.connect(self.database.url, autocommit=True)
                self._alive.execute("SELECT pg_advisory_lock(%s)", [_lock_key(self.server_id)])

    @off_the_event_loop
    def begin(self, scope: str, conversation_id: str, prompt: str, model: str) -> str:
        self.hold_alive_lock()
        turn_id = uuid.uuid4().hex
        with self.database.write() as connection:
            connection.execute(
                "INSERT INTO running_turns (turn_id, scope, conversation_id, prompt, model, server_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [turn_id, scope, conversation_id, prompt, model, self.server_id],
            )
        return turn_id

    @off_the_event_loop
    def append(self, turn_id: str, text: str) -> None:
        if text:
            with self.database.write() as connection:
                # Locks the turn's row, so a checkpoint that meets the turn's save either lands before it (and the
                # save, deleting the turn's row first, waits, then deletes its text too) or finds no turn to add to.
                connection.execute(
                    "INSERT INTO running_turn_text (turn_id, text)"
                    " SELECT turn_id, %s FROM running_turns WHERE turn_id = %s FOR SHARE",
                    [text, turn_id],
                )

    @off_the_event_loop
    def finish(self, turn_id: str) -> None:
        with self.database.write() as connection:
            self.forget_in(connection, turn_id)

    @staticmethod
    def forget_in(connection: psycopg.Connection, turn_id: str) -> None:
        """`finish`'s deletes, inside a transaction already open (its own, or the turn's save); the turn's row
        first, so a checkpoint being written meanwhile is waited for (see `append`)."""
        connection.execute("DELETE FROM running_turns WHERE turn_id = %s", [turn_id])
        connection.execute("DELETE FROM running_turn_text WHERE turn_id = %s", [turn_id])

    @off_the_event_loop
    def left_by_earlier_servers(self) -> list[UnfinishedTurn]:
        self.hold_alive_lock()
        unfinished = []
        with self.database.read() as connection:
            turns = connection.execute(
                "SELECT turn_id, scope, conversation_id, prompt, model, server_id FROM running_turns"
                " WHERE server_id != %s ORDER BY started_at",
                [self.server_id],
            ).fetchall()
            for turn_id, scope, conversation_id, prompt, model, server_id in turns:
                if not _lock_free(connection, server_id):
                    continue  # that server still runs: its turns are its own
                claimed = connection.execute(
                    "UPDATE running_turns SET server_id = %s WHERE turn_id = %s AND server_id = %s",
                    [self.server_id, turn_id, server_id],
                ).rowcount
                if not claimed:
                    continue  # another replica is putting it back
                texts = connection.execute(
                    "SELECT text FROM running_turn_text WHERE turn_id = %s ORDER BY id", [turn_id]
                ).fetchall()
                partial = "".join(text for (text,) in texts)
                unfinished.append(UnfinishedTurn(turn_id, scope, conversation_id, prompt, model, partial))
        return unfinished

    @off_the_event_loop
    def running(self, scope: str, conversation_id: str) -> bool:
        with self.database.read() as connection:
            sql = "SELECT 1 FROM running_turns WHERE scope = %s AND conversation_id = %s LIMIT 1"
            return connection.execute(sql, [scope, conversation_id]).fetchone() is not None

    def close(self) -> None:
        if self._alive is not None:
            self._alive.close()
            self._alive = None


def _lock_key(server_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(server_id.encode(), digest_size=8).digest(), "big", signed=True)


def _lock_free(connection: psycopg.Connection, server_id: str) -> bool:
    key = _lock_key(server_id)
    (taken,) = connection.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    if taken:
        connection.execute("SELECT pg_advisory_unlock(%s)", [key])
    return bool(taken)


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
