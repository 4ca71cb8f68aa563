"""Turns in progress, written down as they stream, so a server that dies mid-answer loses almost nothing.

The conversation itself is saved through pydantic-ai's `ConversationStore` when a turn ends (complete,
stopped or failed). Until then, the prompt and the answer so far live here, in the same SQLite file:
one row when the turn starts, then one small row per checkpoint (append-only, whatever the length of
the conversation). A turn that ends normally deletes its rows; rows left by a server that was killed
are what `left_by_earlier_servers` finds at the next start.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.sqlite_store import SQLiteConversationStore


@dataclass(frozen=True)
class UnfinishedTurn:
    turn_id: str
    scope: str
    conversation_id: str
    prompt: str
    model: str
    partial: str
    """The answer as far as its last checkpoint."""


class TurnJournal:
    def __init__(self, store: SQLiteConversationStore, server_id: str | None = None) -> None:
        self.store = store
        self.server_id = server_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        """This server process (host, pid, a random part, since a restarted container often reuses its pid)."""

    def begin(self, scope: str, conversation_id: str, prompt: str, model: str) -> str:
        turn_id = uuid.uuid4().hex
        self.store.db.execute(
            "INSERT INTO running_turns (turn_id, scope, conversation_id, prompt, model, server_id, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [turn_id, scope, conversation_id, prompt, model, self.server_id, datetime.now(UTC).isoformat()],
        )
        return turn_id

    def append(self, turn_id: str, text: str) -> None:
        """The answer's text since the previous checkpoint."""
        if text:
            self.store.db.execute("INSERT INTO running_turn_text (turn_id, text) VALUES (?, ?)", [turn_id, text])

    def finish(self, turn_id: str) -> None:
        connection = self.store.db.conn
        connection.execute("DELETE FROM running_turn_text WHERE turn_id = ?", [turn_id])
        connection.execute("DELETE FROM running_turns WHERE turn_id = ?", [turn_id])

    def left_by_earlier_servers(self) -> list[UnfinishedTurn]:
        """Turns of server processes that are gone; a process still running on this host keeps its own."""
        db = self.store.db
        turns = db.execute(
            "SELECT turn_id, scope, conversation_id, prompt, model, server_id FROM running_turns"
            " WHERE server_id != ? ORDER BY started_at",
            [self.server_id],
        ).fetchall()
        unfinished = []
        for turn_id, scope, conversation_id, prompt, model, server_id in turns:
            if _still_running(server_id):
                continue
            texts = db.execute("SELECT text FROM running_turn_text WHERE turn_id = ? ORDER BY id", [turn_id])
            partial = "".join(text for (text,) in texts)
            unfinished.append(UnfinishedTurn(turn_id, scope, conversation_id, prompt, model, partial))
        return unfinished


def _still_running(server_id: str) -> bool:
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
