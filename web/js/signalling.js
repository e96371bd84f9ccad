// The signalling connection of docs/protocol.md section 2: joins, keeps the call joined across drops and
// server restarts, and says truthfully what state it is in.

import { api } from "./rest.js";

export const PROTOCOL_VERSION = 2;

// WebSocket close codes (protocol/errors.py: CloseCode).
export const CloseCode = {
  LEFT: 1000,
  SERVER_RESTARTING: 1012,
  REPLACED: 4001,
  MEMBERSHIP_ENDED: 4003,
  REMOVED: 4004,
  CALL_ENDED: 4005,
};
// Close codes after which joining again would be wrong, and the reason each gives.
const ENDING_CLOSE_CODES = new Map([
  [CloseCode.LEFT, "left"],
  [CloseCode.REPLACED, "replaced"],
  [CloseCode.MEMBERSHIP_ENDED, "membership_ended"],
  [CloseCode.REMOVED, "removed"],
  [CloseCode.CALL_ENDED, "call_ended"],
]);
// Errors (sent unprompted, or instead of `joined`) that end this page's part in the call.
const ENDING_ERRORS = new Set(["removed", "membership_ended", "replaced", "call_ended", "room_full"]);

// After a drop: quick retries for about half a minute, then one every 20 s for as long as the page is
// open, so a call interrupted by a long outage rejoins when the server is back.
const QUICK_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 10000];
const SLOW_RETRY_MS = 20000;

export class CallConnection {
  // onMessage(message): every server message once joined; onState({state, ...}): "connecting",
  // "joined", "reconnecting" {slow, retryAt, reason}, "ended" {reason}.
  constructor({ roomId, speaks, captions, chineseScript, onMessage, onState }) {
    this.roomId = roomId;
    this.join = { speaks, captions, chinese_script: chineseScript };
    this.onMessage = onMessage;
    this.onState = onState;
    this.socket = null;
    this.failures = 0; // connection attempts since the call was last joined
    this.timer = null;
    this.finished = false;
    this.attempting = false; // asking the server for the room before opening a socket
    this.onOnline = () => this.tryNow();
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.onState({ state: "connecting" });
    this.attempt();
  }

  // The caption language and how Chinese captions are written, changed mid-call.
  setCaptions(captions, chineseScript) {
    this.join = { ...this.join, captions, chinese_script: chineseScript }; // a rejoin keeps the new choice
    this.send({ type: "languages", captions, chinese_script: chineseScript });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  tryNow() {
    if (this.finished || this.socket || this.attempting) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.attempt();
  }

  leave() {
    this.send({ type: "leave" });
    this.finish("left", CloseCode.LEFT);
  }

  // Stops for good: no more retries, the socket closed with `closeCode`.
  finish(reason, closeCode = CloseCode.LEFT) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.onOnline);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(closeCode);
    this.onState({ state: "ended", reason });
  }

  // The room is asked for over REST first: a WebSocket handshake refused with 404 (no such room) or
  // 401 (signed out) looks like any dropped connection to the page, and would be retried forever.
  async attempt() {
    this.timer = null;
    this.attempting = true;
    try {
      await api(`/api/rooms/${encodeURIComponent(this.roomId)}`);
    } catch (error) {
      if (this.finished) return;
      if (error.status === 404) return this.finish("no_room");
      if (error.status === 401) return this.finish("signed_out");
      if (error.status === 403) return this.finish("membership_ended");
      return this.retry("unreachable");
    } finally {
      this.attempting = false;
    }
    if (!this.finished) this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${encodeURIComponent(this.roomId)}`);
    this.socket = socket;
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "join", ...this.join })));
    socket.addEventListener("message", (event) => {
      // A connection this page has given up on may still deliver a message or two: they are stale.
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return; // closed by this page
      this.socket = null;
      const reason = ENDING_CLOSE_CODES.get(event.code);
      if (reason) {
        this.finished = true;
        window.removeEventListener("online", this.onOnline);
        this.onState({ state: "ended", reason });
        return;
      }
      this.retry(event.code === CloseCode.SERVER_RESTARTING ? "restarting" : "lost");
    });
  }

  receive(message) {
    if (message.type === "joined") {
      this.failures = 0;
      this.onState({ state: "joined", message });
    } else if (message.type === "error" && ENDING_ERRORS.has(message.code)) {
      this.finish(message.code);
      return;
    } else if (message.type === "error" && message.code === "media_lost") {
      // The room's media process failed; joining again reaches its replacement.
      const socket = this.socket;
      this.socket = null;
      socket.close(CloseCode.LEFT);
      this.retry("media_lost", 1000);
      return;
    }
    this.onMessage(message);
  }

  retry(reason, delayMs = null) {
    if (this.finished) return;
    const quick = QUICK_RETRY_DELAYS_MS[this.failures];
    const delay = delayMs ?? quick ?? SLOW_RETRY_MS;
    this.failures += 1;
    this.onState({ state: "reconnecting", reason, slow: quick === undefined, retryAt: Date.now() + delay });
    this.timer = setTimeout(() => this.attempt(), delay);
  }
}
