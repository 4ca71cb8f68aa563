"""MCP servers from an `mcpServers` file: a real stdio server of our own, its tools called end to end, and the
visitor's approval before one that is not read-only runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from gradio_client import Client

from chat.config import Settings
from chat.identity import VisitorCookie
from chat.render import answer_messages
from chat.runs import RunStatus
from chat.wings.approvals import APPROVE, DENIED, DENY
from chat.wings.mcp_servers import McpServers
from tests.apps import running_app, visitor_token
from tests.scripted import ScriptedResolver, chat_service
from tests.test_browser import browser, goto  # noqa: F401 (fixture)
from tests.test_sse import parse
from web.sse import ChatStreamAPI

pytestmark = pytest.mark.anyio
LETTERS = Path(__file__).with_name("mcp_letters.py")


def config(folder: Path, **servers: dict) -> str:
    path = folder / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return str(path)


def letters(**approvals) -> dict:
    return {"command": sys.executable, "args": [str(LETTERS)], **approvals}


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


def call(tool: str, **arguments: str) -> str:
    """A prompt the demo model answers by calling `tool` (offline, as in the docs)."""
    return f"Call {tool} with {json.dumps(arguments)}"


async def turn(service, prompt: str, conversation: str = "c1"):
    return [update async for update in service.run_turn("hana", conversation, prompt, "demo")]


@pytest.fixture
async def mcp_chat(store, tmp_path):
    """A chat with the letters server as `servers.json` names it (`configure` before the first turn)."""
    made: list[McpServers] = []

    def configure(approvals: bool = True, **entry):
        servers = McpServers.load(config(tmp_path, letters=letters(**entry)))
        made.append(servers)
        return chat_service(store, ScriptedResolver(), mcp_servers=servers, approvals=approvals, min_update_interval=0)

    yield configure
    for servers in made:
        await servers.stop()


@pytest.mark.parametrize("tool", ["erase", "write"])  # marked destructive; marked nothing at all
async def test_a_tool_not_marked_read_only_waits_for_approve_and_runs_only_then(mcp_chat, tmp_path, tool):
    kept = tmp_path / "kept.txt"
    kept.write_text("before", encoding="utf-8")
    service = mcp_chat()
    arguments = {"path": str(kept)} | ({"text": "after"} if tool == "write" else {})
    asked = (await turn(service, call(f"letters_{tool}", **arguments)))[-1]
    (step,) = asked.steps
    assert step.awaiting_approval and not step.done and step.tool == f"letters_{tool}"
    assert [option["value"] for option in answer_messages(asked)[-1]["options"]] == [APPROVE, DENY]
    assert kept.read_text(encoding="utf-8") == "before"  # nothing ran before the answer

    approved = (await turn(service, APPROVE))[-1]
    assert approved.status is RunStatus.COMPLETED and approved.steps[0].result.startswith(("Erased", "Wrote"))
    assert not kept.exists() if tool == "erase" else kept.read_text(encoding="utf-8") == "after"


async def test_deny_leaves_the_tool_unrun(mcp_chat, tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("before", encoding="utf-8")
    service = mcp_chat()
    await turn(service, call("letters_erase", path=str(kept)))
    denied = (await turn(service, DENY))[-1]
    assert denied.status is RunStatus.COMPLETED and denied.steps[0].error == DENIED
    assert kept.read_text(encoding="utf-8") == "before"
    assert (await turn(service, "What is 6 * 7?"))[-1].status is RunStatus.COMPLETED  # the chat goes on


async def test_a_read_only_tool_runs_at_once(mcp_chat):
    final = (await turn(mcp_chat(), call("letters_shout", text="hola")))[-1]
    (step,) = final.steps
    assert not step.awaiting_approval and step.result == "HOLA!" and "HOLA!" in final.text


async def test_servers_json_asks_for_no_tool_of_a_server_or_for_one_read_only_tool(mcp_chat, tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("before", encoding="utf-8")
    trusted = mcp_chat(askApproval="never", askApprovalByTool={"write": "unless-read-only"})
    erased = (await turn(trusted, call("letters_erase", path=str(kept))))[-1]
    assert not erased.steps[0].awaiting_approval and not kept.exists()
    wrote = (await turn(trusted, call("letters_write", path=str(kept), text="x"), "c2"))[-1]
    assert wrote.steps[0].awaiting_approval and not kept.exists()

    careful = mcp_chat(askApprovalByTool={"shout": "always"})
    shouted = (await turn(careful, call("letters_shout", text="hola"), "c3"))[-1]
    assert shouted.steps[0].awaiting_approval and shouted.steps[0].result is None
    counted = (await turn(careful, call("letters_count_letters", word="aha", letter="a"), "c4"))[-1]
    assert counted.steps[0].result == "2"


@pytest.mark.parametrize(
    "entry", [{"askApproval": "sometimes"}, {"askApprovalByTool": {"erase": False}}, {"askApprovalByTool": ["erase"]}]
)
def test_an_approval_rule_that_cannot_be_read_leaves_the_whole_file_unused(tmp_path, entry):
    servers = McpServers.load(config(tmp_path, letters=letters(**entry)))
    assert servers.toolsets == [] and len(servers.notices) == 1 and "'letters'" in servers.notices[0]


async def test_without_the_approvals_wing_only_read_only_tools_are_offered(mcp_chat, tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("before", encoding="utf-8")
    service = mcp_chat(approvals=False)
    asked = (await turn(service, call("letters_erase", path=str(kept))))[-1]
    assert asked.status is RunStatus.COMPLETED and asked.steps == () and kept.exists()
    assert (await turn(service, call("letters_shout", text="hi")))[-1].steps[0].result == "HI!"
    servers = next(wing for wing in service.wings if isinstance(wing, McpServers))
    listed = dict(await servers.available_tools())
    assert "letters_shout" in listed and "letters_erase" not in listed


async def test_the_page_says_which_tools_ask_first(mcp_chat):
    service = mcp_chat()
    servers = next(wing for wing in service.wings if isinstance(wing, McpServers))
    listed = dict(await servers.available_tools())
    assert "approval" in listed["letters_erase"] and "approval" in listed["letters_write"]
    assert "approval" not in listed["letters_shout"]
    # What each does is the server's own description, as the model is told.
    assert listed["letters_shout"] == "Say a text in capital letters."
    assert listed["letters_erase"].startswith("Delete a file for good.")


async def test_the_sse_api_announces_the_approval_and_runs_the_tool_once_approved(mcp_chat, tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("before", encoding="utf-8")
    app = FastAPI()
    app.include_router(ChatStreamAPI(mcp_chat(), VisitorCookie(b"test-secret"), default_model="demo").router())
    headers = {"x-chat-owner": visitor_token("mcp-sse")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        asked = parse(
            (
                await http.post("/api/chat", json={"message": call("letters_erase", path=str(kept))}, headers=headers)
            ).text
        )
        approval = json.loads(dict(asked)["approval"])
        assert approval["tool"] == "letters_erase" and approval["options"] == [APPROVE, DENY] and kept.exists()
        chat = {"message": APPROVE, "conversation_id": json.loads(asked[0][1])["conversation_id"]}
        answered = parse((await http.post("/api/chat", json=chat, headers=headers)).text)
    assert json.loads(dict(answered)["tool_result"])["id"] == approval["id"] and not kept.exists()


# Last in the module: Playwright's sync API keeps an event loop running in this thread while its browser
# (a module fixture) is open, and an async test after it could not start its own.
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


# -- tools that are not read-only wait for the visitor ----------------------------------------------
