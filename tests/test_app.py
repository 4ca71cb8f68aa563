"""The real Gradio server on 127.0.0.1, driven through `gradio_client` like an API user would."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from chat.config import Settings
from chat.options import parse_settings
from server import run_to_completion
from tests.apps import running_app, visitor_token

OWNER = visitor_token("integration")


@pytest.fixture(scope="module")
def app():
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=80, warm_up=False)
    with running_app(settings) as running:
        yield running


def stored_conversations(app, owner: str):
    async def read():
        conversations = []
        for record in await app.service.store.list_conversations(scope=owner):
            conversations.append(await app.service.store.load(record.conversation_id, scope=owner))
        return conversations

    return asyncio.run(read())


def last_answer(response: str | list[dict]) -> str:
    """`/chat` returns the answer as text (the ChatInterface API); a chat's last bubble otherwise."""
    if isinstance(response, str):
        return response
    content = response[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_chat_endpoint_streams_updates_and_remembers_the_conversation(app):
    client = Client(app.url, verbose=False)
    job = client.submit("Je suis Zoé et j'ai 52 ans. My name is Zoe and I am 52.", "demo", OWNER, api_name="/chat")
    updates = [last_answer(output[0]) for output in job]
    assert len(updates) >= 3
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(updates))
    assert "Zoe" in updates[-1]
    answer, usage, context = client.predict("How old am I?", "demo", OWNER, api_name="/chat")
    assert "52" in answer
    assert "**demo**" in usage and "tokens" in usage
    assert "Sent:** 3 of 3 messages" in context


def test_chat_endpoint_returns_a_tool_step_with_metadata_before_the_answer(app):
    client = Client(app.url, verbose=False)
    answer, usage, _ = client.predict("Convert 3.5 l to gal, step by step", "demo", OWNER, api_name="/chat")
    titles = [message.get("metadata", {}).get("title") for message in answer]
    assert titles == ["💭 Thinking", "🛠️ convert_units", None]
    assert "0.924602 gal" in answer[1]["content"] and answer[1]["metadata"]["status"] == "done"
    assert "0.924602 gal" in last_answer(answer) and "2 requests" in usage


def test_cancelling_the_job_stops_the_stream_and_keeps_the_partial(app):
    owner = visitor_token("cancelling")
    client = Client(app.url, verbose=False)
    job = client.submit("count to 5000", "demo", owner, api_name="/chat")
    while len(job.outputs()) < 3:
        assert not job.done(), "the stream ended before it could be cancelled"
        time.sleep(0.02)
    job.cancel()
    deadline = time.monotonic() + 10
    while not (conversations := stored_conversations(app, owner)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(conversations) == 1
    answer = conversations[0].messages[-1]
    assert answer.state == "interrupted"
    assert answer.parts[0].content.startswith("1 2 3")
    assert not answer.parts[0].content.endswith("5000.")


def test_a_rejected_prompt_is_explained_and_nothing_is_stored(app):
    client = Client(app.url, verbose=False)
    empty_owner = visitor_token("empty")
    answer, usage, _ = client.predict("   ", "demo", empty_owner, api_name="/chat")
    assert "Type a message first" in answer and usage == ""
    assert stored_conversations(app, empty_owner) == []


def test_a_model_the_app_does_not_offer_is_refused(app):
    from gradio_client.exceptions import AppError

    client, model_owner = Client(app.url, verbose=False), visitor_token("model")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("hi", "openai:o1-pro", model_owner, api_name="/chat")
    assert stored_conversations(app, model_owner) == []


def test_a_context_policy_the_operator_did_not_offer_is_refused(app):
    from gradio_client.exceptions import AppError

    client, policy_owner = Client(app.url, verbose=False), visitor_token("policy")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("Wie alt bin ich?", "demo", policy_owner, "full", api_name="/chat")
    answer, _, _ = client.predict("Wie alt bin ich?", "demo", policy_owner, "summary", api_name="/chat")
    assert answer and stored_conversations(app, policy_owner)[0].messages


def test_only_the_chat_and_recipe_endpoints_are_advertised(app):
    api = Client(app.url, verbose=False).view_api(return_format="dict", print_info=False)
    assert sorted(api["named_endpoints"]) == ["/chat", "/recipe"]
    assert api["unnamed_endpoints"] == {}


def test_settings_come_from_flags_over_environment():
    settings = parse_settings(
        {"CHAT_MODEL": "openai-chat:gpt-4o-mini", "CHAT_MAX_PROMPT_CHARS": "99"}, ["--model", "demo"]
    )
    assert settings.model == "demo" and settings.max_prompt_chars == 99
    assert parse_settings({}).model == "demo"


ROOT = Path(__file__).resolve().parent.parent


def run_app_py(folder: Path, *args: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python app.py ARGS` run from `folder` (a user's own working directory), without starting a server."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['app.py', *{list(args)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'app.py')!r}, run_name='__main__')\n"
        "finally:\n"
        "    print('gradio imported' if 'gradio' in sys.modules else 'gradio not imported')\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        env={**clean, "PYTHONPATH": str(ROOT), **(environment or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_help_names_every_option_its_variable_and_default_and_touches_nothing(tmp_path):
    from chat.options import OPTIONS

    shown = run_app_py(tmp_path, "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # argparse wraps lines
    for option in OPTIONS:
        assert option.flag in text and option.environment in text, option.flag
    assert "[CHAT_MAX_STREAMS; default: 200]" in text and "[GRADIO_SERVER_PORT; default: 7860]" in text
    assert text.endswith("gradio not imported")  # nothing heavy is loaded to print the help...
    assert list(tmp_path.iterdir()) == []  # ...and nothing is created: no data/chat.db


@pytest.mark.parametrize(
    ("args", "environment", "named"),
    [
        ((), {"CHAT_MAX_STREAMS": "zwölf"}, "CHAT_MAX_STREAMS=zwölf: expected a whole number"),
        (("--port", "80a"), {}, "--port=80a: expected a whole number"),
        (("--request-timeout", "1,5"), {}, "--request-timeout=1,5: expected a number"),
        ((), {"CHAT_CONTEXT": "everything"}, "CHAT_CONTEXT=everything: use one of full, window, summary"),
        ((), {"CHAT_ALLOW_ANY_MODEL": "perhaps"}, "CHAT_ALLOW_ANY_MODEL=perhaps: expected on or off"),
        (("--db",), {}, "--db: expected one argument"),
    ],
)
def test_a_bad_value_is_named_in_one_line_before_anything_is_built(tmp_path, args, environment, named):
    refused = run_app_py(tmp_path, *args, environment=environment)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in refused.stderr
    assert refused.stdout.strip() == "gradio not imported" and list(tmp_path.iterdir()) == []


def test_importing_app_builds_nothing_until_demo_is_asked_for(tmp_path):
    script = (
        "import sys, app\n"
        "print('gradio' in sys.modules)\n"
        "print(type(app.demo).__name__, app.demo is app.demo, type(app.service).__name__)\n"
    )
    built = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CHAT_DB": str(tmp_path / "reload.db")},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert built.stdout.split("\n")[:2] == ["False", "Blocks True ChatService"], built.stderr[-2000:]
    assert (tmp_path / "reload.db").exists()  # `gradio app.py` reload mode gets a whole app, from the environment


def test_the_server_freezes_its_start_up_objects_out_of_the_collector_and_shortens_gil_turns():
    """What keeps the loop's pauses short at 200 streams (benchmarks/ANALYSIS.md "Stop under load"): the
    young garbage collected less often, start-up's objects never walked again, the GIL passed sooner."""
    script = (
        "import gc, sys\n"
        "from ui import gradio_armour\n"
        "before = (gc.get_freeze_count(), gc.get_threshold()[0], sys.getswitchinterval())\n"
        "gradio_armour.tune_for_many_streams()\n"
        "after = (gc.get_freeze_count(), gc.get_threshold()[0], sys.getswitchinterval())\n"
        "print(before[0] == 0, after[0] > 10_000, after[1] > before[1], after[2] < before[2])\n"
    )
    tuned = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert tuned.stdout.split() == ["True"] * 4, tuned.stderr[-2000:]


def test_gradio_no_longer_searches_for_matplotlib_around_each_update_once_tuned():
    """Without matplotlib installed, Gradio's backend switch around every update searched the whole import
    path for it, twice; once tuned, not once (and where it is installed, it is left alone)."""
    script = (
        "import importlib.util, sys\n"
        "from ui import gradio_armour\n"
        "from gradio.utils import MatplotlibBackendMananger\n"
        "searched = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        searched.append(name)\n"
        "sys.meta_path.insert(0, Watch())\n"
        "def one_update():\n"
        "    searched.clear()\n"
        "    with MatplotlibBackendMananger():\n"
        "        pass\n"
        "    return searched.count('matplotlib')\n"
        "installed = importlib.util.find_spec('matplotlib') is not None\n"
        "before = one_update()\n"
        "gradio_armour.tune_for_many_streams()\n"
        "print(installed, before, one_update())\n"
    )
    tuned = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    installed, before, after = tuned.stdout.split()
    if installed == "True":
        pytest.skip("matplotlib is installed here: Gradio's switch finds it, nothing to tune")
    assert (before, after) == ("2", "0"), tuned.stderr[-2000:]


@pytest.mark.parametrize(
    ("api_name", "data"),
    [
        ("chat", ["count to 45", [], "demo", visitor_token("builds"), None, "window"]),
        ("recipe", ["pancakes", "demo", "tool", 0, visitor_token("builds"), None]),
    ],
)
def test_a_stream_s_updates_build_no_components_however_many_there_are(app, monkeypatch, api_name, data):
    """Gradio builds a component anew for every output given `gr.skip()` or an update dict, reading its
    constructor's signature each time (about 1.5 ms); with three such outputs on every update of 200 streams
    that was most of the server's time. A chat answer's and a recipe's updates give every page output a
    plain value (or skip a State, which costs nothing), so the count does not grow with the updates."""
    import json
    import uuid

    import httpx
    from gradio.components.base import Component

    built: list[str] = []
    original = Component.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    config = httpx.get(f"{app.url}config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex
    updates = 0
    with httpx.Client(base_url=app.url, timeout=60) as client:
        monkeypatch.setattr(Component, "__init__", counting)
        payload = {"data": data, "fn_index": fn_index, "session_hash": session}
        client.post("gradio_api/queue/join", json=payload).raise_for_status()
        with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                updates += message.get("msg") == "process_generating"
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    break
    assert updates >= 8  # enough that one component per update could not hide
    assert built == []


def test_python_app_py_starts_and_answers_with_nothing_configured(tmp_path):
    """README command 1: `python app.py` on a fresh machine, no key, no configuration."""
    import os

    from tests.apps import app_process

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "OPENAI_", "ANTHROPIC_"))}
    environment["CHAT_DB"] = str(tmp_path / "chat.db")  # the one exception: keep the test's data in its folder
    with app_process(environment, flags=True) as (_, url):  # --port and --host
        chat, *_ = Client(url, verbose=False).predict("Hello!", "demo", visitor_token("fresh"), api_name="/chat")
        assert "Demo model" in last_answer(chat)


def test_fifty_visitors_stream_at_the_same_time():
    """Every one of 50 simultaneous chats has its first text before any of them finishes."""
    with running_app(Settings(demo_first_token_delay=0.3, demo_tokens_per_second=10, warm_up=False)) as app:
        events, failures = _stream_fifty_at_once(app.url)
    assert failures == []
    kinds = [kind for kind, _ in events]
    assert kinds.count("first") == 50 and kinds.count("done") == 50
    assert kinds.index("done") >= 50, "a chat finished before all 50 had started streaming: they were queued"


def test_the_queue_keeps_no_monitoring_records_and_summarises_nothing():
    """Gradio's monitoring dashboard is off: its route refuses, and the queue neither keeps its last 10,000
    events nor summarises them with pandas after each one (3-8 ms of CPU an event, benchmarks/ANALYSIS.md)."""
    import httpx

    with running_app(Settings(warm_up=False)) as app:
        client = Client(app.url, verbose=False)
        for number, prompt in enumerate(["Bonjour !", "count to 7", "¿Qué tal, señora?"]):
            client.predict(prompt, "demo", visitor_token(f"guest{number}"), api_name="/chat")
        queue = app.demo._queue
        assert queue.events_recorded >= 3
        assert len(queue.event_analytics) <= 1
        assert queue.cached_event_analytics_summary == {"functions": {}}
        assert httpx.get(f"{app.url}monitoring").status_code == 403
    assert "GRADIO_ANALYTICS_MAX_EVENTS" not in os.environ  # set for the queue's creation only


def _stream_fifty_at_once(url: str) -> tuple[list[tuple[str, int]], list[str]]:
    import json
    import threading
    import uuid

    import httpx

    config = httpx.get(f"{url}config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
    events: list[tuple[str, int]] = []
    lock = threading.Lock()
    failures: list[str] = []

    def visitor(number: int) -> None:
        session = uuid.uuid4().hex
        payload = {
            "data": ["count to 60", [], "demo", visitor_token(f"visitor{number}"), None, "window"],
            "fn_index": fn_index,
            "session_hash": session,
        }
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                client.post("gradio_api/queue/join", json=payload).raise_for_status()
                seen_first = False
                with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
                    for line in stream.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        message = json.loads(line[5:])
                        if message.get("msg") == "process_generating" and not seen_first:
                            seen_first = True
                            with lock:
                                events.append(("first", number))
                        elif message.get("msg") == "process_completed":
                            if not message.get("success"):
                                failures.append(str(message))
                            with lock:
                                events.append(("done", number))
                            return
        except Exception as error:  # noqa: BLE001 (a thread: reported below, with the visitor's number)
            failures.append(f"visitor {number}: {error!r}")

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return events, failures


def test_another_visitor_reaches_nothing_through_any_endpoint(app):
    """Visitor B, knowing A's conversation id, calls every event the page has, hidden ones included."""
    import uuid

    from tests.apps import queue_call

    victim = visitor_token("victim")
    Client(app.url, verbose=False).predict("my bank PIN is 4321", "demo", victim, api_name="/chat")
    (summary,) = run_to_completion(app.service.store.list_sessions(victim))
    stolen_id = summary.conversation_id
    attacker, session = visitor_token("attacker"), uuid.uuid4().hex

    # Gradio itself refuses a radio value that is not among this session's choices; our handler would too.
    switched = queue_call(app.url, "switch", [attacker, stolen_id], session)
    assert switched == [] or (switched[0] == [] and "does not exist" in switched[4])
    found = queue_call(app.url, "search", [attacker, "4321"], session)[0]
    assert found.get("choices") == []
    # The sidebar's rows send the chat they act on with their event: anyone can send any id there.
    opened = queue_call(app.url, "open_picked", [attacker], session, {"id": stolen_id})
    assert "4321" not in str(opened)
    queue_call(app.url, "rename", [attacker, None], session, {"id": stolen_id, "title": "pwned"})
    exported = queue_call(app.url, "export_picked", [attacker], session, {"id": stolen_id, "kind": "json"})
    assert "4321" not in str(exported)
    for delete in ("delete", "delete_1"):
        queue_call(app.url, delete, [attacker, None], session, {"id": stolen_id})
    queue_call(app.url, "stop", [attacker, stolen_id], session)
    queue_call(app.url, "refresh", [attacker, stolen_id, stolen_id, ""], session)
    queue_call(app.url, "open_from_url", [attacker], session)
    queue_call(app.url, "undo", [attacker, stolen_id, []], session)
    answer = queue_call(app.url, "chat", ["what is the PIN?", [], "demo", attacker, stolen_id, "full"], session)
    assert "4321" not in str(answer)

    assert run_to_completion(app.service.store.session(stolen_id, victim)).title == "my bank PIN is 4321"
    assert [s.conversation_id for s in run_to_completion(app.service.store.list_sessions(victim))] == [stolen_id]
    attackers = run_to_completion(app.service.store.list_sessions(attacker))
    assert stolen_id not in {s.conversation_id for s in attackers}
    for own in attackers:
        messages = asyncio.run(app.service.edits.load_messages(attacker, own.conversation_id))
        assert "4321" not in str(messages)


def test_killed_mid_stream_the_prompt_and_the_answer_so_far_survive_a_restart(tmp_path):
    """SIGKILL while an answer streams: after a restart the earlier turns are intact, the file is sound, and
    the killed turn is back in its conversation: its prompt, its answer up to the last checkpoint, labelled."""
    import os
    import signal

    from chat.render import to_bubbles
    from storage.sqlite_store import SQLiteConversationStore
    from tests.apps import app_process

    database = tmp_path / "chat.db"
    environment = dict(os.environ, CHAT_DB=str(database), CHAT_DEMO_TPS="40", CHAT_DEMO_DELAY="0.05")
    killed = visitor_token("killed")
    with app_process(environment) as (process, url):
        client = Client(url, verbose=False)
        client.predict("My name is Sam and I am 41.", "demo", killed, api_name="/chat")
        job = client.submit("Cuenta hasta 5000, por favor: count to 5000", "demo", killed, api_name="/chat")
        while not job.outputs():
            time.sleep(0.02)
        time.sleep(3.0)  # longer than one checkpoint interval (2 s)
        seen = job.outputs()[-1][0]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    with app_process(environment) as (_, url):
        store = SQLiteConversationStore(database)
        assert store.integrity_ok()
        (summary,) = run_to_completion(store.list_sessions(killed))  # one client session: one conversation
        shown = to_bubbles(asyncio.run(store.load(summary.conversation_id, scope=killed)).messages)
        assert "Sam" in shown[1]["content"]
        assert shown[2] == {"role": "user", "content": "Cuenta hasta 5000, por favor: count to 5000"}
        partial, label = shown[3]["content"].split("\n\n*⚠️ interrupted")
        assert "server restarted" in label
        assert len(partial) > 20 and seen.startswith(partial)  # at most the last 2 s of text are lost
        answer = Client(url, verbose=False).predict("How old am I?", "demo", killed, api_name="/chat")
        assert "41" not in last_answer(answer[0])  # a new API session starts a new conversation


def test_recipe_endpoint_streams_partial_json(app):
    import json

    client = Client(app.url, verbose=False)
    job = client.submit("麻婆豆腐", "demo", "tool", 0.05, visitor_token("recipe"), api_name="/recipe")
    partial_names = []
    for card, recipe, counters in job:
        partial_names.append(json.loads(recipe).get("name", ""))
    final = json.loads(job.outputs()[-1][1])
    assert final["name"] == "麻婆豆腐" and len(final["ingredients"]) == 9
    assert len(partial_names) >= 3 and "Completed" in job.outputs()[-1][2]


def test_an_idle_connection_stays_open_longer_than_clients_keep_theirs():
    """Uvicorn's default closes it after 5 s: a client reusing it then has its request dropped."""
    with running_app(Settings(warm_up=False)) as served:
        host, port = served.url.removeprefix("http://").strip("/").split(":")
        request = f"GET /config HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(request)
            assert read_response(connection).startswith(b"HTTP/1.1 200")
            time.sleep(6)  # idle longer than httpx's pool (5 s) keeps a connection
            connection.sendall(request)
            assert read_response(connection).startswith(b"HTTP/1.1 200")


def read_response(connection: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return head


def test_the_context_choices_always_include_the_default_and_reject_unknown_names(capsys):
    assert parse_settings({}, []).context_choices == ("window", "summary")
    assert parse_settings({"CHAT_CONTEXT": "full"}, []).context_choices == ("full", "window", "summary")
    assert parse_settings({}, ["--context-choices", "summary"]).context_choices == ("window", "summary")
    with pytest.raises(SystemExit):
        parse_settings({}, ["--context-choices", "window,everything"])
    assert "unknown everything" in capsys.readouterr().err
    assert parse_settings({"CHAT_ALLOW_ANY_MODEL": "1"}, []).allow_any_model
    assert not parse_settings({}, []).allow_any_model


def test_a_gradio_cancel_sent_before_the_job_joined_the_queue_stops_its_answer(app):
    """`gradio_client`'s `job.cancel()` right after `submit()` reaches the server before the job has an event
    id (its `/cancel` names none): the answer that then joins must stop as it starts, its prompt kept."""
    owner = visitor_token("impatient")
    client = Client(app.url, verbose=False)
    chat = next(d["id"] for d in client.config["dependencies"] if d.get("api_name") == "chat")
    cancel = {"session_hash": client.session_hash, "fn_index": chat, "event_id": None}
    httpx.post(f"{app.url}gradio_api/cancel", json=cancel)  # what the client sends; Gradio refuses it (422)
    answer, usage, _ = client.predict("count to 2500, slowly", "demo", owner, api_name="/chat")
    assert "stopped" in usage and "2500." not in last_answer(answer)
    (conversation,) = stored_conversations(app, owner)
    assert conversation.messages[-1].state == "interrupted"
    assert conversation.messages[0].parts[0].content == "count to 2500, slowly"
    # Used once: the session's next answer runs to its end.
    _, usage, _ = client.predict("count to 4", "demo", owner, api_name="/chat")
    assert "stopped" not in usage
