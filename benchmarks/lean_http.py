"""A bare HTTP/1.1 connection for load generators that must act on time: it costs microseconds per request.

The Stop benchmark drives 200 answers and then presses 200 Stops from one Python process, on the
same two cores as the server. With httpx, that process itself fell behind by one to three seconds
when it pressed: each Stop opened a connection of its own (200 at once) and went through httpx's
layers, and its event loop stalled while it did. The benchmark counted that stall as the server's.
A browser presses Stop on a connection it already holds (the page's own), so here each visitor
opens its connection before the answers start, and a press is one write on it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode, urlsplit


class LeanConnection:
    """One keep-alive connection to the app: JSON posts with their status, and SSE streams read raw."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, prefix: str) -> None:
        self._reader, self._writer, self._host, self._prefix = reader, writer, host, prefix

    @classmethod
    async def open(cls, base_url: str) -> LeanConnection:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"plain http only: {base_url}")
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        return cls(reader, writer, parts.netloc, parts.path.rstrip("/"))

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def post_json(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """POST `body` as JSON, with `headers` besides the content's, and read the whole response: its
        status and body."""
        payload = json.dumps(body).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode()
        self._send(
            "POST", path, b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(payload) + extra, payload
        )
        await self._writer.drain()
        status, response_headers = await self._read_head()
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            return status, await self._read_chunked()
        return status, await self._reader.readexactly(int(response_headers.get("content-length", "0")))

    async def read_stream_until(
        self,
        path: str,
        query: dict[str, str],
        marker: bytes | None,
        on_data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """GET an event stream and read it until `marker` appears or `on_data` returns True (the connection
        is spent afterwards).

        `on_data(block)` sees every block as it arrives; events are matched in the raw bytes (a marker
        split across two reads is still found), which is all a load generator needs to know."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode()
        self._send("GET", f"{path}?{urlencode(query)}", b"Accept: text/event-stream\r\n" + extra)
        await self._writer.drain()
        status, _ = await self._read_head()
        if status != 200:
            raise ConnectionError(f"stream answered {status}")
        tail = b""
        while True:
            block = await self._reader.read(65536)
            if not block:
                raise ConnectionError("the stream ended before its last event")
            if on_data is not None and on_data(block):
                return
            if marker is not None:
                if marker in tail + block:
                    return
                tail = block[-len(marker) :]

    def _send(self, method: str, path: str, headers: bytes, body: bytes = b"") -> None:
        head = f"{method} {self._prefix}/{path.lstrip('/')} HTTP/1.1\r\nHost: {self._host}\r\n".encode()
        self._writer.write(head + headers + b"\r\n" + body)

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        lines = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await self._reader.readexactly(size + 2))[:-2]
            if size == 0:
                return body
