"""Reading a store's tables directly in tests, on SQLite or PostgreSQL alike."""

from __future__ import annotations


def query(store, sql: str, params: list | tuple = ()) -> list[tuple]:
    """Rows of `sql` (written with `?` marks, as the store's own SQL is) on the store's own database."""
    with store.connection() as statements:
        return [tuple(row) for row in statements.execute(sql, list(params)).fetchall()]
