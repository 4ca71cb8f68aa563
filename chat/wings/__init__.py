"""The wings: optional features the chat core runs without. `server.py` plugs each in, most of them as
`chat.turn_hooks.TurnHooks` of the chat turn (`server.chat_wings`); leave one out and the app works without it.

- `tools` (the chat's own tools), `mcp_servers` (tools from MCP servers), `approvals` (tools that wait for
  Approve or Deny), `context_policies` with `history` and `summaries` (a window or a summary of long chats);
- `journal` (a turn's prompt and partial answer on disk until it is saved, put back after a crash) and
  `shutdown` (SIGTERM drains running answers);
- `relay` and `stop_everywhere` (replicas on one PostgreSQL: resume and Stop across them);
- `handoff` (analyst -> writer), `stream_inspector` (raw deltas), `completions` (the OpenAI route's runs).
"""
