// Chat in the call (docs/protocol.md section 2, `chat`): what a reader sees of a message (in their
// caption language where a model translates it, marked as chat, with the words as typed beneath), and
// what a writer is told before and after sending one.

import { el, userText } from "./dom.js";
import { formatTime, languageName, t } from "./i18n.js";
import { badgeText, noteText, pathLabel, provenance } from "./paths.js";

const MAX_CHAT_CHARS = 2000; // protocol/signalling.py: MAX_CHAT_CHARS
// Control and invisible formatting characters, which the server refuses in chat (new lines and tabs
// are allowed).
const FORBIDDEN = /[\p{Cc}\p{Cf}]/u;

function translated(message) {
  return message.path === "machine" || message.path === "pivot";
}

// The nodes of a chat line on the caption board (captions.js).
export function chatNodes(message) {
  const note = noteText(message);
  return [
    el("span", { className: "speaker" }, userText(message.sender_name)),
    el("span", { className: "chat-tag", textContent: t("chat.tag") }),
    el("span", {
      className: "lang",
      textContent: badgeText(message.source_language, message.language),
      title: provenance(message.path, message.source_language, message.language, message.model),
    }),
    el("span", { className: "text", lang: message.language, dir: "auto", textContent: message.text }),
    note ? el("span", { className: "note", textContent: note }) : null,
    translated(message)
      ? el(
          "span",
          { className: "original" },
          el("span", { className: "original-label", textContent: t("chat.original", { language: languageName(message.source_language) }) }),
          " ",
          el("span", { lang: message.source_language, dir: "auto", textContent: message.original }),
        )
      : null,
  ];
}

// A chat line in the downloaded text file.
export function chatFileLine(message) {
  const language = translated(message)
    ? `${t("chat.tag")}, ${badgeText(message.source_language, message.language)}, ${pathLabel(message.path)}`
    : `${t("chat.tag")}, ${message.language}`;
  const note = noteText(message);
  const original = translated(message) ? ` [${t("chat.original", { language: languageName(message.source_language) })} ${message.original}]` : "";
  return `[${formatTime(message.sent_at)}] ${message.sender_name} (${language}): ${message.text}${note ? ` [${note}]` : ""}${original}`;
}

// Why a message cannot be sent as it is (a catalogue key and its parameters), or null.
export function chatProblem(text) {
  if (text.length > MAX_CHAT_CHARS) return ["chat.tooLong", { max: MAX_CHAT_CHARS, length: text.length }];
  const cleaned = text.replace(/[\n\t]/g, "");
  if (FORBIDDEN.test(cleaned)) return ["chat.formatting", {}];
  return null;
}

// The messages this page sent that the server has not yet answered with the message itself: an error
// about chat that arrives meanwhile is about the oldest of them, which is given back to the writer.
export class ChatOutbox {
  constructor() {
    this.waiting = [];
  }

  sent(text) {
    this.waiting.push(text);
  }

  // The server delivered one of this page's messages (to this page too).
  delivered(message) {
    const index = this.waiting.indexOf(message.original);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  // An error answered a message of this page: the text it refused, or null when none was waiting.
  refused() {
    return this.waiting.shift() ?? null;
  }

  clear() {
    this.waiting = [];
  }
}

// What the writer is told when the server refuses a message (docs/protocol.md: `too_large` past
// MAX_CHAT_CHARS; `chat_busy` while three of their messages are still being translated: this page
// checks the rest before sending).
export function refusalKey(code) {
  return code === "too_large" ? "chat.tooLongServer" : "chat.busy";
}

export const CHAT_ERROR_CODES = new Set(["too_large", "chat_busy"]);
