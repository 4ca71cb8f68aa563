"""The turn journal (storage/turn_journal.py) on a SQL database, written once for SQLite and PostgreSQL: one
row when a turn starts, one append-only row per checkpoint, both deleted when the turn is saved.

A backend says only how it tells that a server is gone (`server_gone`), what marks its own server as
running (`mark_alive`), and whether it is itself marked so now (`judges_others`).
"""

from __future__ import annotations

import uuid
from abc import abstractmethod

from storage.sql_database import SQLDatabase, Statements, now, off_the_event_loop
from storage.turn_journal import TurnJournal, UnfinishedTurn


class SQLTurnJournal(TurnJournal):
    def __init__(self, database: SQLDatabase, server_id: str | None = None) -> None:
        super().__init__(server_id)
        self.database = database

    def mark_alive(self) -> None:
        """Before this server writes a turn or claims another's: whatever lets other servers see it runs."""

    def judges_others(self, statements: Statements) -> bool:
        """Whether this server is marked as running now, as its peers see it: until it is (again), it judges
        no other server gone."""
        return True

    @abstractmethod
    def server_gone(self, statements: Statements, server_id: str) -> bool:
        """Whether the server that wrote a turn has stopped, so its turns are for this one to put back."""

    def forget_server(self, statements: Statements, server_id: str) -> None:
        """A server found gone: whatever marked it as running can go too."""

    @off_the_event_loop
    def begin(self, scope: str, conversation_id: str, prompt: str, model: str) -> str:
        self.mark_alive()
        turn_id = uuid.uuid4().hex
        with self.database.connection() as statements:
            statements.execute(
                "INSERT INTO running_turns (turn_id, scope, conversation_id, prompt, model, server_id, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [turn_id, scope, conversation_id, prompt, model, self.server_id, now()],
            )
        return turn_id

    @off_the_event_loop
    def append(self, turn_id: str, text: str) -> None:
        if not text:
            return
        with self.database.connection() as statements:
            # A checkpoint that meets the turn's save either lands before it (the save, deleting the turn's row
            # first, waits for it, then deletes its text too) or finds no turn to add to.
            statements.execute(
                "INSERT INTO running_turn_text (turn_id, text)"
                f" SELECT turn_id, ? FROM running_turns WHERE turn_id = ?{self.database.dialect.lock_to_share}",
                [text, turn_id],
            )

    @off_the_event_loop
    def finish(self, turn_id: str) -> None:
        with self.database.transaction() as statements:
            end_turn_in(statements, turn_id)

    @off_the_event_loop
    def left_by_earlier_servers(self, only: tuple[str, str] | None = None) -> list[UnfinishedTurn]:
        self.mark_alive()
        unfinished = []
        sql = "SELECT turn_id, scope, conversation_id, prompt, model, server_id FROM running_turns WHERE server_id != ?"
        params = [self.server_id]
        if only is not None:
            sql += " AND scope = ? AND conversation_id = ?"
            params += list(only)
        with self.database.connection() as statements:
            turns = statements.execute(sql + " ORDER BY started_at", params).fetchall()
            if turns and not self.judges_others(statements):
                return []  # this server is not (again) seen running yet: it judges nobody before it is
            judged: dict[str, bool] = {}
            for turn_id, scope, conversation_id, prompt, model, server_id in turns:
                if server_id not in judged:
                    judged[server_id] = self.server_gone(statements, server_id)
                    if judged[server_id]:
                        self.forget_server(statements, server_id)
                if not judged[server_id]:
                    continue  # that server still runs: its turns are its own
                claimed = statements.execute(
                    "UPDATE running_turns SET server_id = ? WHERE turn_id = ? AND server_id = ?",
                    [self.server_id, turn_id, server_id],
                ).rowcount
                if not claimed:
                    continue  # another server is putting it back
                texts = statements.execute(
                    "SELECT text FROM running_turn_text WHERE turn_id = ? ORDER BY id", [turn_id]
                ).fetchall()
                partial = "".join(text for (text,) in texts)
                unfinished.append(UnfinishedTurn(turn_id, scope, conversation_id, prompt, model, partial))
        return unfinished

    @off_the_event_loop
    def running(self, scope: str, conversation_id: str) -> bool:
        with self.database.connection() as statements:
            sql = "SELECT 1 FROM running_turns WHERE scope = ? AND conversation_id = ? LIMIT 1"
            return statements.execute(sql, [scope, conversation_id]).fetchone() is not None


def end_turn_in(statements: Statements, turn_id: str) -> None:
    """`finish`'s deletes, inside a transaction already open (its own, or the turn's save); the turn's row
    first, so a checkpoint being written meanwhile is waited for (see `append`)."""
    statements.execute("DELETE FROM running_turns WHERE turn_id = ?", [turn_id])
    statements.execute("DELETE FROM running_turn_text WHERE turn_id = ?", [turn_id])
