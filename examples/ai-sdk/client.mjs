// Drive the app's /api/vercel-ai with the AI SDK's own Chat, as a useChat page does.
// Reads a plan as JSON on stdin: {url, api?, owner?, chatId, messages?, body?, steps: [...]}, where a step is
// {send: "text", stopAfterChars?: n} or {regenerate: true}. Prints, as JSON, what the chat held after each step.
import { DefaultChatTransport } from "ai";
import { Chat, textOf } from "./chat.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const chat = new Chat({
  id: plan.chatId,
  messages: plan.messages ?? [],
  transport: new DefaultChatTransport({
    api: new URL(plan.api ?? "api/vercel-ai", plan.url).href,
    headers: plan.owner ? { "X-Chat-Owner": plan.owner } : {},
    body: plan.body ?? {},
  }),
});

async function untilAnswerHas(characters) {
  let started = false; // sendMessage sets the status a moment later: "ready" before that is not the end
  for (;;) {
    const last = chat.messages.at(-1);
    if (last?.role === "assistant" && textOf(last).length >= characters) return;
    started ||= chat.status === "submitted" || chat.status === "streaming";
    if (started && (chat.status === "ready" || chat.status === "error")) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const results = [];
for (const step of plan.steps) {
  if (step.send !== undefined) {
    const sending = chat.sendMessage({ text: step.send });
    if (step.stopAfterChars) {
      await untilAnswerHas(step.stopAfterChars);
      await chat.stop();
    }
    await sending;
  } else if (step.regenerate) {
    await chat.regenerate();
  }
  results.push({ status: chat.status, error: chat.error?.message ?? null, messages: chat.messages });
}
console.log(JSON.stringify(results));
