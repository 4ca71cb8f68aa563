"""Turns in progress, written down as they stream, so a server that dies mid-answer loses almost nothing.

The conversation itself is saved through pydantic-ai's `ConversationStore` when a turn ends (complete,
stopped or failed). Until then, the prompt and the answer so far live here, in the same database: one
row when the turn starts, then one small row per checkpoint (append-only, whatever the length of the
conversation). A turn that ends normally deletes its rows; rows left by a server that was killed are
what `left_by_earlier_servers` finds at the next start.

On SQL databases: storage/sql_journal.py, with how each backend tells which servers are gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass


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
        """Turns that ended while the database was away, their entries still to end (`chat.wings.journal`)."""

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
    async def left_by_earlier_servers(self, only: tuple[str, str] | None = None) -> list[UnfinishedTurn]:
        """Turns of server processes that are gone (`only` those of one (scope, conversation id)), each claimed
        for this server (so that of two replicas looking at once, one puts it back); a server still running
        keeps its own."""

    @abstractmethod
    async def running(self, scope: str, conversation_id: str) -> bool:
        """Whether a turn of this conversation is running on any server (saved turns leave no rows)."""

    def close(self) -> None:
        """This server is going: let go of what marks it as running."""
