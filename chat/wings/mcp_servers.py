"""MCP servers the operator configured (`--mcp servers.json`, the common `mcpServers` format): their
tools join the chat agent's, through pydantic-ai's `MCPToolset`s.

A server's tool waits for the visitor's Approve or Deny, as the app's own delete does (chat/wings/approvals.py),
unless the server marks it read-only (`readOnlyHint` in its MCP annotations, which pydantic-ai passes on as
`ToolDefinition.metadata["annotations"]`). The file can say otherwise per server (`"askApproval"`) and per tool
(`"askApprovalByTool"`): `always`, `never` or `unless-read-only` (the default). A value it cannot read leaves
the whole file unused, never a tool unguarded.

Each server starts once, on the server's event loop, when the first turn (or the page's list of tools)
needs it, and stays up until the app stops. A config that cannot be read, or a server that does not
start, becomes one sentence for the page and a line in the log; the app and the other servers go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic_ai import RunContext
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset

from chat.turn_hooks import Turn, TurnHooks
from chat.wings.tools import chat_tool_descriptions

log = logging.getLogger(__name__)

AskApproval = Literal["always", "never", "unless-read-only"]
"""When a server's tool waits for the visitor: every call, no call, or every call unless the tool is read-only."""
ASK_APPROVAL: tuple[str, ...] = get_args(AskApproval)


@dataclass(frozen=True)
class ServerApprovals:
    """When one server's tools wait for the visitor's Approve or Deny, as its `mcpServers` entry says."""

    server: AskApproval = "unless-read-only"
    tools: Mapping[str, AskApproval] = field(default_factory=dict)
    """By the server's own tool name (`erase`, not `letters_erase`)."""

    def asks(self, tool: str, annotations: Mapping[str, Any] | None) -> bool:
        rule = self.tools.get(tool, self.server)
        if rule == "unless-read-only":  # MCP's default for readOnlyHint is false: unmarked tools ask
            return (annotations or {}).get("readOnlyHint") is not True
        return rule == "always"

    @classmethod
    def of(cls, name: str, entry: Mapping[str, Any]) -> ServerApprovals:
        """The entry's `askApproval` and `askApprovalByTool`; ValueError naming the server for anything else."""
        server = entry.get("askApproval", "unless-read-only")
        by_tool = entry.get("askApprovalByTool", {})
        if not isinstance(by_tool, dict) or any(said not in ASK_APPROVAL for said in [server, *by_tool.values()]):
            one_of = ", ".join(f'"{rule}"' for rule in ASK_APPROVAL)
            raise ValueError(
                f"MCP server {name!r}: askApproval is one of {one_of}, and askApprovalByTool maps a tool's name "
                f"to one of them (read {server!r} and {by_tool!r})"
            )
        return cls(server, by_tool)


def approvals_of(config: Path) -> dict[str, ServerApprovals]:
    """Each server's approval rules, read from the same file pydantic-ai reads its servers from (it ignores
    these keys)."""
    servers = json.loads(config.read_text(encoding="utf-8")).get("mcpServers", {})
    return {name: ServerApprovals.of(name, entry) for name, entry in servers.items()}


@dataclass
class McpServers(TurnHooks):
    """A wing: the configured servers' tools join every turn's run (started with the first turn that needs them);
    a tool that is not read-only waits for the visitor's approval, unless the config says otherwise."""

    toolsets: list[AbstractToolset[Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """What the page says about servers that are not offered, one sentence each."""
    approvals: dict[str, ServerApprovals] = field(default_factory=dict)
    """By server name; a server not named asks for every tool not marked read-only."""
    ask_approval: bool = True
    """False when the chat runs without the approvals wing (server.chat_wings): the tools that would wait for
    an answer nobody can give are left out instead."""
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
            return cls(toolsets=load_mcp_toolsets(Path(config)), approvals=approvals_of(Path(config)))
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
        turn.toolsets.extend(self.guarded(toolset) for toolset in await self.ready())

    def guarded(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any]:
        """The server's tools as a run is given them: those that ask approval are pydantic-ai's `unapproved`
        kind (as `Tool(requires_approval=True)` makes them), so the run ends with `DeferredToolRequests`
        before one runs; without the approvals wing they are left out."""
        server = _name(toolset)
        rules = self.approvals.get(server, ServerApprovals())

        def mark(_: RunContext[Any], tools: list[ToolDefinition]) -> list[ToolDefinition]:
            return [
                replace(tool, kind="unapproved")
                if rules.asks(_own_name(server, tool.name), _annotations(tool))
                else tool
                for tool in tools
            ]

        marked = toolset.prepared(mark)
        return marked if self.ask_approval else marked.filtered(lambda _, tool: tool.kind != "unapproved")

    async def available_tools(self) -> list[tuple[str, str]]:
        """The tools a turn offers the model, each with what it does: the chat's own and the MCP servers'."""
        mcp = [
            (name, f"{described}; asks your approval before it runs" if asks else described)
            for name, described, asks in await self.tools()
            if self.ask_approval or not asks
        ]
        return [*chat_tool_descriptions(), *mcp]

    async def tools(self) -> list[tuple[str, str, bool]]:
        """The MCP tools the model can call: each as it sees its name (`server_tool`), what it does (the
        first line of the server's description, else which server it comes from), and whether it asks the
        visitor's approval."""
        found = []
        for toolset in await self.ready():
            rules = self.approvals.get(_name(toolset), ServerApprovals())
            wrapped = getattr(toolset, "wrapped", toolset)
            prefix = getattr(toolset, "prefix", None)
            for tool in await wrapped.list_tools():
                annotations = tool.annotations.model_dump(by_alias=True) if tool.annotations else None
                described = (tool.description or "").strip().splitlines()
                what = described[0] if described else f"from the MCP server {_name(toolset)}"
                name = f"{prefix}_{tool.name}" if prefix else tool.name
                found.append((name, what, rules.asks(tool.name, annotations)))
        return found

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


def _own_name(server: str, tool: str) -> str:
    """The server's name for a tool the model sees as `server_tool`."""
    return tool.removeprefix(f"{server}_")


def _annotations(tool: ToolDefinition) -> Mapping[str, Any] | None:
    """The MCP annotations pydantic-ai's MCPToolset keeps (by their wire names: `readOnlyHint`)."""
    return (tool.metadata or {}).get("annotations")
