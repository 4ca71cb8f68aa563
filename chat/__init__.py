"""The chat domain: plain, typed Python that knows nothing of Gradio or the web.

The modules here are the core, the idea this app teaches (examples/minimal_chat.py in full): a turn (`turns`, with `turn_hooks` for how wings join it,
`conversation_edits`, `runs` + `services`, `agents`, `models`, `errors`, `endings`, `steps`, `text`,
`tokens`, `turn_stats`, `untrusted`, `render`), the sidebar (`sessions`, `imported`, `quota`, `identity`), the recipe
tab (`recipes`, `recipe_runs`, `cookbook`), the demo model (`demo_model`, `demo_tools`) and the settings
(`config`, `options`). `chat/wings/` holds the optional features; the core imports none of them
(tests/test_layers.py).
"""
