"""How much one visitor may keep stored: a script sending turn after turn must not fill the server's disk."""

from __future__ import annotations

from chat.errors import StorageFull
from storage.catalogue import CataloguedStore


class StoredDataQuota:
    def __init__(self, store: CataloguedStore, max_bytes: int | None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        """None: no limit."""

    async def check(self, owner: str, adding: int = 0) -> None:
        """`StorageFull` when the owner already holds the most they may, or would with `adding` more bytes.

        Checked as a run starts, not as it saves: a run that started is never lost for the quota's sake,
        so a visitor goes over by at most the answers they had running."""
        if self.max_bytes is None:
            return
        stored = await self.store.stored_bytes(owner)
        if stored + adding > self.max_bytes or (not adding and stored >= self.max_bytes):
            raise StorageFull(readable_size(stored + adding), readable_size(self.max_bytes))


def readable_size(size: int) -> str:
    if size < 1_000_000:
        return f"{max(size // 1000, 1)} kB"
    return f"{size / 1_000_000:.1f} MB".replace(".0 MB", " MB")
