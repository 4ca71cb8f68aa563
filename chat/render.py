"""What the chat shows: stored pydantic-ai messages as chat bubbles, and a turn's usage as one line."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UserPromptPart,
)

from chat.endings import CONNECTION_LOST, END_KEY, LENGTH_LIMIT, SERVER_RESTARTED, STOPPED
from chat.runs import RunStatus
from chat.steps import (
    APPROVE,
    APPROVED,
    DENIED,
    DENIED_VERDICT,
    DENY,
    PASSED_OVER_VERDICT,
    THINKING,
    Step,
    steps_of,
    thinking_key,
)
from chat.turn_hooks import ContextReport
from chat.turn_stats import TurnStats
from chat.turns import TurnUpdate
from chat.untrusted import images_as_links

STOPPED_LABEL = "\n\n*⏹ stopped*"
CUT_LABEL = "\n\n*✂️ cut: this answer reached the longest this server writes*"
CONNECTION_LOST_LABEL = "\n\n*⚠️ connection lost: the answer may be incomplete*"
SERVER_RESTARTED_LABEL = "\n\n*⚠️ interrupted: the server restarted while this answer was being written*"
LABELS = {
    STOPPED: STOPPED_LABEL,
    LENGTH_LIMIT: CUT_LABEL,
    CONNECTION_LOST: CONNECTION_LOST_LABEL,
    SERVER_RESTARTED: SERVER_RESTARTED_LABEL,
}
"""How an answer that ended early is labelled, by the reason stored with it (chat/endings.py)."""
ENDED_LABELS = tuple(LABELS.values())
_REASON_OF_STATUS = {
    RunStatus.STOPPED: STOPPED,
    RunStatus.CUT: LENGTH_LIMIT,
    RunStatus.CONNECTION_LOST: CONNECTION_LOST,
}
FAILED_PREFIX = "⚠️ "

Bubble = dict[str, Any]
"""A chat message as Gradio takes it: `role`, `content`, and for a step `metadata` (its collapsible title)."""


def ended_label(reason: str | None) -> str:
    return LABELS.get(reason or "", "")


def status_label(status: RunStatus) -> str:
    """The label of a turn just ended, the same one it gets when shown again from the store."""
    return ended_label(_REASON_OF_STATUS.get(status))


def answer_markdown(update: TurnUpdate, image_hosts: Collection[str] = ()) -> str:
    """The answer bubble for a turn update: the text so far, labelled if it ended early, or the failure.

    Images from other hosts than `image_hosts` and the app itself are shown as links (chat/untrusted.py).
    """
    if update.status is RunStatus.FAILED:
        return f"{FAILED_PREFIX}{update.error}"
    return images_as_links(update.text, image_hosts) + status_label(update.status)


def answer_messages(update: TurnUpdate, image_hosts: Collection[str] = ()) -> str | list[Bubble]:
    """What ChatInterface shows for a turn update: the answer alone, or the agent's steps (collapsible,
    each a message with metadata) followed by the answer as far as it got."""
    answer = answer_markdown(update, image_hosts)
    if not update.steps:
        return answer
    shown = [step_bubble(step) for step in update.steps]
    if answer:
        shown.append({"role": "assistant", "content": answer})
    question = approval_bubble(update.steps)
    return [*shown, question] if question else shown


MAX_SHOWN_CHARS = 2_000
"""A step shows at most this much of a tool's arguments or result; the model got all of it."""


def approval_bubble(steps: Sequence[Step]) -> Bubble | None:
    """The question under calls that wait for the visitor: Gradio shows `options` as buttons, and a
    click sends the option as the visitor's next message (chat/wings/approvals.py reads it)."""
    waiting = [step for step in steps if step.awaiting_approval]
    if not waiting:
        return None
    names = ", ".join(f"`{step.tool}`" for step in waiting)
    return {
        "role": "assistant",
        "content": f"{QUESTION_MARK} The model wants to run {names} (open the step above to see exactly what). Allow it?",
        "options": [{"value": APPROVE, "label": f"✅ {APPROVE}"}, {"value": DENY, "label": f"✋ {DENY}"}],
    }


QUESTION_MARK = "⏸"
WAITING = "⏸ waiting for you"
VERDICT_MARKS = {APPROVED: "✅", DENIED_VERDICT: "✋", PASSED_OVER_VERDICT: "↪"}
SETTLED_QUESTIONS = {
    APPROVED: "✅ **Approved**: the model may run {names}.",
    DENIED_VERDICT: "✋ **Denied**: {names} was not run.",
    PASSED_OVER_VERDICT: "↪ **Passed over**: you wrote something else, so {names} was not run.",
}


def verdict_of(prompt: str) -> str:
    """How a message sent while a call waits settles it: the page's Approve and Deny buttons send these
    words (chat/wings/approvals.py `decision` reads them the same way); anything else passes it over."""
    said = prompt.strip().casefold()
    return (
        APPROVED if said == APPROVE.casefold() else DENIED_VERDICT if said == DENY.casefold() else PASSED_OVER_VERDICT
    )


def settle_shown(chat: list[Bubble], prompt: str) -> bool:
    """Settle, in place, the question a chat still shows as waiting, now that `prompt` answers it: its steps
    lose "waiting for you" for the verdict and its question becomes a settled card without buttons.

    Only a question after the chat's last user message is open; True when one was settled. (Gradio's
    ChatInterface shows a message its fn edits in place in the history it was given.)"""
    last_user = max((i for i, bubble in enumerate(chat) if bubble.get("role") == "user"), default=-1)
    verdict = verdict_of(prompt)
    tools = []
    for bubble in chat[last_user + 1 :]:
        metadata = bubble.get("metadata") or {}
        title = metadata.get("title") or ""
        if title.endswith(WAITING):
            tools.append(title.removesuffix(f" · {WAITING}").removeprefix("🛠️ "))
            metadata.update(title=f"{title.removesuffix(WAITING)}{VERDICT_MARKS[verdict]} {verdict}", status="done")
            bubble["metadata"] = metadata
        elif _text_of(bubble.get("content")).startswith(f"{QUESTION_MARK} The model wants to run"):
            names = ", ".join(f"`{tool}`" for tool in tools) or "it"
            bubble["content"] = SETTLED_QUESTIONS[verdict].format(names=names)
            bubble.pop("options", None)
    return bool(tools)


def _text_of(content: Any) -> str:
    """A message's text, whether Gradio gives it as a string or as `{"type": "text", "text": ...}` parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def step_bubble(step: Step) -> Bubble:
    """A step as a collapsible chat message: Gradio shows `metadata.title`, and the body when opened."""
    if step.kind == THINKING:
        title, body = "💭 Thinking", step.text
    else:
        title = f"🛠️ {step.tool}" + _state_shown(step)
        body = f"**Arguments**\n\n{_code(step.text)}"
        if step.result is not None:
            body += f"\n\n**Result**\n\n{_code(step.result)}"
        if step.error is not None:
            body += f"\n\n**Error** (the model was told)\n\n{_code(step.error)}"
    # A call waiting for the visitor is not running: no spinner ("pending"), as for any settled step.
    pending = not step.done and not step.awaiting_approval
    metadata: dict[str, Any] = {"title": title, "id": step.id, "status": "pending" if pending else "done"}
    if step.seconds is not None:
        metadata["duration"] = round(step.seconds, 3)
    return {"role": "assistant", "content": body, "metadata": metadata}


def _state_shown(step: Step) -> str:
    """What a tool step's title says after its name: waiting, the visitor's verdict, or how it failed."""
    if step.awaiting_approval:
        return f" · {WAITING}"
    if step.verdict is not None:
        failed = " · failed" if step.verdict == APPROVED and step.error is not None else ""
        return f" · {VERDICT_MARKS[step.verdict]} {step.verdict}{failed}"
    return " · denied" if step.error == DENIED else " · failed" if step.error is not None else ""


def _code(text: str) -> str:
    shown = text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "\n…"
    fence = "````" if "```" in shown else "```"
    return f"{fence}\n{shown}\n{fence}"


def format_tools(tools: Sequence[tuple[str, str]], notices: Sequence[str]) -> str:
    """The page's list of what the model can call, and of MCP servers that are not offered."""
    lines = [f"- **{name}**: {description.splitlines()[0] if description else ''}" for name, description in tools]
    return "\n".join([*lines, *(f"\n⚠️ {notice}" for notice in notices)])


def prompts_in(chat: Sequence[dict]) -> list[str]:
    """The user prompts a chat shows, as text: Gradio sends a message's content as a string (API) or as
    a list of `{"type": "text", "text": ...}` parts (the page)."""
    prompts = []
    for message in chat or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            prompts.append(content if isinstance(content, str) else str(content or ""))
    return prompts


def to_bubbles(messages: Sequence[ModelMessage], image_hosts: Collection[str] = ()) -> list[Bubble]:
    """What the chat shows of stored messages: images from elsewhere as links, as in `answer_markdown`."""
    return [
        {**bubble, "content": images_as_links(bubble["content"], image_hosts)} for bubble in _exact_bubbles(messages)
    ]


def _exact_bubbles(messages: Sequence[ModelMessage]) -> list[Bubble]:
    """User prompts, the agent's steps and text answers, as the live chat showed them; answers that ended
    early keep their label."""
    bubbles: list[Bubble] = []
    stored_steps = steps_of(messages)
    steps = {step.id: step for step in stored_steps}
    for index, message in enumerate(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    bubbles.append({"role": "user", "content": part.content})
        elif isinstance(message, ModelResponse):
            for part_index, part in enumerate(message.parts):
                key = part.tool_call_id if isinstance(part, ToolCallPart) else thinking_key(index, part_index)
                if isinstance(part, (ToolCallPart, ThinkingPart)) and key in steps:
                    bubbles.append(step_bubble(steps[key]))
            text = "".join(part.content for part in message.parts if isinstance(part, TextPart))
            label = ended_label((message.metadata or {}).get(END_KEY))
            if text or label:
                bubbles.append({"role": "assistant", "content": text + label})
    question = approval_bubble(stored_steps)
    return [*bubbles, question] if question else bubbles


def format_stats(stats: TurnStats, status: RunStatus = RunStatus.COMPLETED) -> str:
    approx = "≈" if stats.estimated else ""
    parts = [
        f"**{stats.model}**",
        f"{stats.requests} request{'s' if stats.requests != 1 else ''}",
        f"{approx}{stats.input_tokens:,} in / {approx}{stats.output_tokens:,} out tokens"
        + (" (estimated)" if stats.estimated else ""),
    ]
    if stats.first_token_seconds is not None:
        parts.append(f"first token {stats.first_token_seconds:.2f} s")
    parts.append(f"total {stats.total_seconds:.2f} s")
    if status is RunStatus.STOPPED:
        parts.append("stopped")
    elif status is RunStatus.CUT:
        parts.append("cut at the length limit")
    elif status is RunStatus.CONNECTION_LOST:
        parts.append("connection lost")
    return " · ".join(parts)


def to_markdown(title: str, messages: Sequence[ModelMessage]) -> str:
    """A readable transcript; the JSON export is the lossless one."""
    lines = [f"# {title}", ""]
    for bubble in _exact_bubbles(messages):  # a file: the text exactly as written
        if "metadata" in bubble:
            lines += [f"*{bubble['metadata']['title']}*", "", bubble["content"], ""]
            continue
        speaker = "**You**" if bubble["role"] == "user" else "**Assistant**"
        lines += [speaker, "", bubble["content"], ""]
    return "\n".join(lines)


def format_context(report: ContextReport, stats: TurnStats | None) -> str:
    """The context inspector: what the last request of the turn carried, and what it stood for."""
    dropped = report.total_messages - report.sent_messages
    lines = [
        f"**Policy:** {report.policy}",
        f"**Sent:** {report.sent_messages} of {report.total_messages} messages"
        + (f" (cut at message {report.cut_at + 1}; {dropped} older ones not sent)" if report.cut_at else ""),
        f"**Approximate input tokens sent:** ≈{report.approx_tokens:,}",
    ]
    if stats is not None:
        reported = f"{stats.input_tokens:,}" + (" (estimated)" if stats.estimated else "")
        lines.append(f"**Input tokens reported for the turn:** {reported}")
    if report.summary:
        fresh = " (made for this turn)" if report.summarized_now else " (stored, reused)"
        quoted = "\n".join(f"> {line}" for line in report.summary.splitlines())
        lines += [f"**Summary standing for the first {report.cut_at} messages{fresh}:**", "", quoted]
    if report.notice:
        lines.append(f"⚠️ {report.notice}")
    return "  \n".join(lines[:4]) + ("\n\n" + "\n".join(lines[4:]) if lines[4:] else "")
