"""MCP servers from an `mcpServers` file: a real stdio server of our own, its tools called end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from gradio_client import Client

from chat.config import Settings
from chat.runs import RunStatus
from chat.wings.mcp_servers import McpServers
from tests.apps import running_app, visitor_token
from tests.scripted import ScriptedResolver, chat_service
from tests.test_browser import browser, goto  # noqa: F401 (fixture)

pytestmark = pytest.mark.anyio
LETTERS = Path(__file__).with_name("mcp_letters.py")


def config(folder: Path, **servers: dict) -> str:
    path = folder / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return str(path)


def letters() -> dict:
    return {"command": sys.executable, "args": [str(LETTERS)]}


async def test_a_servers_tools_are_called_by_the_demo_model_and_a_broken_server_is_named(store, tmp_path):
    servers = McpServers.load(config(tmp_path, letters=letters(), broken={"command": str(tmp_path / "no-such-server")}))
    service = chat_service(store, ScriptedResolver(), mcp_servers=servers, min_update_interval=0)
    try:
        updates = [
            update
            async for update in service.run_turn("hana", "m1", 'Call letters_shout with {"text": "guten tag"}', "demo")
        ]
        final = updates[-1]
        assert final.status is RunStatus.COMPLETED, final.error
        (step,) = final.steps
        assert (step.tool, step.result) == ("letters_shout", "GUTEN TAG!") and "GUTEN TAG!" in final.text
        assert len(servers.toolsets) == 1 and ["broken" in notice for notice in servers.notices] == [True]
        names = [name for name, _ in await servers.available_tools()]
        assert {"letters_shout", "letters_count_letters", "calculate"} <= set(names)
    finally:
        await servers.stop()


@pytest.mark.parametrize("written", [None, "{not json", '{"mcpServers": {"x": {"args": []}}}'])
def test_a_config_that_cannot_be_read_is_one_notice_and_no_tools(tmp_path, written):
    path = tmp_path / "servers.json"
    if written is not None:
        path.write_text(written, encoding="utf-8")
    servers = McpServers.load(str(path))
    assert servers.toolsets == [] and len(servers.notices) == 1 and str(path) in servers.notices[0]


def test_the_running_app_offers_an_mcp_tool_through_the_gradio_api(tmp_path):
    settings = Settings(
        demo_first_token_delay=0.01,
        demo_tokens_per_second=0,
        warm_up=False,
        mcp_config=config(tmp_path, letters=letters()),
    )
    with running_app(settings) as app:
        client = Client(app.url, verbose=False)
        prompt = 'use letters_count_letters with {"word": "Mississippi", "letter": "S"}'
        answer, usage, _ = client.predict(prompt, "demo", visitor_token("mcp"), api_name="/chat")
        assert answer[0]["metadata"]["title"] == "🛠️ letters_count_letters" and "4" in answer[0]["content"]
        assert "2 requests" in usage


def test_the_page_lists_the_tools_and_names_a_server_that_did_not_start(tmp_path, browser):  # noqa: F811
    servers = config(tmp_path, letters=letters(), missing={"command": str(tmp_path / "gone")})
    with running_app(Settings(warm_up=False, mcp_config=servers)) as app:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        goto(page, app.url)
        page.get_by_text("Tools the model can call").click()
        page.wait_for_function("() => document.querySelector('#tools-list')?.innerText.includes('letters_shout')")
        listed = page.locator("#tools-list").inner_text()
        assert "calculate" in listed and "letters_count_letters" in listed
        assert "'missing' did not start" in listed and "gone" not in listed  # no internal detail on the page
        page.close()
