"""Reading a store's tables directly in tests, on SQLite or PostgreSQL alike, and the tests' own PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def query(store, sql: str, params: list | tuple = ()) -> list[tuple]:
    """Rows of `sql` (written with `?` marks, as the store's own SQL is) on the store's own database."""
    with store.connection() as statements:
        return [tuple(row) for row in statements.execute(sql, list(params)).fetchall()]


@contextmanager
def throwaway_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of the tests' own (initdb in /tmp): stopped at once and removed when done."""
    from deploy.local_postgres import LocalPostgres

    server = LocalPostgres.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)
