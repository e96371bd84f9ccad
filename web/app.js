// BabelCall browser client. Speaks the signalling protocol in docs/protocol.md and renders
// caption events (protocol/captions.py: CaptionEvent) — field names here must match that type.
"use strict";

const PROTOCOL_VERSION = 2;
const $ = (selector) => document.querySelector(selector);

const state = {
  me: null,
  info: null,
  roomId: null,
  socket: null,
  participantId: null,
  participants: new Map(), // id -> participant (from the server)
  publisher: null, // RTCPeerConnection carrying our camera and microphone
  subscribers: new Map(), // publisher id -> RTCPeerConnection receiving their media
  localStream: null,
  captionNodes: new Map(), // utterance_id -> <li>
  finals: new Map(), // utterance_id -> final caption event, in the order they settled
  glossary: [], // the room's terms: [{term, renderings}]
  reconnectAttempts: 0, // since the connection last dropped; 0 while connected
  reconnectTimer: null,
  call: null, // {roomId, speaks, captions} of the call this page is in
  roomHost: null, // member id of the room's host, who may remove participants
};

// Close codes after which reconnecting would be wrong: the member left, joined from elsewhere, or
// is no longer a member (docs/protocol.md).
const CLOSE_LEFT = 1000;
const CLOSE_REPLACED = 4001;
const CLOSE_MEMBERSHIP_ENDED = 4003;
const CLOSE_REMOVED = 4004;
const CLOSE_CALL_ENDED = 4005;
// Errors that end this page's part in the call (docs/protocol.md).
const CALL_ENDING_ERRORS = new Set(["removed", "membership_ended", "call_ended"]);
// A dropped connection is retried after 1, 2, 4, 8, then every 10 s, for about a minute and a half.
const RECONNECT_DELAYS_MS = [1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000, 10000, 10000, 10000];

// ---------------------------------------------------------------- REST

async function api(path, options = {}) {
  const response = await fetch(path, {
    method: options.method || "GET",
    headers: options.body ? { "Content-Type": "application/json" } : {},
    body: options.body ? JSON.stringify(options.body) : undefined,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    error.status = response.status;
    error.code = data.error && data.error.code;
    throw error;
  }
  return data;
}

function notice(text) {
  const node = $("#notice");
  node.textContent = text || "";
  node.hidden = !text;
}

function show(sectionId) {
  for (const id of ["auth", "pending", "lobby", "call", "admin"]) {
    $("#" + id).hidden = id !== sectionId;
  }
}

// ---------------------------------------------------------------- start-up and accounts

function roomIdFromPath() {
  const match = location.pathname.match(/^\/r\/([A-Za-z0-9_-]+)$/);
  return match ? match[1] : null;
}

// Caption text size: "normal", "large" or "larger", remembered on this browser.
function setCaptionSize(size) {
  $("#caption-size").value = size;
  const captions = $("#captions");
  captions.classList.remove("size-large", "size-larger");
  if (size !== "normal") captions.classList.add(`size-${size}`);
  localStorage.setItem("babelcall.captionSize", size);
}

function languageName(code) {
  const known = state.info.languages.find((lang) => lang.code === code);
  return known ? known.name : code;
}

function fillLanguageSelect(select, preferred) {
  select.innerHTML = "";
  for (const lang of state.info.languages) {
    const option = document.createElement("option");
    option.value = lang.code;
    option.textContent = lang.native_name === lang.name ? lang.name : `${lang.name} — ${lang.native_name}`;
    select.append(option);
  }
  select.value = preferred;
}

async function start() {
  state.info = await api("/api/info");
  const saved = JSON.parse(localStorage.getItem("babelcall.languages") || "{}");
  const browserLang = (navigator.language || "en").slice(0, 2);
  const fallback = state.info.languages.some((l) => l.code === browserLang) ? browserLang : "en";
  fillLanguageSelect($("#speaks"), saved.speaks || fallback);
  const detect = document.createElement("option");
  detect.value = "auto";
  detect.textContent = "Detect for each sentence (languages of this room)";
  $("#speaks").append(detect);
  if (saved.speaks === "auto") $("#speaks").value = "auto";
  fillLanguageSelect($("#captions-language"), saved.captions || fallback);
  fillLanguageSelect($("#call-captions-language"), saved.captions || fallback);
  setCaptionSize(localStorage.getItem("babelcall.captionSize") || "normal");
  wireForms();
  try {
    state.me = (await api("/api/me")).member;
  } catch {
    state.me = null;
  }
  route();
}

function route() {
  $("#account").hidden = !state.me;
  if (!state.me) return show("auth");
  $("#account-name").textContent = state.me.name;
  $("#admin-link").hidden = !state.me.is_admin;
  if (state.me.status !== "approved") return show("pending");
  if (location.pathname === "/admin" && state.me.is_admin) return showAdmin();
  state.roomId = roomIdFromPath();
  $("#join-existing").hidden = !state.roomId;
  $("#create-new").hidden = Boolean(state.roomId);
  $("#lobby-title").textContent = state.roomId ? "Join the call" : "Start or join a call";
  show("lobby");
  if (!state.roomId) loadMyRooms();
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function wireForms() {
  $("#sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      state.me = (await api("/api/login", { method: "POST", body: formData(event.target) })).member;
      notice("");
      route();
    } catch (error) {
      notice(error.message);
    }
  });
  $("#apply").addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(event.target);
    try {
      const { member } = await api("/api/apply", { method: "POST", body: data });
      state.me = (await api("/api/login", { method: "POST", body: { email: data.email, password: data.password } })).member;
      notice(member.is_admin ? "You are this server's first member and its administrator." : "");
      route();
    } catch (error) {
      notice(error.message);
    }
  });
  $("#sign-out").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST" }).catch(() => {});
    location.href = "/";
  });
  $("#join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    joinCall(state.roomId);
  });
  $("#new-consultation").addEventListener("click", () => createRoom("consultation"));
  $("#new-review").addEventListener("click", () => createRoom("review"));
  $("#join-link").addEventListener("click", () => {
    const match = $("#room-link").value.match(/\/r\/([A-Za-z0-9_-]+)/);
    if (!match) return notice("Paste a room link such as https://…/r/abc123");
    history.pushState({}, "", `/r/${match[1]}`);
    route();
  });
  $("#leave").addEventListener("click", () => leaveCall());
  $("#copy-link").addEventListener("click", async () => {
    await navigator.clipboard.writeText(location.href).catch(() => {});
    notice(`Invitation link: ${location.href}`);
  });
  $("#caption-size").addEventListener("change", (event) => setCaptionSize(event.target.value));
  $("#download-captions").addEventListener("click", () => downloadCaptions());
  $("#call-captions-language").addEventListener("change", (event) => {
    send({ type: "languages", captions: event.target.value });
    rememberLanguages({ captions: event.target.value });
    if (state.call) state.call.captions = event.target.value; // a rejoin keeps the new choice
  });
  $("#toggle-glossary").addEventListener("click", () => {
    $("#glossary-panel").hidden = !$("#glossary-panel").hidden;
  });
  $("#glossary-panel").addEventListener("submit", async (event) => {
    event.preventDefault();
    // Keep per-language renderings (set through the API) of the terms that stay.
    const known = new Map((state.glossary || []).map((t) => [t.term, t.renderings]));
    const terms = $("#glossary-terms").value.split("\n").map((t) => t.trim()).filter(Boolean)
      .map((term) => ({ term, renderings: known.get(term) || {} }));
    try {
      await api(`/api/rooms/${state.roomId}/glossary`, { method: "PUT", body: { terms } });
      notice("Glossary saved.");
    } catch (error) {
      notice(error.message);
    }
  });
  window.addEventListener("popstate", route);
}

async function createRoom(kind) {
  try {
    const { room } = await api("/api/rooms", { method: "POST", body: { kind } });
    history.pushState({}, "", `/r/${room.id}`);
    state.roomId = room.id;
    joinCall(room.id);
  } catch (error) {
    notice(error.message);
  }
}

async function loadMyRooms() {
  const { rooms } = await api("/api/rooms").catch(() => ({ rooms: [] }));
  $("#my-rooms-card").hidden = rooms.length === 0;
  const list = $("#my-rooms");
  list.innerHTML = "";
  for (const room of rooms.slice(0, 10)) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/r/${room.id}`;
    link.textContent = `${room.title} (${new Date(room.created_at * 1000).toLocaleString()})`;
    item.append(link);
    list.append(item);
  }
}

async function showAdmin() {
  show("admin");
  const { members } = await api("/api/admin/members");
  const pending = members.filter((member) => member.status === "pending");
  $("#no-applications").hidden = pending.length > 0;
  fillMemberTable($("#applications"), pending, (member) => [
    member.name, member.organisation, member.email, new Date(member.created_at * 1000).toLocaleString(),
  ]);
  const decided = members.filter((member) => member.status !== "pending");
  fillMemberTable($("#members"), decided, (member) => [
    member.name + (member.id === state.me.id ? " (you)" : ""),
    member.organisation,
    member.email,
    member.status === "approved" ? "Member" : "Rejected",
  ]);
}

// What an administrator may decide about a member, by the member's status: [decision, button label].
const MEMBER_DECISIONS = {
  pending: [["approve", "Approve"], ["reject", "Reject"]],
  approved: [["reject", "End membership"]],
  rejected: [["approve", "Approve"]],
};

function fillMemberTable(body, members, cells) {
  body.innerHTML = "";
  for (const member of members) {
    const row = document.createElement("tr");
    row.dataset.memberId = member.id;
    for (const value of cells(member)) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    const actions = document.createElement("td");
    // Administrators cannot change their own membership (the server refuses).
    const decisions = member.id === state.me.id ? [] : MEMBER_DECISIONS[member.status];
    for (const [decision, label] of decisions) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.className = decision === "approve" ? "" : "secondary";
      button.addEventListener("click", async () => {
        if (member.status === "approved" && !confirm(`End ${member.name}'s membership? They are signed out at once.`)) {
          return;
        }
        try {
          await api(`/api/admin/members/${member.id}/${decision}`, { method: "POST" });
          notice("");
        } catch (error) {
          notice(error.message);
        }
        showAdmin();
      });
      actions.append(button);
    }
    row.append(actions);
    body.append(row);
  }
}

function rememberLanguages(update) {
  const saved = JSON.parse(localStorage.getItem("babelcall.languages") || "{}");
  localStorage.setItem("babelcall.languages", JSON.stringify({ ...saved, ...update }));
}

// ---------------------------------------------------------------- the call

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

// STUN and short-lived TURN credentials, fetched afresh for every (re)join (GET /api/ice).
function iceConfiguration() {
  return { iceServers: state.iceServers || [] };
}

function waitForIceGathering(pc) {
  // The server does not trickle candidates: offers carry all of them.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function joinCall(roomId) {
  state.roomId = roomId;
  const speaks = $("#speaks").value;
  const captions = $("#captions-language").value;
  rememberLanguages({ speaks, captions });
  $("#call-captions-language").value = captions;
  state.finals.clear();
  const processing = $("#audio-processing").checked;
  try {
    state.localStream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing },
      video: { width: 320, height: 240, frameRate: 15 },
    });
  } catch (error) {
    return notice(`Camera or microphone unavailable: ${error.message}`);
  }
  notice("");
  show("call");
  $("#call-title").textContent = "Connecting…";
  addTile("self", `${state.me.name} (you)`, state.localStream, true);

  state.reconnectAttempts = 0;
  state.call = { roomId, speaks, captions };
  connect();
}

async function connect() {
  const { roomId, speaks, captions } = state.call;
  state.iceServers = await api("/api/ice").then((body) => body.ice_servers).catch(() => []);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${roomId}`);
  state.socket = socket;
  socket.addEventListener("open", () => send({ type: "join", speaks, captions }));
  socket.addEventListener("message", (event) => {
    // A connection this page has given up on may still deliver a message or two: they are stale.
    if (state.socket === socket) handleMessage(JSON.parse(event.data));
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return; // closed by this page: leaving, or rejoining
    if ([CLOSE_LEFT, CLOSE_REPLACED, CLOSE_MEMBERSHIP_ENDED, CLOSE_REMOVED, CLOSE_CALL_ENDED].includes(event.code)) {
      // The reason is already on screen when dismissed (the server's error came first).
      endCall(event.code === CLOSE_LEFT ? "You left the call." : null);
      return;
    }
    reconnect("Connection lost: reconnecting…");
  });
}

// Keep the camera and the captions on screen and join again, after a growing delay.
function reconnect(reason) {
  state.socket = null;
  dropConnections();
  const delay = RECONNECT_DELAYS_MS[state.reconnectAttempts];
  if (delay === undefined) {
    endCall("Connection to the server lost.");
    return;
  }
  state.reconnectAttempts += 1;
  notice(reason);
  $("#call-title").textContent = "Reconnecting…";
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = null;
    if (state.localStream) connect();
  }, delay);
}

async function handleMessage(message) {
  switch (message.type) {
    case "joined":
      if (state.reconnectAttempts) notice("");
      state.reconnectAttempts = 0;
      if (message.protocol !== PROTOCOL_VERSION) notice("This page is out of date: reload it.");
      state.participantId = message.participant_id;
      $("#call-title").textContent = message.room.title;
      state.roomHost = message.room.created_by;
      showGlossary(message.room.glossary);
      for (const participant of message.room.participants) {
        if (participant.id === state.participantId) continue;
        state.participants.set(participant.id, participant);
        if (participant.publishing.length) subscribe(participant);
      }
      showPeople();
      await publish();
      break;
    case "published":
      await state.publisher.setRemoteDescription({ type: "answer", sdp: message.sdp });
      break;
    case "subscribed": {
      const pc = state.subscribers.get(message.publisher_id);
      if (pc) await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      break;
    }
    case "participant_joined":
    case "participant_updated":
      // This page's own update comes back too: it is shown from state.call, not as a participant.
      if (message.participant.id !== state.participantId) {
        state.participants.set(message.participant.id, message.participant);
      }
      showPeople();
      break;
    case "participant_published":
      state.participants.set(message.participant.id, message.participant);
      subscribe(message.participant);
      break;
    case "participant_left":
      state.participants.delete(message.participant_id);
      closeSubscriber(message.participant_id);
      showPeople();
      break;
    case "caption":
      renderCaption(message);
      break;
    case "glossary_updated":
      showGlossary(message.terms);
      break;
    case "error":
      if (message.code === "media_lost" && state.socket) {
        // The server's media process for this room failed; joining again reaches its replacement.
        const socket = state.socket;
        reconnect("The call's media connection failed: reconnecting…");
        socket.close(CLOSE_LEFT);
        break;
      }
      if (CALL_ENDING_ERRORS.has(message.code)) {
        // Sent instead of "joined" too (a refused join leaves the socket open): end the call here.
        const socket = state.socket;
        if (message.code === "membership_ended") state.me = null; // signed out: route() asks for a sign-in
        endCall(message.message[0].toUpperCase() + message.message.slice(1) + ".");
        if (socket) socket.close(CLOSE_LEFT);
        break;
      }
      notice(`${message.message}`);
      break;
  }
}

async function publish() {
  const pc = new RTCPeerConnection(iceConfiguration());
  state.publisher = pc;
  for (const track of state.localStream.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [state.localStream] });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  send({ type: "publish", sdp: pc.localDescription.sdp });
}

async function subscribe(participant) {
  if (state.subscribers.has(participant.id)) return;
  const pc = new RTCPeerConnection(iceConfiguration());
  state.subscribers.set(participant.id, pc);
  const stream = new MediaStream();
  addTile(participant.id, participant.name, stream, false, !participant.publishing.includes("video"));
  pc.addEventListener("track", (event) => stream.addTrack(event.track));
  for (const kind of participant.publishing) pc.addTransceiver(kind, { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  send({ type: "subscribe", publisher_id: participant.id, sdp: pc.localDescription.sdp });
}

function closeSubscriber(participantId) {
  const pc = state.subscribers.get(participantId);
  if (pc) pc.close();
  state.subscribers.delete(participantId);
  const tile = document.getElementById(`tile-${participantId}`);
  if (tile) tile.remove();
}

function addTile(id, name, stream, muted, audioOnly = false) {
  const tile = document.createElement("div");
  tile.className = audioOnly ? "tile audio-only" : "tile";
  tile.id = `tile-${id}`;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = muted;
  video.srcObject = stream;
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = name;
  tile.append(video, label);
  $("#videos").append(tile);
}

// Back to this room's lobby, from where the member can join again.
function endCall(message) {
  if (message) notice(message);
  teardown();
  route();
}

function leaveCall() {
  send({ type: "leave" });
  const socket = state.socket;
  teardown();
  if (socket) socket.close(1000);
  notice("You left the call.");
  history.pushState({}, "", "/");
  route();
}

function dropConnections() {
  if (state.publisher) state.publisher.close();
  state.publisher = null;
  for (const id of [...state.subscribers.keys()]) closeSubscriber(id);
  state.participants.clear();
  state.participantId = null;
}

function teardown() {
  state.socket = null;
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  dropConnections();
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  const self = document.getElementById("tile-self");
  if (self) self.remove();
}

// Who is in the call and in which languages, so nobody is listening unseen; the host (or an
// administrator) can remove someone from here.
function showPeople() {
  const list = $("#people");
  list.innerHTML = "";
  if (!state.call) return;
  const mayRemove = state.me.is_admin || state.me.id === state.roomHost;
  const me = { id: state.participantId, name: `${state.me.name} (you)`, ...state.call, self: true };
  for (const person of [me, ...state.participants.values()]) {
    const item = document.createElement("li");
    item.dataset.participantId = person.id;
    const name = document.createElement("span");
    name.textContent = person.name;
    const languages = document.createElement("span");
    languages.className = "hint";
    const spoken = person.speaks === "auto" ? "several languages" : languageName(person.speaks);
    languages.textContent = `speaks ${spoken}, reads ${languageName(person.captions)}`;
    item.append(name, languages);
    if (mayRemove && !person.self) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = "Remove";
      remove.addEventListener("click", async () => {
        if (!confirm(`Remove ${person.name} from this call? They cannot join again until it ends.`)) return;
        try {
          await api(`/api/rooms/${state.call.roomId}/participants/${person.id}`, { method: "DELETE" });
        } catch (error) {
          notice(error.message);
        }
      });
      item.append(remove);
    }
    list.append(item);
  }
}

function showGlossary(terms) {
  state.glossary = terms || [];
  $("#glossary-terms").value = (terms || []).map((t) => t.term).join("\n");
}

// ---------------------------------------------------------------- captions

const PATH_LABELS = {
  original: "as spoken",
  machine: "machine translation",
  pivot: "machine translation through English",
  whisper: "Whisper speech translation",
  untranslated: "not translated",
};

// "en" for a caption in the language spoken, "fr→en" for one read in another language.
function languageLabel(event) {
  return event.caption_language === event.source_language
    ? event.caption_language
    : `${event.source_language}→${event.caption_language}`;
}

function renderCaption(event) {
  const final = event.kind !== "partial";
  if (final) state.finals.set(event.utterance_id, event);
  let item = state.captionNodes.get(event.utterance_id);
  if (!item) {
    item = document.createElement("li");
    item.className = "caption";
    item.dataset.utterance = event.utterance_id;
    const speaker = document.createElement("span");
    speaker.className = "speaker";
    const lang = document.createElement("span");
    lang.className = "lang";
    const text = document.createElement("span");
    text.className = "text";
    const note = document.createElement("div");
    note.className = "note";
    item.append(speaker, lang, text, note);
    $("#captions").append(item);
    state.captionNodes.set(event.utterance_id, item);
  }
  item.classList.toggle("final", final);
  item.classList.toggle("partial", !final);
  item.dataset.path = event.path;
  item.querySelector(".speaker").textContent = event.speaker_name;
  item.querySelector(".lang").title = PATH_LABELS[event.path] || event.path;
  item.querySelector(".lang").textContent = languageLabel(event);
  const text = item.querySelector(".text");
  text.lang = event.caption_language;
  text.dir = "auto";
  const stable = document.createElement("span");
  stable.className = "stable";
  stable.textContent = event.text.slice(0, event.stable_chars);
  text.replaceChildren(stable, document.createTextNode(event.text.slice(event.stable_chars)));
  const note = item.querySelector(".note");
  note.textContent = event.note || "";
  note.hidden = !event.note;
  const panel = $("#captions").parentElement;
  panel.scrollTop = panel.scrollHeight;
}

// The final captions this page received, as a text file saved by the browser: nothing is stored on
// the server (README, Privacy), so this is the reader's own copy.
function downloadCaptions() {
  const title = $("#call-title").textContent || "call";
  const lines = [`BabelCall captions: ${title}, ${new Date().toISOString().slice(0, 10)}`, ""];
  for (const event of state.finals.values()) {
    const time = new Date(event.sent_at * 1000).toLocaleTimeString([], { hour12: false });
    const language =
      event.caption_language === event.source_language
        ? languageLabel(event)
        : `${languageLabel(event)}, ${PATH_LABELS[event.path] || event.path}`;
    const note = event.note ? ` [${event.note}]` : "";
    lines.push(`[${time}] ${event.speaker_name} (${language}): ${event.text}${note}`);
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/plain;charset=utf-8" }));
  link.download = `babelcall-captions-${new Date().toISOString().slice(0, 16).replace(":", "")}.txt`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000); // once the browser has read it
}

start().catch((error) => notice(`BabelCall could not start: ${error.message}`));
