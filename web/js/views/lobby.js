// The lobby: start a call (named), join one by link, the rooms this member created, and the captions
// of the call just left.

import { $, el, userText } from "../dom.js";
import { errorText, formatDateTime, onLanguageChange } from "../i18n.js";
import { api } from "../rest.js";
import { captionBoard } from "./call.js";

let rooms = [];

export async function enterLobby(app) {
  app.show("lobby");
  $("#last-call-card").hidden = !captionBoard.hasFinals();
  rooms = (await api("/api/rooms").catch(() => ({ rooms: [] }))).rooms;
  showRooms();
}

function showRooms() {
  $("#my-rooms-card").hidden = rooms.length === 0;
  const list = $("#my-rooms");
  list.replaceChildren();
  for (const room of rooms.slice(0, 10)) {
    const link = el("a", { href: `/r/${room.id}` }, userText(room.title));
    list.append(el("li", {}, link, " ", el("span", { className: "hint", textContent: formatDateTime(room.created_at) })));
  }
}

async function createRoom(app, kind) {
  const title = $("#room-title").value.trim();
  try {
    const { room } = await api("/api/rooms", { method: "POST", body: title ? { kind, title } : { kind } });
    $("#room-title").value = "";
    app.navigate(`/r/${room.id}`);
  } catch (error) {
    app.noticeText(errorText(error));
  }
}

export function wireLobby(app) {
  $("#create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createRoom(app, "consultation");
  });
  $("#new-review").addEventListener("click", () => createRoom(app, "review"));
  $("#join-link-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const match = $("#room-link").value.match(/\/r\/([A-Za-z0-9_-]+)/);
    if (!match) return app.notice("lobby.badLink");
    app.navigate(`/r/${match[1]}`);
  });
  $("#download-last-captions").addEventListener("click", () => captionBoard.download($("#call-title").textContent || "call"));
  onLanguageChange(showRooms);
}
