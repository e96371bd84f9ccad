// BabelCall browser client: start-up, accounts and routing between the views. Speaks the protocol of
// docs/protocol.md (signalling.js, rest.js) and renders its caption events (captions.js).

import { $, el, userText } from "./dom.js";
import {
  INTERFACE_LANGUAGES,
  currentLanguage,
  errorText,
  languageName,
  nativeLanguageName,
  onLanguageChange,
  preferredLanguage,
  setLanguage,
  t,
  tNodes,
} from "./i18n.js";
import { api } from "./rest.js";
import { enterAdmin, leaveAdmin } from "./views/admin.js";
import { activeCall, showChineseScript, wireCallControls } from "./views/call.js";
import { enterLobby, wireLobby } from "./views/lobby.js";
import { enterPrejoin, leavePrejoin, wirePrejoin } from "./views/prejoin.js";
import { enterRecord, leaveRecord, wireRecords } from "./views/records.js";

const SECTIONS = ["auth", "pending", "lobby", "record", "no-room", "prejoin", "call", "admin"];
const LANGUAGES_KEY = "babelcall.languages";
const CAPTION_SIZE_KEY = "babelcall.captionSize";

let shownNotice = null; // {key, params} or {text}: re-rendered when the language changes

const app = {
  me: null,
  info: null,

  show(section) {
    for (const id of SECTIONS) $(`#${id}`).hidden = id !== section;
    if (section !== "prejoin") leavePrejoin();
    if (section !== "admin") leaveAdmin();
    if (section !== "record") leaveRecord();
  },

  // A message for the reader, from the catalogue (null clears it).
  notice(key, params = {}) {
    shownNotice = key ? { key, params } : null;
    showNotice();
  },

  // A message that is already text (a server's message for a code the catalogue lacks).
  noticeText(text) {
    shownNotice = text ? { text } : null;
    showNotice();
  },

  navigate(path) {
    history.pushState({}, "", path);
    route();
  },

  showNoRoom() {
    app.show("no-room");
  },

  signedOut(reasonKey) {
    app.me = null;
    app.notice(reasonKey);
    route();
  },

  rememberLanguages(update) {
    const saved = JSON.parse(localStorage.getItem(LANGUAGES_KEY) || "{}");
    localStorage.setItem(LANGUAGES_KEY, JSON.stringify({ ...saved, ...update }));
  },
};

function showNotice() {
  const node = $("#notice");
  if (!shownNotice) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  const params = { ...shownNotice.params };
  // Text from elsewhere inside the message keeps its own direction.
  if ("link" in params) params.link = el("bdi", { textContent: params.link, dir: "ltr" });
  if ("name" in params) params.name = userText(params.name);
  node.replaceChildren(shownNotice.text ? shownNotice.text : tNodes(shownNotice.key, params));
  node.hidden = false;
}

function roomIdFromPath() {
  const match = location.pathname.match(/^\/r\/([A-Za-z0-9_-]+)$/);
  return match ? match[1] : null;
}

async function route() {
  $("#account").hidden = !app.me;
  if (activeCall()) return; // the call stays on screen until it ends
  if (!app.me) return app.show("auth");
  $("#account-name").textContent = app.me.name;
  $("#admin-link").hidden = !app.me.is_admin;
  if (app.me.status !== "approved") return app.show("pending");
  if (location.pathname === "/admin" && app.me.is_admin) return enterAdmin(app);
  const recordId = location.pathname === "/" && new URLSearchParams(location.search).get("record");
  if (recordId) return enterRecord(app, recordId);
  const roomId = roomIdFromPath();
  if (!roomId) return enterLobby(app);
  // A made-up or deleted room's link says so at once, instead of a call that never connects.
  try {
    const { room } = await api(`/api/rooms/${encodeURIComponent(roomId)}`);
    if (roomIdFromPath() === roomId && !activeCall()) enterPrejoin(app, roomId, room);
  } catch (error) {
    if (error.status === 404) return app.showNoRoom();
    if (error.status === 401) return app.signedOut(null);
    app.noticeText(errorText(error));
  }
}

// ---------------------------------------------------------------- languages

// The spoken and caption language pickers: each language in the interface's language and in its own.
function fillLanguageSelect(select, chosen) {
  select.replaceChildren();
  for (const { code } of app.info.languages) {
    const local = languageName(code);
    const native = nativeLanguageName(code);
    select.append(el("option", { value: code, textContent: local === native ? local : `${local} — ${native}` }));
  }
  select.value = chosen;
}

function fillLanguagePickers() {
  const saved = JSON.parse(localStorage.getItem(LANGUAGES_KEY) || "{}");
  const call = activeCall();
  const fallback = app.info.languages.some((lang) => lang.code === currentLanguage()) ? currentLanguage() : "en";
  const speaks = $("#speaks").value || saved.speaks || fallback;
  fillLanguageSelect($("#speaks"), speaks);
  $("#speaks").append(el("option", { value: "auto", textContent: t("prejoin.detect") }));
  $("#speaks").value = speaks;
  fillLanguageSelect($("#captions-language"), $("#captions-language").value || saved.captions || fallback);
  fillLanguageSelect($("#call-captions-language"), call ? call.me.captions : saved.captions || fallback);
  showChineseScript($("#chinese-script-label"), $("#captions-language").value);
}

function fillInterfaceLanguages() {
  const select = $("#interface-language");
  select.replaceChildren();
  for (const code of INTERFACE_LANGUAGES) {
    select.append(el("option", { value: code, lang: code, textContent: nativeLanguageName(code) }));
  }
  select.value = currentLanguage();
}

function setCaptionSize(size) {
  $("#caption-size").value = size;
  const captions = $("#captions");
  captions.classList.remove("size-large", "size-larger");
  if (size !== "normal") captions.classList.add(`size-${size}`);
  localStorage.setItem(CAPTION_SIZE_KEY, size);
}

// ---------------------------------------------------------------- accounts

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function wireAccounts() {
  $("#sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      app.me = (await api("/api/login", { method: "POST", body: formData(event.target) })).member;
      app.notice(null);
      route();
    } catch (error) {
      app.noticeText(errorText(error));
    }
  });
  $("#apply").addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(event.target);
    try {
      await api("/api/apply", { method: "POST", body: data });
      app.me = (await api("/api/login", { method: "POST", body: { email: data.email, password: data.password } })).member;
      app.notice(null);
      route();
    } catch (error) {
      app.noticeText(errorText(error));
    }
  });
  $("#sign-out").addEventListener("click", async () => {
    const call = activeCall();
    if (call) call.leave();
    await api("/api/logout", { method: "POST" }).catch(() => {});
    location.href = "/";
  });
}

async function start() {
  await setLanguage(preferredLanguage());
  app.info = await api("/api/info");
  fillInterfaceLanguages();
  fillLanguagePickers();
  $("#chinese-script").value = JSON.parse(localStorage.getItem(LANGUAGES_KEY) || "{}").chineseScript || "simplified";
  setCaptionSize(localStorage.getItem(CAPTION_SIZE_KEY) || "normal");
  wireAccounts();
  wireLobby(app);
  wireRecords(app);
  wirePrejoin();
  wireCallControls();
  $("#interface-language").addEventListener("change", (event) => setLanguage(event.target.value, { remember: true }));
  $("#caption-size").addEventListener("change", (event) => setCaptionSize(event.target.value));
  onLanguageChange(() => {
    fillInterfaceLanguages();
    fillLanguagePickers();
    showNotice();
    if (app.me) $("#account-name").replaceChildren(userText(app.me.name));
  });
  window.addEventListener("popstate", route);
  try {
    app.me = (await api("/api/me")).member;
  } catch {
    app.me = null;
  }
  route();
}

start().catch((error) => app.noticeText(`${t("app.startFailed")} ${error.message}`));
