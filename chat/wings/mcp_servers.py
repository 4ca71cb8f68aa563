"""MCP servers the operator configured (`--mcp servers.json`, the common `mcpServers` format): their
tools join the chat agent's, through pydantic-ai's `MCPToolset`s.

Each server starts once, on the server's event loop, when the first turn (or the page's list of tools)
needs it, and stays up until the app stops. A config that cannot be read, or a server that does not
start, becomes one sentence for the page and a line in the log; the app and the other servers go on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_ai.toolsets import AbstractToolset

from chat.turn_hooks import Turn, TurnHooks
from chat.wings.tools import chat_tool_descriptions

log = logging.getLogger(__name__)


@dataclass
class McpServers(TurnHooks):
    """A wing: the configured servers' tools join every turn's run (started with the first turn that needs them)."""

    toolsets: list[AbstractToolset[Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """What the page says about servers that are not offered, one sentence each."""
    _started: bool = False
    _lock: asyncio.Lock | None = None

    @classmethod
    def load(cls, config: str | None) -> McpServers:
        """The servers of a config file; none (and a notice) when it cannot be read."""
        if not config:
            return cls()
        try:
            from pydantic_ai.mcp import load_mcp_toolsets
        except ImportError:
            return cls(notices=['MCP needs its client: pip install "pydantic-ai-slim[mcp]".'])
        try:
            return cls(toolsets=load_mcp_toolsets(Path(config)))
        except (OSError, ValueError) as problem:
            log.warning("MCP config %s not used: %s", config, problem)
            first_line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
            return cls(notices=[f"The MCP config {config} could not be read ({first_line}); no MCP tools."])

    async def ready(self) -> list[AbstractToolset[Any]]:
        """The servers that are up, started on first use; one that fails is dropped with a notice."""
        if self._started or not self.toolsets:
            return self.toolsets
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if not self._started:
                self.toolsets = [toolset for toolset in self.toolsets if await self._start(toolset)]
                self._started = True
        return self.toolsets

    async def _start(self, toolset: AbstractToolset[Any]) -> bool:
        name = _name(toolset)
        try:
            await toolset.__aenter__()
        except Exception as problem:  # noqa: BLE001 (any failure of someone else's server: named, not fatal)
            log.warning("MCP server %r did not start: %r", name, problem)
            self.notices.append(f"The MCP server {name!r} did not start ({type(problem).__name__}); its tools are off.")
            return False
        return True

    async def prepare(self, turn: Turn) -> None:
        turn.toolsets.extend(await self.ready())

    async def available_tools(self) -> list[tuple[str, str]]:
        """The tools a turn offers the model, each with what it does: the chat's own and the MCP servers'."""
        mcp = [(name, "from an MCP server") for name in await self.tool_names()]
        return [*chat_tool_descriptions(), *mcp]

    async def tool_names(self) -> list[str]:
        """The MCP tools the model can call, as it sees their names (`server_tool`)."""
        names = []
        for toolset in await self.ready():
            wrapped = getattr(toolset, "wrapped", toolset)
            prefix = getattr(toolset, "prefix", None)
            names += [f"{prefix}_{tool.name}" if prefix else tool.name for tool in await wrapped.list_tools()]
        return names

    async def stop(self) -> None:
        if self._started:
            for toolset in self.toolsets:
                try:
                    await toolset.__aexit__(None, None, None)
                except Exception:
                    log.warning("MCP server %r did not stop cleanly", _name(toolset), exc_info=True)
            self._started = False


def _name(toolset: AbstractToolset[Any]) -> str:
    return getattr(toolset, "prefix", None) or toolset.label
