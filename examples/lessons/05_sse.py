r"""Lesson 5: the same stream as Server-Sent Events (SSE) from a small Starlette route.

Each delta goes out as one event, `data: <json>\n\n`: JSON-encoding it lets a newline in the answer through (a raw
newline or `\r` inside `data:` would end the line early). `event: done` ends the stream. What to notice: as a
script it serves on 127.0.0.1, reads its own stream once with httpx, prints each line as it crossed the wire (see
`data: "\n-"`), then the decoded text, and exits. `--serve` keeps serving on port 8000, for curl:

    python examples/lessons/05_sse.py
    python examples/lessons/05_sse.py --serve    # then: curl -N 'http://127.0.0.1:8000/chat?prompt=Sales:+3,+5,+9'
"""

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

import httpx
import uvicorn
from pydantic_ai import Agent
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from chat.demo_model import DemoModel, DemoPace

agent = Agent(DemoModel(DemoPace.instant()), instructions="You are the ANALYST: answer in bullet points.")  # newlines


async def chat(request) -> StreamingResponse:
    async def events():
        async with agent.run_stream(request.query_params.get("prompt", "Hello!")) as result:
            async for delta in result.stream_text(delta=True, debounce_by=None):
                yield f"data: {json.dumps(delta)}\n\n"
        yield "event: done\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(routes=[Route("/chat", chat)])


async def read_own_stream() -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())  # the server runs in this same event loop
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/chat"
    text = ""
    async with httpx.AsyncClient() as client, client.stream("GET", url, params={"prompt": "Sales: 3, 5, 4, 9"}) as sse:
        async for line in sse.aiter_lines():
            print(line or "(blank line: end of event)")  # exactly what crossed the wire
            if line.startswith("data: ") and line != "data: {}":
                text += json.loads(line.removeprefix("data: "))
    print(f"--- the text, decoded:\n{text}")
    server.should_exit = True
    await serving


if "--serve" in sys.argv:
    uvicorn.run(app, host="127.0.0.1", port=8000)
else:
    asyncio.run(read_own_stream())
