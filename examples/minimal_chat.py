"""A pydantic-ai agent streaming into a stock Gradio ChatInterface, with memory, Stop and saved chats.

Each chat's pydantic-ai messages live in SQLite (a row each) and go back as `message_history`. Stop keeps the
partial answer, stored as `ModelResponse(state='interrupted')`; the sidebar lists the stored chats by their
first prompt and reopens them, a stopped answer labelled "(stopped)". Run it offline, from the repository root:

    python examples/minimal_chat.py    # reads MINIMAL_CHAT_DB (default: minimal_chat.db) and GRADIO_SERVER_PORT
    python app.py                      # the full app adds owner scope, limits, a crash journal...
"""

import asyncio
import json
import os
import sys
import uuid

import gradio as gr
import sqlite_utils
from pydantic_ai import Agent
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, UserPromptPart

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for the app's `chat` package
from chat.demo_model import DemoModel

agent = Agent(DemoModel(), instructions="You are a helpful assistant.")
DB_PATH = os.environ.get("MINIMAL_CHAT_DB", "minimal_chat.db")  # opened per use: handlers run in several threads
STOPPED = "*(stopped)*"  # how a stopped answer is labelled


def load_messages(chat_id: str | None) -> list[ModelMessage]:
    rows = sqlite_utils.Database(DB_PATH)["messages"].rows_where("chat_id = ?", [chat_id], order_by="position")
    return ModelMessagesTypeAdapter.validate_python([json.loads(row["message_json"]) for row in rows])


def save_messages(chat_id: str, start: int, messages: list[ModelMessage]) -> None:
    data = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    rows = [{"chat_id": chat_id, "position": p, "message_json": json.dumps(m)} for p, m in enumerate(data, start)]
    sqlite_utils.Database(DB_PATH)["messages"].insert_all(rows, pk=("chat_id", "position"))  # creates the table


def as_bubbles(messages: list[ModelMessage]) -> list[dict]:
    """What the Chatbot shows of stored messages: the prompts, the answers, and which answers were stopped."""
    bubbles = []
    for message in messages:
        if isinstance(message, ModelRequest):
            bubbles += [{"role": "user", "content": p.content} for p in message.parts if isinstance(p, UserPromptPart)]
        else:
            bubbles += [{"role": "assistant", "content": message.text}] if message.text else []
            bubbles += [{"role": "assistant", "content": STOPPED}] if message.state == "interrupted" else []
    return bubbles


def list_chats(chat_id: str | None = None) -> gr.Radio:
    """The sidebar: every stored chat, newest first, titled by its first prompt (first message, first part)."""
    titles = "chat_id, json_extract(message_json, '$.parts[0].content') AS title"
    rows = sqlite_utils.Database(DB_PATH)["messages"].rows_where("position = 0", select=titles, order_by="rowid desc")
    return gr.Radio([(row["title"], row["chat_id"]) for row in rows], value=chat_id)


async def reply(prompt: str, history: list, chat_id: str | None):
    """Stream the answer into the bubble (Gradio's `history` goes unused: the stored messages are the memory)."""
    chat_id = chat_id or uuid.uuid4().hex
    earlier = load_messages(chat_id)
    answer = ""
    try:
        async with agent.run_stream(prompt, message_history=earlier) as run:
            async for delta in run.stream_text(delta=True, debounce_by=None):
                answer += delta
                yield answer, chat_id, gr.skip()
    except asyncio.CancelledError as cancellation:  # Stop: Gradio cancels the task running this generator
        if cancelled := RunCancelled.from_cancellation(cancellation):
            save_messages(chat_id, len(earlier), cancelled.new_messages())  # the partial, state='interrupted'
        raise  # a cancellation must go on, or the task would never end
    save_messages(chat_id, len(earlier), run.new_messages())
    yield answer, chat_id, list_chats(chat_id)


def open_chat(chat_id: str | None = None) -> tuple:
    """Show a stored chat, or with no id a new empty one; ChatInterface keeps its own copy in `chatbot_value`."""
    bubbles = as_bubbles(load_messages(chat_id))
    return chat_id, bubbles, bubbles, list_chats(chat_id)


with gr.Blocks(title="Minimal pydantic-ai chat") as demo:
    chat_id = gr.State(None)
    with gr.Sidebar():
        new_chat = gr.Button("New chat")
        chats = gr.Radio(label="Chats")
    chat = gr.ChatInterface(reply, additional_inputs=[chat_id], additional_outputs=[chat_id, chats], save_history=False)
    # Stop is ChatInterface's own: it cancels `reply`'s task. A listener of ours on Stop cannot label the live bubble
    # reliably (it runs beside the cancel, and chunks still in flight overwrite it): reopening shows the label.
    chats.input(open_chat, chats, [chat_id, chat.chatbot, chat.chatbot_value, chats], api_name="open_chat")
    new_chat.click(open_chat, None, [chat_id, chat.chatbot, chat.chatbot_value, chats], api_name="new_chat")
    demo.load(list_chats, chat_id, chats, api_name="list_chats")

if __name__ == "__main__":
    demo.launch()
