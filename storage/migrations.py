"""The schema, as append-only migrations: never edit one that has shipped, add the next."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("chat")


@migrations()
def m001_create_conversations_and_entries(db: Database) -> None:
    db["conversations"].create(
        {
            "id": str,
            "scope": str,
            "head_id": str,
            "revision": str,
            "branches_json": str,
            "record_json": str,
            "title": str,
            "model": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["conversations"].create_index(["scope", "updated_at"])
    db["entries"].create(
        {
            "id": str,
            "parent_id": str,
            "conversation_id": str,
            "kind": str,
            "message_json": str,
            "text": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("parent_id", "entries", "id")],
    )
    db["entries"].create_index(["conversation_id"])
    db["entries"].create_index(["parent_id"])


@migrations()
def m002_full_text_search_over_messages(db: Database) -> None:
    # trigram: substring search that works for Chinese and Japanese, which have no spaces between words.
    db["entries"].enable_fts(["text"], tokenize="trigram", create_triggers=True)


@migrations()
def m003_conversation_kind(db: Database) -> None:
    # Recipe generations are stored as conversations too; the kind keeps them out of the chat sidebar.
    db["conversations"].add_column("kind", str, not_null_default="chat")
    db["conversations"].create_index(["scope", "kind", "updated_at"])


@migrations()
def m004_context_policy_and_summaries(db: Database) -> None:
    db["conversations"].add_column("context_policy", str, not_null_default="")
    db["summaries"].create(
        {"conversation_id": str, "scope": str, "summary": str, "covered": int, "updated_at": str},
        pk="conversation_id",
    )


@migrations()
def m005_handoff_runs_are_chats(db: Database) -> None:
    # Analyst -> writer runs were kept out of the sidebar; they are conversations a visitor looks for.
    db.execute("UPDATE conversations SET kind = 'chat' WHERE kind = 'handoff'")


@migrations()
def m006_running_turns(db: Database) -> None:
    # storage/turn_journal.py: a turn's prompt and partial answer until the turn is saved.
    db["running_turns"].create(
        {
            "turn_id": str,
            "scope": str,
            "conversation_id": str,
            "prompt": str,
            "model": str,
            "server_id": str,
            "started_at": str,
        },
        pk="turn_id",
    )
    db["running_turn_text"].create({"id": int, "turn_id": str, "text": str}, pk="id")
    db["running_turn_text"].create_index(["turn_id"])


@migrations()
def m007_server_secrets(db: Database) -> None:
    # Secrets the server keeps to itself (the key that signs visitor cookies), made once per database.
    db["server_secrets"].create({"name": str, "value": str}, pk="name")


@migrations()
def m008_stored_bytes_per_conversation(db: Database) -> None:
    # Each save adds its new messages' size here, so a visitor's stored total is one indexed sum.
    db["conversations"].add_column("stored_bytes", int, not_null_default=0)
    db.execute(
        "UPDATE conversations SET stored_bytes = (SELECT COALESCE(SUM(length(CAST(message_json AS BLOB))"
        " + length(CAST(text AS BLOB))), 0) FROM entries WHERE entries.conversation_id = conversations.id)"
    )


@migrations()
def m009_search_without_a_full_text_index(db: Database) -> None:
    # Search reads the visitor's own messages (storage/sql_catalogue.py): an index over every visitor's
    # text made each search's cost grow with the whole database, and every save write it twice.
    db["entries"].disable_fts()
