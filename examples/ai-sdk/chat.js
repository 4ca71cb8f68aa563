// The AI SDK's own Chat (the class behind React's useChat), without a framework: its state is kept here
// and `onChange` is told whenever it changes. Used by the page (main.js) and by the node client (client.mjs).
import { AbstractChat } from "ai";

class ObservableState {
  constructor(messages, onChange) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
    this.onChange = onChange;
  }

  pushMessage = (message) => {
    this.messages = [...this.messages, message];
    this.onChange();
  };

  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
    this.onChange();
  };

  replaceMessage = (index, message) => {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
    this.onChange();
  };

  snapshot = (thing) => structuredClone(thing);
}

export class Chat extends AbstractChat {
  constructor({ messages = [], onChange = () => {}, ...init }) {
    const state = new ObservableState(messages, onChange);
    super({ ...init, state });
    this.observed = state;
  }

  setStatus(change) {
    super.setStatus(change);
    this.observed.onChange();
  }
}

/** The text of a message, all its text parts together. */
export function textOf(message) {
  return message.parts
    .filter((part) => part.type === "text")
    .map((part) => part.text)
    .join("");
}
