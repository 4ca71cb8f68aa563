"""The chat domain: plain, typed Python that knows nothing of Gradio or the web, in two parts.

The core is the card's idea (tests/test_layers.py holds these lists; the core imports no wing):
- a turn: `turns` (stream, Stop, save) with `turn_hooks` (how wings join it), `conversation_edits`,
  `runs` + `services` (each run in its own task, limits, Stop), `agents`, `models`, `errors`, `endings`,
  `steps`, `text`, `tokens`, `turn_stats`, `untrusted`, `render`;
- the sidebar: `sessions`, `quota`, `identity`; the recipe tab: `recipes`, `recipe_runs`, `cookbook`;
- the demo model: `demo_model`, `demo_tools`; settings: `config`, `options`.

The wings are optional features that `server.py` plugs in: `tools`, `mcp_servers`, `approvals`,
`context_policies` (+ `history`, `summaries`), `journal` (crash recovery) and `shutdown` (drain), `relay`
and `stop_everywhere` (replicas), `handoff`, `stream_inspector`, `completions` (the OpenAI route's runs).
"""
