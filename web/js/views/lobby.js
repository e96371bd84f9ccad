// The lobby: start a call (named), join one by link, the rooms this member created (which have a call
// on now; deleting old ones), the consultation records they may read, and the captions of the call
// just left.

import { $, el, userText } from "../dom.js";
import { errorText, formatDateTime, isolate, onLanguageChange, t } from "../i18n.js";
import { api } from "../rest.js";
import { captionBoard } from "./call.js";
import { showRecordList } from "./records.js";

// While the lobby is open, how often the rooms' "live" state is asked for again.
const ROOMS_REFRESH_MS = 20000;

let rooms = [];
let refresher = null;
let lobbyApp = null;

export async function enterLobby(app) {
  lobbyApp = app;
  app.show("lobby");
  $("#last-call-card").hidden = !captionBoard.hasFinals();
  clearInterval(refresher);
  refresher = setInterval(() => {
    if ($("#lobby").hidden) clearInterval(refresher);
    else loadRooms();
  }, ROOMS_REFRESH_MS);
  await Promise.all([loadRooms(), showRecordList(app)]);
}

async function loadRooms() {
  rooms = (await api("/api/rooms").catch(() => ({ rooms: [] }))).rooms;
  showRooms();
}

function showRooms() {
  $("#my-rooms-card").hidden = rooms.length === 0;
  const list = $("#my-rooms");
  list.replaceChildren();
  for (const room of rooms) {
    const remove = el("button", { type: "button", className: "secondary small", textContent: t("lobby.deleteRoom") });
    remove.setAttribute("aria-label", t("lobby.deleteRoomNamed", { title: isolate(room.title) }));
    remove.addEventListener("click", () => deleteRoom(room));
    list.append(
      el(
        "li",
        { dataset: { roomId: room.id } },
        el("span", { className: "item-main" }, el("a", { href: `/r/${room.id}` }, userText(room.title)), " ",
          el("span", { className: "hint", textContent: formatDateTime(room.created_at) })),
        room.live ? el("span", { className: "live-badge", textContent: t("lobby.live", { count: room.participants }) }) : null,
        el("span", { className: "actions" }, remove),
      ),
    );
  }
}

async function deleteRoom(room) {
  if (!confirm(t(room.live ? "lobby.deleteLiveConfirm" : "lobby.deleteConfirm", { title: isolate(room.title) }))) return;
  try {
    await api(`/api/rooms/${encodeURIComponent(room.id)}`, { method: "DELETE" });
    lobbyApp.notice("lobby.deleted", { name: room.title });
  } catch (error) {
    lobbyApp.noticeText(errorText(error));
  }
  await loadRooms();
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
