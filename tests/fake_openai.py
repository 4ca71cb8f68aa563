"""A local OpenAI-compatible Chat Completions server with scripted streams and faults, for tests.

The last user message picks the script:
  "fault:400" / "fault:401" / "fault:429" / "fault:500"  an HTTP error before any chunk, its body naming
                                         an account (429 sends Retry-After: 7)
  "fault:slow"       waits 30 s before answering (for timeouts)
  "fault:cut"        streams three words, then ends the response cleanly with no finish_reason
  "fault:drop"       streams three words, then breaks the connection mid-body
  "fault:emoji"      streams an emoji split into two lone surrogates across two chunks
  "slow"             streams 200 words, one every 50 ms (for Stop)
  with an output tool (`final_result…`) in the request: the recipe below as tool-call argument deltas,
  in OpenAI's format ("fault:badjson": arguments that do not fit the schema)
  "tool:NAME"        with NAME offered: a streamed call of it (`calculate` with an expression, any other
                     with {"asked": the prompt}); once its result comes back (a `tool` message last),
                     an answer quoting the result
  anything else      streams "word0 word1 ... word9" and a final usage chunk
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class ServerLog:
    requests: list[dict] = field(default_factory=list)
    chunks_sent: int = 0
    disconnects: int = 0
    completed_streams: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)


def _chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> str:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


class _DropConnection(Exception):
    pass


def build_app(log: ServerLog) -> Starlette:
    async def completions(request: Request) -> Response:
        payload = await request.json()
        log.requests.append(payload)
        prompt = next((m["content"] for m in reversed(payload["messages"]) if m["role"] == "user"), "")
        if isinstance(prompt, list):
            prompt = " ".join(part.get("text", "") for part in prompt)
        for code in (400, 401, 429, 500):
            if f"fault:{code}" in prompt:
                headers = {"retry-after": "7"} if code == 429 else {}
                return JSONResponse(
                    {"error": {"message": f"scripted {code} for org-Zq81x", "type": "test", "code": str(code)}},
                    status_code=code,
                    headers=headers,
                )
        if "fault:slow" in prompt:
            await asyncio.sleep(30)

        offered = [tool["function"]["name"] for tool in payload.get("tools") or []]
        output_tool = next((name for name in offered if name.startswith("final_result")), None)
        if output_tool is not None:
            arguments = (
                '{"name": "Leek soup", "steps": "not a list"}' if "fault:badjson" in prompt else RECIPE_ARGUMENTS
            )
            return StreamingResponse(_tool_call_stream(output_tool, arguments, log), media_type="text/event-stream")
        last = payload["messages"][-1]
        if last["role"] == "tool":
            return StreamingResponse(_words(f"The tool said {last['content']} .", log), media_type="text/event-stream")
        if (named := re.search(r"tool:(\w+)", prompt)) and named.group(1) in offered:
            arguments = json.dumps({"expression": "6 * 7"} if named.group(1) == "calculate" else {"asked": prompt})
            return StreamingResponse(_tool_call_stream(named.group(1), arguments, log), media_type="text/event-stream")

        async def stream() -> AsyncIterator[str]:
            try:
                yield _chunk({"role": "assistant", "content": ""})
                if "fault:emoji" in prompt:
                    # json.dumps escapes each lone surrogate as \udXXX, exactly as a server slicing UTF-16 would.
                    for piece in ["Smile ", "\ud83d", "\ude00", " done"]:
                        log.chunks_sent += 1
                        yield _chunk({"content": piece})
                    yield _chunk({}, "stop", {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15})
                    log.completed_streams += 1
                    return
                words = 200 if "slow" in prompt else 10
                for index in range(words):
                    if "fault:cut" in prompt and index == 3:
                        return
                    if "fault:drop" in prompt and index == 3:
                        raise _DropConnection
                    log.chunks_sent += 1
                    yield _chunk({"content": f"word{index} "})
                    await asyncio.sleep(0.05 if "slow" in prompt else 0)
                yield _chunk({}, "stop", {"prompt_tokens": 21, "completion_tokens": words, "total_tokens": 21 + words})
                yield "data: [DONE]\n\n"
                log.completed_streams += 1
            except asyncio.CancelledError:
                log.disconnects += 1
                log.disconnected.set()
                raise

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


RECIPE_ARGUMENTS = json.dumps(
    {
        "name": "Leek soup",
        "servings": 2,
        "total_minutes": 30,
        "ingredients": [{"item": "leeks", "amount": "2"}, {"item": "potato", "amount": "1"}],
        "steps": ["Slice.", "Simmer.", "Blend."],
    }
)


async def _words(text: str, log: ServerLog) -> AsyncIterator[str]:
    yield _chunk({"role": "assistant", "content": ""})
    for word in text.split():
        log.chunks_sent += 1
        yield _chunk({"content": word + " "})
    yield _chunk({}, "stop", {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35})
    yield "data: [DONE]\n\n"


async def _tool_call_stream(tool_name: str, arguments: str, log: ServerLog) -> AsyncIterator[str]:
    yield _chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": tool_name, "arguments": ""}}
            ],
        }
    )
    for start in range(0, len(arguments), 7):
        log.chunks_sent += 1
        yield _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start : start + 7]}}]})
        await asyncio.sleep(0.002)
    yield _chunk({}, "tool_calls", {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100})
    yield "data: [DONE]\n\n"


class FakeOpenAIServer:
    """Serves `build_app` on 127.0.0.1 at a random port in a background thread."""

    def __init__(self) -> None:
        self.log = ServerLog()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(build_app(self.log), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # don't wait for the scripted 30 s stall
        self._thread.join(timeout=5)
