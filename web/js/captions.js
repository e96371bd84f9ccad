// Caption rendering: the only module that reads caption events (protocol/captions.py: CaptionEvent;
// the field names here must match it). A change in how events mark a line's state stays in lineState().

import { el, userText } from "./dom.js";
import { formatDate, formatTime, languageName, t } from "./i18n.js";

// What a line is now: "partial" (may still change: shown at the bottom, not announced) or "final"
// (settled: moved above the lines in progress, announced, kept for the download). An event that
// revises a final line later replaces that line where it stands.
export function lineState(event) {
  return event.kind === "partial" ? "partial" : "final";
}

const PATH_KEYS = {
  original: "captions.pathOriginal",
  machine: "captions.pathMachine",
  pivot: "captions.pathPivot",
  whisper: "captions.pathWhisper",
  untranslated: "captions.pathUntranslated",
};

function pathLabel(path) {
  return PATH_KEYS[path] ? t(PATH_KEYS[path]) : path;
}

// "en" for a caption in the language spoken, "fr→en" for one read in another language.
function languageLabel(event) {
  return event.caption_language === event.source_language
    ? event.caption_language
    : `${event.source_language}→${event.caption_language}`;
}

function noteText(event) {
  if (event.path === "untranslated") {
    return t("captions.notTranslated", { from: languageName(event.source_language), to: languageName(event.caption_language) });
  }
  return event.note || "";
}

// The text, its settled beginning set apart from the part that may still change.
function fillText(node, event) {
  node.lang = event.caption_language;
  node.dir = "auto";
  const stable = el("span", { className: "stable", textContent: event.text.slice(0, event.stable_chars) });
  node.replaceChildren(stable, document.createTextNode(event.text.slice(event.stable_chars)));
}

export class CaptionBoard {
  // `lines`: the settled lines (an aria-live list); `live`: the lines in progress, below them;
  // `scroller`: the element that scrolls both.
  constructor({ lines, live, scroller }) {
    this.lines = lines;
    this.live = live;
    this.scroller = scroller;
    this.items = new Map(); // utterance_id -> {item, event}
    this.settled = new Map(); // utterance_id -> final event, in the order they settled
  }

  show(event) {
    const state = lineState(event);
    const follow = this.atBottom();
    let entry = this.items.get(event.utterance_id);
    if (!entry) {
      const item = el(
        "li",
        { className: "caption", dataset: { utterance: event.utterance_id } },
        el("span", { className: "speaker" }),
        el("span", { className: "lang" }),
        el("span", { className: "text" }),
        el("span", { className: "note" }),
      );
      entry = { item, event };
      this.items.set(event.utterance_id, entry);
    }
    if (entry.item.classList.contains("final") && state === "partial") return; // a late partial
    entry.event = event;
    this.fill(entry.item, event, state);
    if (state === "final") {
      this.settled.set(event.utterance_id, event);
      if (entry.item.parentElement !== this.lines) this.lines.append(entry.item);
    } else if (entry.item.parentElement !== this.live) {
      this.live.append(entry.item);
    }
    if (follow) this.scrollToEnd();
  }

  fill(item, event, state) {
    item.classList.toggle("final", state === "final");
    item.classList.toggle("partial", state === "partial");
    item.dataset.path = event.path;
    item.querySelector(".speaker").replaceChildren(userText(event.speaker_name));
    const lang = item.querySelector(".lang");
    lang.textContent = languageLabel(event);
    lang.title = pathLabel(event.path);
    fillText(item.querySelector(".text"), event);
    const note = item.querySelector(".note");
    note.textContent = noteText(event);
    note.hidden = !note.textContent;
  }

  // The connection dropped: lines in progress will never be finished. Those with words stay, marked
  // as cut off; empty ones go.
  cutOff() {
    for (const item of [...this.live.children]) {
      const id = item.dataset.utterance;
      if (!item.querySelector(".text").textContent.trim()) {
        item.remove();
        this.items.delete(id);
        continue;
      }
      item.classList.remove("partial");
      item.classList.add("cut-off");
      const note = item.querySelector(".note");
      note.textContent = t("captions.cutOff");
      note.hidden = false;
      this.lines.append(item);
      this.items.delete(id); // a later event with this id (none should come) starts a new line
    }
  }

  relabel() {
    for (const { item, event } of this.items.values()) this.fill(item, event, lineState(event));
  }

  clear() {
    this.items.clear();
    this.settled.clear();
    this.lines.replaceChildren();
    this.live.replaceChildren();
  }

  hasFinals() {
    return this.settled.size > 0;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // The final captions, as a text file saved by the browser: nothing is stored on the server
  // (README, Privacy), so this is the reader's own copy.
  download(title) {
    const now = Date.now() / 1000;
    const lines = [t("captions.fileHeading", { title, date: formatDate(now) }), ""];
    for (const event of this.settled.values()) {
      const language =
        event.caption_language === event.source_language ? languageLabel(event) : `${languageLabel(event)}, ${pathLabel(event.path)}`;
      const note = noteText(event);
      lines.push(`[${formatTime(event.sent_at)}] ${event.speaker_name} (${language}): ${event.text}${note ? ` [${note}]` : ""}`);
    }
    const link = el("a", {
      href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/plain;charset=utf-8" })),
      download: `babelcall-captions-${new Date().toISOString().slice(0, 16).replace(":", "")}.txt`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000); // once the browser has read it
  }
}
