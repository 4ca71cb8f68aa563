// A small chat page on the AI SDK's Chat (see chat.js). Served by the app at /examples/ai-sdk/ once built,
// so its requests carry the visitor's cookie and its chats appear in the app's sidebar.
// /examples/ai-sdk/?chat=<id> opens that chat of yours.
import { DefaultChatTransport } from "ai";
import { Chat } from "./chat.js";

const list = document.getElementById("messages");
const errorLine = document.getElementById("error");
const form = document.getElementById("composer");
const prompt = document.getElementById("prompt");
const button = document.getElementById("send");

const api = new URL("../../api/vercel-ai", location.href).href;
const named = new URLSearchParams(location.search).get("chat");
const chatId = named ?? crypto.randomUUID();

// A chat of yours that exists (started here, in the app's page or over any route) opens where it is:
// the messages sent with the next turn are what this page shows, so it must show them all first.
// Only when the address names one: a fresh id has nothing stored, and asking would only log a 404.
async function storedMessages(id) {
  const response = await fetch(`${api}/${encodeURIComponent(id)}`);
  return response.ok ? await response.json() : [];
}

const chat = new Chat({
  id: chatId,
  messages: named ? await storedMessages(named) : [],
  transport: new DefaultChatTransport({ api }),
  onChange: render,
});

function partView(part) {
  const view = document.createElement("div");
  if (part.type === "text") {
    view.textContent = part.text;
  } else if (part.type === "reasoning") {
    view.className = "step";
    view.textContent = `Thinking: ${part.text}`;
  } else if (part.type.startsWith("tool-")) {
    view.className = "step";
    const result = part.state === "output-available" ? ` → ${JSON.stringify(part.output)}` : "";
    view.textContent = `${part.type.slice(5)}(${JSON.stringify(part.input ?? {})})${result}`;
  } else {
    return null;
  }
  return view;
}

function render() {
  list.replaceChildren(
    ...chat.messages.map((message) => {
      const bubble = document.createElement("div");
      bubble.className = `message ${message.role}`;
      bubble.append(...message.parts.map(partView).filter(Boolean));
      return bubble;
    }),
  );
  const busy = chat.status === "submitted" || chat.status === "streaming";
  button.textContent = busy ? "Stop" : "Send";
  button.type = busy ? "button" : "submit";
  errorLine.textContent = chat.error ? chat.error.message : "";
}

button.addEventListener("click", (event) => {
  if (button.type === "button") {
    event.preventDefault();
    chat.stop();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = prompt.value.trim();
  if (!text) return;
  prompt.value = "";
  chat.sendMessage({ text });
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

render();
