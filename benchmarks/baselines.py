"""The baselines the app is measured against, each serving the same demo agent with nothing of ours around it.

    python -m benchmarks.baselines gradio --port 7870 --delay 0.3 --tps 0    # a minimal gr.Blocks chat
    python -m benchmarks.baselines sse --port 7871 --delay 0.3 --tps 0       # a minimal FastAPI SSE endpoint
    python -m benchmarks.baselines chat_interface --port 7872 --delay 0.3    # a minimal gr.ChatInterface

The minimal Gradio app is the floor under our app: its queue, its per-output post-processing and
its SSE framing, with no store, no history, no sidebar. Whatever the app costs above it is ours.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

from pydantic_ai import Agent

from chat.demo_model import DemoModel, DemoPace


def demo_agent(delay: float, tokens_per_second: float) -> Agent:
    return Agent(DemoModel(DemoPace(first_token_delay=delay, tokens_per_second=tokens_per_second)))


async def stream_deltas(agent: Agent, prompt: str) -> AsyncIterator[str]:
    async with agent.run_stream(prompt) as run:
        async for delta in run.stream_text(delta=True, debounce_by=None):
            yield delta


def minimal_gradio(agent: Agent):
    import gradio as gr

    # The same inputs as the app's `/chat`: message, history, model, owner, conversation id, policy.
    async def chat(message: str, earlier: list | None, model: str, owner: str, conversation: str, policy: str):
        shown = [*(earlier or []), {"role": "user", "content": message}]
        answer = ""
        async for delta in stream_deltas(agent, message):
            answer += delta
            yield [*shown, {"role": "assistant", "content": answer}]

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot()
        inputs = [gr.Textbox(elem_id="prompt"), chatbot, gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Textbox()]
        gr.Button("Send", elem_id="send").click(chat, inputs, chatbot, api_name="chat")
    return demo.queue(default_concurrency_limit=None)


def minimal_chat_interface(agent: Agent):
    """The floor under the chat tab in a browser: a plain `gr.ChatInterface` streaming the same agent."""
    import gradio as gr

    async def chat(message: str, history: list):
        answer = ""
        async for delta in stream_deltas(agent, message):
            answer += delta
            yield answer

    textbox = gr.Textbox(elem_id="prompt", submit_btn=True, stop_btn=True)
    return gr.ChatInterface(chat, textbox=textbox, save_history=False).queue(default_concurrency_limit=None)


def minimal_sse(agent: Agent):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/")
    async def ready() -> dict:
        return {"ok": True}

    @app.get("/stream")
    async def stream(message: str) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            async for delta in stream_deltas(agent, message):
                yield f"data: {json.dumps(delta)}\n\n"
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["gradio", "sse", "chat_interface"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--tps", type=float, default=0.0)
    args = parser.parse_args()
    agent = demo_agent(args.delay, args.tps)
    if args.kind in ("gradio", "chat_interface"):
        demo = minimal_gradio(agent) if args.kind == "gradio" else minimal_chat_interface(agent)
        demo.launch(server_name="127.0.0.1", server_port=args.port, quiet=True, max_threads=400)
    else:
        import uvicorn

        uvicorn.run(minimal_sse(agent), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
