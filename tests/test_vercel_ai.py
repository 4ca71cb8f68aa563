"""The Vercel AI SDK route (`/api/vercel-ai`) on the real server: raw HTTP for the protocol and its refusals,
the AI SDK's own `Chat` under node (examples/ai-sdk/client.mjs), and the example page in Chromium."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic_ai.messages import ModelResponse

from chat.config import Settings
from chat.endings import END_KEY, STOPPED
from tests.apps import running_app
from tests.test_browser import ARTIFACTS, CHROMIUM, _browser_missing, goto
from tests.test_sse import parse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ai-sdk"


def demo_app(**settings):
    """The real server on a quick demo model (these settings on top), for the protocol routes' tests."""
    return running_app(
        Settings(**{"demo_first_token_delay": 0.05, "demo_tokens_per_second": 100, "warm_up": False, **settings})
    )


@pytest.fixture(scope="module")
def app():
    with demo_app(max_running_per_visitor=1) as served:
        yield served


def new_owner() -> str:
    return secrets.token_urlsafe(24)


def new_chat_id() -> str:
    return secrets.token_urlsafe(12)


def ui_message(role: str, text: str) -> dict:
    return {"id": secrets.token_hex(6), "role": role, "parts": [{"type": "text", "text": text}]}


def chat_request(chat_id: str, *texts: str, **extra) -> dict:
    """The AI SDK's request for a chat showing `texts`, alternately the user's and the assistant's."""
    roles = ["user", "assistant"]
    messages = [ui_message(roles[i % 2], text) for i, text in enumerate(texts)]
    return {"id": chat_id, "trigger": "submit-message", "messages": messages, **extra}


def chunks_of(body: str) -> list[dict]:
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def answer_of(chunks: list[dict]) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def ask(app, owner: str, body: dict) -> httpx.Response:
    return httpx.post(f"{app.url}api/vercel-ai", json=body, headers={"x-chat-owner": owner}, timeout=60)


def in_own_loop(coroutine):
    """Await a store call from the test (another thread: Playwright may own this one's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def stored_id(app, owner: str, chat_id: str) -> str:
    """The id the server stores a chat the client named `chat_id` under: the name is the owner's own."""
    return in_own_loop(app.service.edits.named_by_client(owner, chat_id))


def stored(app, owner: str, chat_id: str) -> list:
    return in_own_loop(app.service.edits.load_messages(owner, stored_id(app, owner, chat_id)))


def sessions_of(app, owner: str) -> list:
    return in_own_loop(app.service.store.list_sessions(owner))


def read_then_leave(app, path: str, owner: str, body: dict, text_event: str, enough: int) -> str:
    """Stream an answer from `path` until more than `enough` characters have come (in the `delta` of the
    events that name `text_event`), then close the connection; the text read."""
    seen = ""
    headers = {"x-chat-owner": owner}
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", f"{app.url}{path}", json=body, headers=headers) as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("data: ") and text_event in line:
                seen += json.loads(line[len("data: ") :])["delta"]
            if len(seen) > enough:
                break
    return seen


def stopped_answer(app, owner: str, chat_id: str) -> ModelResponse:
    """The chat's last answer once its turn has ended, checked to be the kept part of a stopped one."""
    deadline = time.monotonic() + 30
    while app.service.active.is_running(owner, stored_id(app, owner, chat_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = stored(app, owner, chat_id)[-1]
    assert isinstance(answer, ModelResponse) and answer.state == "interrupted"
    assert answer.metadata[END_KEY] == STOPPED
    return answer


def test_an_answer_streams_as_ui_message_chunks_and_lands_in_the_sidebar(app):
    owner, chat_id = new_owner(), new_chat_id()
    response = ask(app, owner, chat_request(chat_id, "I'm Tomasz, I am 63"))
    assert response.status_code == 200 and response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = chunks_of(response.text)
    kinds = [chunk["type"] for chunk in chunks]
    assert kinds[:3] == ["start", "start-step", "text-start"] and kinds[-3:] == ["text-end", "finish-step", "finish"]
    assert kinds.count("text-delta") > 1
    assert "Tomasz" in answer_of(chunks)
    finish = chunks[-1]
    assert finish["finishReason"] == "stop"
    assert finish["messageMetadata"]["conversationId"] == chat_id
    assert finish["messageMetadata"]["status"] == "completed"
    sessions = sessions_of(app, owner)
    assert [(s.conversation_id, s.title) for s in sessions] == [(stored_id(app, owner, chat_id), "I'm Tomasz, I am 63")]
    history = httpx.get(f"{app.url}api/vercel-ai/{chat_id}", headers={"x-chat-owner": owner}).json()
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["parts"][-1]["text"] == answer_of(chunks)


def test_a_tool_call_arrives_as_tool_input_and_output_before_the_text(app):
    chunks = chunks_of(ask(app, new_owner(), chat_request(new_chat_id(), "Сколько будет 19 * 23?")).text)
    kinds = [chunk["type"] for chunk in chunks]
    assert kinds.index("tool-input-available") < kinds.index("tool-output-available") < kinds.index("text-start")
    call = chunks[kinds.index("tool-input-available")]
    result = chunks[kinds.index("tool-output-available")]
    assert call["toolName"] == "calculate" and call["input"] == {"expression": "19 * 23"}
    assert result["toolCallId"] == call["toolCallId"] and result["output"] == "437"
    assert "437" in answer_of(chunks)


def test_a_chat_goes_on_over_the_sse_api_and_back(app):
    owner, chat_id = new_owner(), new_chat_id()
    first = answer_of(chunks_of(ask(app, owner, chat_request(chat_id, "我叫陈静，今年47岁。")).text))
    # The SSE API takes the ids the server made (the sidebar's): a chat a client named is stored under one,
    # since the name is that owner's alone.
    events = parse(
        httpx.post(
            f"{app.url}api/chat",
            json={"message": "我今年几岁？", "conversation_id": stored_id(app, owner, chat_id)},
            headers={"x-chat-owner": owner},
            timeout=60,
        ).text
    )
    over_sse = "".join(data for name, data in events if name == "delta")
    assert "47" in over_sse
    back = ask(app, owner, chat_request(chat_id, "我叫陈静，今年47岁。", first, "我今年几岁？", over_sse, "我叫什么？"))
    assert "陈静" in answer_of(chunks_of(back.text))
    assert [m.parts[0].content for m in stored(app, owner, chat_id)[::2]] == [
        "我叫陈静，今年47岁。",
        "我今年几岁？",
        "我叫什么？",
    ]


def test_another_caller_finds_nothing_and_no_caller_gets_in(app):
    owner, chat_id = new_owner(), new_chat_id()
    ask(app, owner, chat_request(chat_id, "My name is Ingrid"))
    stranger = new_owner()
    assert httpx.get(f"{app.url}api/vercel-ai/{chat_id}", headers={"x-chat-owner": stranger}).status_code == 404
    # The same name is the stranger's own new chat: nothing of the owner's is read, nothing added to it.
    theirs = ask(app, stranger, chat_request(chat_id, "what is my name?"))
    assert theirs.status_code == 200 and "Ingrid" not in theirs.text
    assert len(stored(app, owner, chat_id)) == 2 and len(stored(app, stranger, chat_id)) == 2
    assert stored_id(app, owner, chat_id) != stored_id(app, stranger, chat_id)
    nobody = httpx.post(f"{app.url}api/vercel-ai", json=chat_request(new_chat_id(), "hi"))
    assert nobody.status_code == 401
    assert ask(app, "short", chat_request(new_chat_id(), "hi")).status_code == 400


def test_a_damaged_stored_chat_is_a_sentence_not_a_traceback(app):
    owner, chat_id = new_owner(), new_chat_id()
    ask(app, owner, chat_request(chat_id, "Olá, eu sou a Marta"))
    app.service.store.db.execute(
        'UPDATE entries SET message_json = \'{"kind": "resp\' WHERE conversation_id = ?',
        [stored_id(app, owner, chat_id)],
    )
    damaged = httpx.get(f"{app.url}api/vercel-ai/{chat_id}", headers={"x-chat-owner": owner})
    assert damaged.status_code == 409 and "Traceback" not in damaged.text and "Marta" not in damaged.text
    assert damaged.text.strip()


def test_mistakes_get_a_plain_sentence_and_nothing_is_stored(app):
    owner = new_owner()
    cases = {
        "not json": httpx.post(f"{app.url}api/vercel-ai", content=b"{nope", headers={"x-chat-owner": owner}),
        "no user message last": ask(app, owner, chat_request(new_chat_id(), "hola", "¿qué tal?")),
        "empty": ask(app, owner, chat_request(new_chat_id(), "   ")),
        "unknown model": ask(app, owner, chat_request(new_chat_id(), "hi", model="gpt-9-ultra")),
        "unknown context": ask(app, owner, chat_request(new_chat_id(), "hi", context="everything")),
        "odd chat id": ask(app, owner, chat_request("../../etc", "hi")),
    }
    for case, response in cases.items():
        assert response.status_code == 400, case
        assert response.headers["content-type"].startswith("text/plain") and "Traceback" not in response.text, case
    assert "does not offer that model" in cases["unknown model"].text
    assert sessions_of(app, owner) == []


def test_a_client_that_leaves_stops_the_answer_and_its_part_is_kept(app):
    owner, chat_id = new_owner(), new_chat_id()
    # The AI SDK's stop() aborts the request like this.
    seen = read_then_leave(app, "api/vercel-ai", owner, chat_request(chat_id, "count to 5000"), '"text-delta"', 30)
    answer = stopped_answer(app, owner, chat_id)
    assert answer.parts[0].content.startswith(seen) and len(answer.parts[0].content) < 20_000


def test_an_edited_message_branches_the_stored_chat_back_to_what_the_client_shows(app):
    owner, chat_id = new_owner(), new_chat_id()
    first = answer_of(chunks_of(ask(app, owner, chat_request(chat_id, "My name is Bartholomew")).text))
    ask(app, owner, chat_request(chat_id, "My name is Bartholomew", first, "count to 4"))
    # The client edited its second message: it now shows the first exchange and the new text only.
    ask(app, owner, chat_request(chat_id, "My name is Bartholomew", first, "what is my name?"))
    prompts = [m.parts[0].content for m in stored(app, owner, chat_id)[::2]]
    assert prompts == ["My name is Bartholomew", "what is my name?"]
    assert "Bartholomew" in stored(app, owner, chat_id)[-1].parts[0].content


def test_one_visitor_gets_429_with_retry_after_past_their_running_answers(app):
    owner = new_owner()
    with httpx.Client(timeout=60) as http:
        body = chat_request(new_chat_id(), "count to 5000")
        with http.stream("POST", f"{app.url}api/vercel-ai", json=body, headers={"x-chat-owner": owner}) as stream:
            lines = stream.iter_lines()  # kept: an iterator dropped early closes the response, like a Stop
            next(line for line in lines if '"text-delta"' in line)  # it is running
            second = ask(app, owner, chat_request(new_chat_id(), "hello"))
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1, second.text
    assert "at once" in second.text


# The AI SDK's own client, under node.

NODE = shutil.which("node")
NPM = shutil.which("npm")


@pytest.fixture(scope="module")
def ai_sdk():
    """examples/ai-sdk with its packages installed from npm (the `ai` version in its package.json)."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are needed for the AI SDK tests: apt-get install nodejs npm")
    if not (EXAMPLE / "node_modules" / "ai").exists():
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, timeout=600)
    return EXAMPLE


def run_ai_sdk_chat(ai_sdk: Path, plan: dict) -> list[dict]:
    done = subprocess.run(
        [NODE, "client.mjs"],
        check=False,
        cwd=ai_sdk,
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def text_of(message: dict) -> str:
    return "".join(part.get("text", "") for part in message["parts"] if part["type"] == "text")


def test_the_ai_sdk_chat_remembers_stops_and_regenerates(app, ai_sdk):
    owner, chat_id = new_owner(), new_chat_id()
    plan = {
        "url": app.url,
        "owner": owner,
        "chatId": chat_id,
        "steps": [
            {"send": "I'm Aoife, I am 38"},
            {"send": "how old am I?"},
            {"send": "count to 4000", "stopAfterChars": 25},
            {"regenerate": True},
        ],
    }
    remembered, asked, stopped, regenerated = run_ai_sdk_chat(ai_sdk, plan)
    assert remembered["status"] == asked["status"] == "ready" and remembered["error"] is None
    assert "38" in text_of(asked["messages"][-1])
    cut = text_of(stopped["messages"][-1])
    assert stopped["messages"][-1]["role"] == "assistant" and 25 <= len(cut) < 2000
    again = regenerated["messages"]
    assert [text_of(m) for m in again if m["role"] == "user"] == [
        "I'm Aoife, I am 38",
        "how old am I?",
        "count to 4000",
    ]
    assert again[-1]["metadata"]["status"] == "completed" and len(text_of(again[-1])) > len(cut)
    # The store followed: the stopped answer is kept as a branch, the regenerated one answers the count.
    answer = stored(app, owner, chat_id)[-1]
    assert answer.state == "complete" and answer.parts[0].content == text_of(again[-1])


def test_the_ai_sdk_shows_a_refusal_as_the_chats_error(app, ai_sdk):
    plan = {
        "url": app.url,
        "owner": new_owner(),
        "chatId": new_chat_id(),
        "body": {"model": "claude-9-imaginary"},
        "steps": [{"send": "Γειά σου"}],
    }
    [refused] = run_ai_sdk_chat(ai_sdk, plan)
    assert refused["status"] == "error" and "does not offer that model" in refused["error"]
    assert "Traceback" not in refused["error"]


@pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")
def test_the_example_page_chats_on_desktop_and_phone_into_the_visitors_sidebar(app, ai_sdk):
    subprocess.run([NPM, "run", "build"], cwd=ai_sdk, check=True, timeout=300, capture_output=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        for name, viewport, scheme in [("desktop", (1280, 800), "light"), ("phone", (390, 844), "dark")]:
            context = browser.new_context(viewport=dict(zip(("width", "height"), viewport)), color_scheme=scheme)
            page = context.new_page()
            failed: list[str] = []
            page.on(
                "response",
                lambda response, failed=failed: failed.append(response.url) if response.status >= 400 else None,
            )
            page.goto(f"{app.url}examples/ai-sdk/")  # a fresh chat asks for nothing stored, so nothing fails
            page.wait_for_function("() => document.querySelector('#send').textContent === 'Send'")
            assert failed == []
            chat_id = new_chat_id()
            page.goto(f"{app.url}examples/ai-sdk/?chat={chat_id}")
            page.locator("#prompt").fill(f"My name is Ngozi-{name}")
            page.locator("#prompt").press("Enter")
            page.wait_for_function(
                "() => document.querySelector('#send').textContent === 'Send'"
                " && document.querySelectorAll('.assistant').length === 1"
            )
            assert f"Ngozi-{name}" in page.locator(".assistant").inner_text()
            assert page.locator("#prompt").input_value() == ""
            # Opened again, the chat shows where it is, and the next turn goes on from there.
            page.goto(f"{app.url}examples/ai-sdk/?chat={chat_id}")
            page.wait_for_function("() => document.querySelectorAll('.message').length === 2")
            page.locator("#prompt").fill("what is my name?")
            page.locator("#prompt").press("Enter")
            page.wait_for_function(
                "() => document.querySelectorAll('.assistant').length === 2"
                " && document.querySelector('#send').textContent === 'Send'"
            )
            assert f"Ngozi-{name}" in page.locator(".assistant").last.inner_text()
            page.screenshot(path=str(ARTIFACTS / f"ai-sdk-example-{name}.png"))
            goto(page, app.url)  # the same visitor (the cookie), in the app's own page
            page.wait_for_function(f"() => document.querySelector('#sessions')?.innerText.includes('Ngozi-{name}')")
            context.close()
        browser.close()


def recipes_of(app, owner: str) -> list:
    from chat.recipe_runs import RECIPE_KIND

    return in_own_loop(app.service.store.list_sessions(owner, kind=RECIPE_KIND))


def stored_recipe(app, owner: str, recipe_id: str):
    from chat.recipe_runs import RecipeService

    return in_own_loop(RecipeService(app.service.store, app.service.models).open(owner, recipe_id))


def test_a_recipe_arrives_as_one_data_part_that_grows_and_is_among_the_visitors_recipes(app):
    owner = new_owner()
    chunks = chunks_of(ask_recipe(app, owner, "shakshuka").text)
    parts = [chunk for chunk in chunks if chunk["type"] == "data-recipe"]
    recipe_id = chunks[0]["messageMetadata"]["recipeId"]
    assert len(parts) > 2 and {part["id"] for part in parts} == {recipe_id}
    assert parts[0]["data"]["steps"] == [] and parts[-1]["data"]["steps"]  # sent as it grew
    assert chunks[-1]["messageMetadata"]["status"] == "completed"
    kept = stored_recipe(app, owner, recipe_id)
    assert kept.recipe.model_dump(mode="json") == parts[-1]["data"] and not kept.incomplete
    assert [s.conversation_id for s in recipes_of(app, owner)] == [recipe_id]


def ask_recipe(app, owner: str, dish: str) -> httpx.Response:
    body = chat_request(new_chat_id(), dish)
    return httpx.post(f"{app.url}api/vercel-ai/recipe", json=body, headers={"x-chat-owner": owner}, timeout=60)


def test_a_recipe_whose_reader_leaves_is_stopped_and_kept_incomplete(app):
    owner, parts = new_owner(), 0
    with httpx.Client(timeout=60) as http:
        body = chat_request(new_chat_id(), "Pão de queijo")
        with http.stream(
            "POST", f"{app.url}api/vercel-ai/recipe", json=body, headers={"x-chat-owner": owner}
        ) as stream:
            for line in stream.iter_lines():
                if '"data-recipe"' in line:
                    recipe_id = json.loads(line[len("data: ") :])["id"]
                    parts += 1
                if parts == 2:
                    break
    deadline = time.monotonic() + 30
    while app.service.active.running_for(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_recipe(app, owner, recipe_id).incomplete


def test_the_ai_sdk_chat_holds_the_recipe_as_one_part_equal_to_the_stored_one(app, ai_sdk):
    owner = new_owner()
    plan = {
        "url": app.url,
        "api": "api/vercel-ai/recipe",
        "owner": owner,
        "chatId": new_chat_id(),
        "steps": [{"send": "ramen"}],
    }
    [done] = run_ai_sdk_chat(ai_sdk, plan)
    assert done["status"] == "ready" and done["error"] is None
    [part] = [part for part in done["messages"][-1]["parts"] if part["type"] == "data-recipe"]
    kept = stored_recipe(app, owner, part["id"])
    assert part["data"] == kept.recipe.model_dump(mode="json") and part["data"]["ingredients"]


def test_the_new_message_alone_goes_on_from_the_stored_chat(app):
    """The AI SDK's message-persistence guide sends `{id, message}`: only the new message."""
    owner, chat_id = new_owner(), new_chat_id()
    ask(app, owner, chat_request(chat_id, "Je m'appelle Zoé. My name is Zoé"))
    lone = {"id": chat_id, "message": ui_message("user", "what is my name?")}
    answer = answer_of(chunks_of(ask(app, owner, lone).text))
    assert "Zoé" in answer
    assert [m.parts[0].content for m in stored(app, owner, chat_id)[::2]] == [
        "Je m'appelle Zoé. My name is Zoé",
        "what is my name?",
    ]
    assert ask(app, owner, {"id": chat_id, "message": "just text"}).status_code == 400
