"""Reading a store's tables directly in tests, on SQLite or PostgreSQL alike."""

from __future__ import annotations


def query(store, sql: str, params: list | tuple = ()) -> list[tuple]:
    """Rows of `sql` (written with SQLite's `?` placeholders) on the store's own database."""
    if hasattr(store, "pool"):  # PostgreSQL
        with store.read() as connection:
            return [tuple(row) for row in connection.execute(sql.replace("?", "%s"), list(params)).fetchall()]
    return store.db.execute(sql, list(params)).fetchall()
