"""examples/minimal_chat.py as a workshop runs it: `python examples/minimal_chat.py`, driven through its Gradio API.

One server for the module (a temporary `MINIMAL_CHAT_DB`); the last test restarts it on the same database.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
import sqlite_utils
from gradio_client import Client

from deploy.local_postgres import free_port
from tests.apps import serving_process

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "minimal_chat.py"


@dataclass
class MinimalChat:
    """The running example: its URL, its database, and a way to restart it on that database."""

    db_path: Path
    stack: ExitStack = field(default_factory=ExitStack)
    process: object = None
    url: str = ""

    def start(self) -> None:
        port = free_port()
        environment = dict(
            os.environ,
            MINIMAL_CHAT_DB=str(self.db_path),
            GRADIO_SERVER_PORT=str(port),
            GRADIO_SERVER_NAME="127.0.0.1",
            GRADIO_ANALYTICS_ENABLED="False",
        )
        self.process, self.url = self.stack.enter_context(
            serving_process([sys.executable, "examples/minimal_chat.py"], environment, port)
        )

    def restart(self) -> None:
        self.stack.close()
        self.stack = ExitStack()
        self.start()

    def client(self) -> Client:
        """A new visitor: a session of its own, so a new chat."""
        return Client(self.url, httpx_kwargs={"timeout": 60}, verbose=False)

    def stored(self) -> list[dict]:
        """The database's rows, read directly, with each message's JSON decoded."""
        rows = sqlite_utils.Database(self.db_path)["messages"].rows_where(order_by="chat_id, position")
        return [{**row, "message": json.loads(row["message_json"])} for row in rows]


@pytest.fixture(scope="module")
def minimal_chat(tmp_path_factory) -> Iterator[MinimalChat]:
    served = MinimalChat(tmp_path_factory.mktemp("minimal-chat") / "chat.db")
    served.start()
    try:
        yield served
    finally:
        served.stack.close()


def answer_of(output) -> str:
    """The answer in one output of `/reply`: the text, then the sidebar's update."""
    return output[0] if isinstance(output, tuple | list) else output


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def test_the_example_fits_on_one_screen():
    assert len(EXAMPLE.read_text().splitlines()) <= 100


def test_an_answer_streams_in_growing_updates(minimal_chat):
    job = minimal_chat.client().submit("count to 30", api_name="/reply")
    seen: list[str] = []
    for output in job:  # each update as it arrives
        if not seen or answer_of(output) != seen[-1]:
            seen.append(answer_of(output))
    assert len(seen) >= 5, seen
    assert all(later.startswith(earlier) for earlier, later in pairwise(seen)), seen
    assert seen[-1] == " ".join(str(n) for n in range(1, 31)) + "."


def test_a_second_turn_remembers_the_first(minimal_chat):
    client = minimal_chat.client()
    told = answer_of(client.predict("My name is Ondrea and I am 52", api_name="/reply"))
    assert "Ondrea" in told
    assert answer_of(client.predict("how old am I?", api_name="/reply")) == "You are 52 years old."
    assert answer_of(client.predict("what is my name?", api_name="/reply")) == "Your name is Ondrea."
    # The memory is the stored pydantic-ai messages: six rows for three turns, request then response.
    chat = [
        row
        for row in minimal_chat.stored()
        if row["chat_id"] == chat_id_of(minimal_chat, "My name is Ondrea and I am 52")
    ]
    assert [row["message"]["kind"] for row in chat] == ["request", "response"] * 3
    assert [row["position"] for row in chat] == list(range(6))


def chat_id_of(minimal_chat: MinimalChat, first_prompt: str) -> str | None:
    firsts = [row for row in minimal_chat.stored() if row["position"] == 0]
    return next((row["chat_id"] for row in firsts if row["message"]["parts"][0]["content"] == first_prompt), None)


def test_stop_keeps_the_partial_answer_labelled_stopped(minimal_chat):
    client = minimal_chat.client()
    job = client.submit("count to 400", api_name="/reply")
    # gradio_client's cancel before the first output does nothing on the server: wait for some text.
    wait_for(lambda: job.outputs() and " 5" in answer_of(job.outputs()[-1]), "the first numbers")
    job.cancel()

    chat_id = wait_for(lambda: chat_id_of(minimal_chat, "count to 400"), "the stopped turn to be saved")
    request, answer = [row["message"] for row in minimal_chat.stored() if row["chat_id"] == chat_id]
    assert (request["kind"], answer["kind"], answer["state"]) == ("request", "response", "interrupted")
    partial = answer["parts"][0]["content"]
    assert partial.startswith("1 2 3 4 5") and not partial.endswith("400.")

    client.predict(api_name="/list_chats")  # the sidebar as the page loads it, so the chat can be picked
    shown = client.predict(chat_id, api_name="/open_chat")
    bubbles = next(output for output in shown if isinstance(output, list))
    # The Chatbot sends each message back as a list of text parts.
    texts = ["".join(part["text"] for part in bubble["content"]) for bubble in bubbles]
    assert texts[-3:] == ["count to 400", partial, "*(stopped)*"]
    assert [bubble["role"] for bubble in bubbles[-3:]] == ["user", "assistant", "assistant"]


def test_the_sidebar_lists_the_chats_after_a_restart(minimal_chat):
    client = minimal_chat.client()
    client.predict("My name is Pellam and I am 63", api_name="/reply")
    minimal_chat.restart()
    listed = minimal_chat.client().predict(api_name="/list_chats")
    titles = [title for title, _ in listed["choices"]]
    assert "My name is Pellam and I am 63" in titles
    assert titles[0] == "My name is Pellam and I am 63"  # newest first
