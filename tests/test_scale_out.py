"""README's "Scale out" command, run as a user runs it: PostgreSQL, two replicas and nginx on this machine.

`python -m deploy.scale_out` starts them all; the tests go through nginx only, as visitors would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from deploy.local_postgres import free_port, missing_reason
from deploy.scale_out import nginx_program
from tests.apps import visitor_token
from tests.test_replicas import AnswerInBackground, chat

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(nginx_program() is None, reason="nginx is not installed"),
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]


@pytest.fixture(scope="module")
def scaled_out():
    """`python -m deploy.scale_out --replicas 2`; yields (nginx URL, replica pids, the runner process)."""
    pytest.importorskip("psycopg")
    folder = Path(tempfile.mkdtemp(prefix="chat-scale-out-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user (as root: 'postgres'), which must reach its data
    port = free_port()
    environment = dict(os.environ, CHAT_DEMO_TPS="60", CHAT_DEMO_DELAY="0.02", CHAT_RECOVER_EVERY="1")
    runner = subprocess.Popen(
        [sys.executable, "-m", "deploy.scale_out", "--replicas", "2", "--port", str(port), "--folder", str(folder)],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = []
    deadline = time.monotonic() + 180
    for line in runner.stdout:
        if line.startswith("replica pid "):
            pids.append(int(line.split()[-1]))
        if line.startswith("serving "):
            break
        assert time.monotonic() < deadline
    assert runner.poll() is None and len(pids) == 2, "the runner did not start"
    yield f"http://127.0.0.1:{port}/", pids, runner
    if runner.poll() is None:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=90)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_page_and_the_gradio_api_work_through_nginx(scaled_out):
    url, _, _ = scaled_out
    page = httpx.get(url)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    client = Client(url, verbose=False)
    answer = client.predict("Dis bonjour en trois mots.", "demo", visitor_token("proxy"), api_name="/chat")
    assert "Demo model" in str(answer)


def test_stop_through_nginx_reaches_the_replica_that_streams_the_answer(scaled_out):
    url, _, _ = scaled_out
    headers = {"x-chat-owner": visitor_token("stopper")}
    answer = AnswerInBackground(url, {"message": "count to 9000"}, headers)
    answer.wait_for_deltas(20)
    conversation = answer.conversation_id
    # Sticky routing: the Stop, a request of its own, lands on the replica that streams the answer.
    stopped = httpx.post(f"{url}api/chat/stop", json={"conversation_id": conversation}, headers=headers)
    assert stopped.json() == {"stopped": True}
    assert answer.ended(timeout=20)
    assert json.loads(answer.events[-1][1])["status"] == "stopped"


def test_visitors_of_a_replica_killed_with_kill_9_find_every_conversation_on_the_other(scaled_out):
    url, pids, _ = scaled_out
    visitors = {visitor_token(f"v{n}"): n for n in range(8)}  # spread over both replicas by the hash
    conversations = {}
    for owner, n in visitors.items():
        conversations[owner], _ = chat(url, f"I'm Visitor{n}, I am {30 + n}.", headers={"x-chat-owner": owner})
    os.kill(pids[0], signal.SIGKILL)
    for owner, n in visitors.items():
        _, answer = chat(url, "How old am I?", conversation_id=conversations[owner], headers={"x-chat-owner": owner})
        assert str(30 + n) in answer


def test_sigterm_stops_the_replicas_nginx_and_postgresql(scaled_out):
    url, pids, runner = scaled_out
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=90) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)
    for pid in pids[1:]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_runners_nginx_config_is_deploy_nginx_conf_with_local_replicas_and_nginx_accepts_it(tmp_path):
    from deploy.scale_out import nginx_config

    config = nginx_config([41001, 41002, 41003], 41999, tmp_path)
    assert "app:7860" not in config and "listen 8080" not in config
    assert all(f"server 127.0.0.1:{port} " in config for port in (41001, 41002, 41003))
    assert "listen 127.0.0.1:41999;" in config and "hash $sticky_key consistent;" in config
    (tmp_path / "nginx.conf").write_text(config)
    checked = subprocess.run(
        [nginx_program(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_compose_runs_replicas_on_postgresql_behind_the_same_nginx_conf():
    import yaml

    compose = yaml.safe_load((PROJECT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "app", "nginx"}
    assert services["app"]["environment"]["CHAT_DB"].startswith("postgresql://")
    assert services["app"]["deploy"]["replicas"] >= 2
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert "server app:7860" in (PROJECT / "deploy" / "nginx.conf").read_text()  # the app service, every replica


def test_the_app_image_leaves_out_what_only_a_developers_checkout_has():
    import fnmatch

    ignored = [line for line in (PROJECT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]

    def left_out(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        return any(
            fnmatch.fnmatch(p, rule) or fnmatch.fnmatch(p, rule.removeprefix("**/"))
            for p in prefixes
            for rule in ignored
        )

    for path in ("examples/ai-sdk/node_modules/ai/package.json", ".git/HEAD", "data/chat.db", "chat/__pycache__/x.pyc"):
        assert left_out(path), path
    for path in ("app.py", "chat/turns.py", "requirements.txt", "examples/ai-sdk/dist/app.js", "deploy/nginx.conf"):
        assert not left_out(path), path
