// Caption rendering: the only module that reads caption events (protocol/captions.py: CaptionEvent;
// the field names here must match it). Chat messages (chat.js) are lines of the same board, so a reader
// follows one conversation in one place, in the order things were said and written.

import { chatNodes, chatFileLine } from "./chat.js";
import { el, userText } from "./dom.js";
import { formatDate, formatTime, t } from "./i18n.js";
import { badgeText, noteText, pathLabel, provenance } from "./paths.js";

// The stage of a caption event (docs/protocol.md section 3, `kind`): "partial" (may still change:
// shown at the bottom, not announced), "final" (the first pass at the end of the utterance: moved
// above the lines in progress, announced, kept for the download) or "settled" (the second pass: takes
// the place of the lines it replaces, and never changes again). A kind this page does not know is
// treated as final.
function stageOf(event) {
  if (event.kind === "partial" || event.kind === "settled") return event.kind;
  return "final";
}

const SETTLE_HIGHLIGHT_MS = 2000;

// A line's parts with spaces between them, so that its text (announced, copied) reads as words.
function spaced(nodes) {
  return nodes.filter(Boolean).flatMap((node, index) => (index ? [" ", node] : [node]));
}

// The text of a caption: a line in progress sets apart the beginning that will not change any more;
// a finished line the recogniser or translator was unsure of is marked in words, not only underlined.
function captionNodes(event, state) {
  const text = el("span", { className: "text", lang: event.caption_language, dir: "auto" });
  if (state === "partial") {
    text.append(el("span", { className: "stable", textContent: event.text.slice(0, event.stable_chars) }), event.text.slice(event.stable_chars));
  } else {
    text.textContent = event.text;
  }
  const uncertain = state !== "partial" && state !== "cut-off" && event.uncertain;
  if (uncertain) {
    text.classList.add("uncertain");
    text.title = t("captions.uncertainHint");
  }
  // A line cut off by a drop says so instead of its caveat.
  const note = noteText(state === "cut-off" ? { ...event, note: null } : event);
  return [
    el("span", { className: "speaker" }, userText(event.speaker_name)),
    el("span", {
      className: "lang",
      textContent: badgeText(event.source_language, event.caption_language),
      title: provenance(event.path, event.source_language, event.caption_language, event.model),
    }),
    text,
    uncertain ? el("span", { className: "flag", textContent: t("captions.uncertain") }) : null,
    state === "cut-off" ? el("span", { className: "note", textContent: t("captions.cutOff") }) : null,
    note ? el("span", { className: "note", textContent: note }) : null,
  ];
}

function captionFileLine(event, state) {
  const language = event.path === "original"
    ? badgeText(event.source_language, event.caption_language)
    : `${badgeText(event.source_language, event.caption_language)}, ${pathLabel(event.path)}`;
  const marks = [
    event.uncertain && state !== "cut-off" ? t("captions.uncertain") : null,
    state === "cut-off" ? t("captions.cutOff") : noteText(event) || null,
  ].filter(Boolean).map((mark) => ` [${mark}]`).join("");
  return `[${formatTime(event.sent_at)}] ${event.speaker_name} (${language}): ${event.text}${marks}`;
}

export class CaptionBoard {
  // `lines`: the finished lines and chat messages (an aria-live list); `live`: the lines in progress,
  // below them; `scroller`: the element that scrolls both.
  constructor({ lines, live, scroller }) {
    this.lines = lines;
    this.live = live;
    this.scroller = scroller;
    this.clear();
  }

  clear() {
    this.entries = new Map(); // key (an utterance id, "chat:" + a message id) -> entry
    this.ofItem = new WeakMap(); // <li> -> its entry
    this.retired = new Set(); // utterance ids a settled caption replaced: what comes for them later is stale
    this.cutOffCount = 0;
    this.lines.replaceChildren();
    this.live.replaceChildren();
  }

  // A caption event, whatever its stage.
  show(event) {
    const state = stageOf(event);
    if (state === "settled") return this.settle(event);
    const id = event.utterance_id;
    if (this.retired.has(id)) return; // its settled version is shown already
    const entry = this.entries.get(id);
    if (entry && entry.state === "final" && state === "partial") return; // a late partial
    this.keepingPlace(() => {
      const current = entry || this.newEntry(id);
      current.message = event;
      current.state = state;
      this.fill(current);
      const list = state === "partial" ? this.live : this.lines;
      if (current.item.parentElement !== list) list.append(current.item);
    });
  }

  // A settled caption takes the place of the lines it names (its own id first): the first one still
  // shown is rewritten where it stands, the others go; an empty text removes them all.
  settle(event) {
    if (this.retired.has(event.utterance_id)) return; // at most one settled caption per line
    const ids = event.replaces && event.replaces.length ? event.replaces : [event.utterance_id];
    const shown = ids.map((id) => this.entries.get(id)).filter(Boolean);
    const kept = event.text ? shown[0] : null;
    const removed = shown.filter((entry) => entry !== kept);
    this.keepingPlace(() => {
      for (const entry of removed) entry.item.remove();
      for (const id of ids) {
        this.entries.delete(id);
        this.retired.add(id);
      }
      this.retired.add(event.utterance_id);
      if (!event.text) return;
      const entry = kept || this.newEntry(event.utterance_id);
      const changed = removed.length > 0 || (kept && kept.message.text !== event.text);
      entry.key = event.utterance_id;
      entry.message = event;
      entry.state = "settled";
      this.entries.set(entry.key, entry);
      this.fill(entry);
      if (entry.item.parentElement !== this.lines) this.lines.append(entry.item);
      if (changed) this.highlight(entry.item);
    }, removed.map((entry) => entry.item));
  }

  // A chat message (chat.js): a finished line from the start.
  showChat(message) {
    const key = `chat:${message.id}`;
    this.keepingPlace(() => {
      const entry = this.entries.get(key) || this.newEntry(key);
      entry.message = message;
      entry.state = "chat";
      this.fill(entry);
      if (entry.item.parentElement !== this.lines) this.lines.append(entry.item);
    });
  }

  newEntry(key) {
    const entry = { key, item: el("li", { className: "caption" }), message: null, state: null };
    this.entries.set(key, entry);
    this.ofItem.set(entry.item, entry);
    return entry;
  }

  fill(entry) {
    const { item, message, state } = entry;
    for (const name of ["partial", "final", "settled", "cut-off", "chat"]) item.classList.remove(name);
    if (state === "chat") {
      item.classList.add("chat");
      item.dataset.chat = message.id;
      item.dataset.path = message.path;
      item.replaceChildren(...spaced(chatNodes(message)));
      return;
    }
    item.classList.add(state);
    if (state === "settled") item.classList.add("final"); // finished, like a final
    item.dataset.utterance = message.utterance_id;
    item.dataset.path = message.path;
    item.replaceChildren(...spaced(captionNodes(message, state)));
  }

  highlight(item) {
    item.classList.add("just-settled");
    setTimeout(() => item.classList.remove("just-settled"), SETTLE_HIGHLIGHT_MS);
  }

  // The connection dropped: lines in progress will never be finished. Those with words stay, marked
  // as cut off; empty ones go.
  cutOff() {
    for (const item of [...this.live.children]) {
      const entry = this.ofItem.get(item);
      this.entries.delete(entry.key);
      if (!entry.message.text.trim()) {
        item.remove();
        continue;
      }
      // Kept under a key of its own: a later event with its id (none should come) starts a new line.
      entry.key = `cut-off:${this.cutOffCount++}`;
      entry.state = "cut-off";
      this.entries.set(entry.key, entry);
      this.fill(entry);
      this.lines.append(item);
    }
  }

  relabel() {
    for (const entry of this.entries.values()) this.fill(entry);
  }

  hasFinals() {
    return this.lines.children.length > 0;
  }

  // ------------------------------------------------------------ the reader's place

  // Changes to lines above where the reader is looking must not move what they are reading: the
  // first line in view (one that stays) keeps its place on screen; a reader at the bottom stays there.
  keepingPlace(change, leaving = []) {
    const follow = this.atBottom();
    const anchor = follow ? null : this.lineInView(leaving);
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (follow) this.scrollToEnd();
    else if (anchor && anchor.isConnected) this.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
  }

  // The first line whose bottom is below the top of the scrolled area (a binary search: the lines are
  // in the order they are laid out).
  lineInView(leaving) {
    const items = [...this.lines.children, ...this.live.children];
    const top = this.scroller.getBoundingClientRect().top;
    let low = 0;
    let high = items.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (items[middle].getBoundingClientRect().bottom > top) high = middle;
      else low = middle + 1;
    }
    return items.slice(low).find((item) => !leaving.includes(item)) || null;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // ------------------------------------------------------------ the reader's copy

  // The finished lines as shown (the newest text of each: settled where it came) and the chat, as a
  // text file saved by the browser: this is the reader's own copy, made from what the page received.
  download(title) {
    const now = Date.now() / 1000;
    const lines = [t("captions.fileHeading", { title, date: formatDate(now) }), ""];
    for (const item of this.lines.children) {
      const entry = this.ofItem.get(item);
      if (!entry) continue;
      lines.push(entry.state === "chat" ? chatFileLine(entry.message) : captionFileLine(entry.message, entry.state));
    }
    const link = el("a", {
      href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/plain;charset=utf-8" })),
      download: `babelcall-captions-${new Date().toISOString().slice(0, 16).replace(":", "")}.txt`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000); // once the browser has read it
  }
}
