// The call: tiles, shared screens, people, controls, captions, chat and the connection's state, for
// one joined room.

import { CaptionBoard } from "../captions.js";
import { CHAT_ERROR_CODES, ChatOutbox, chatProblem, refusalKey } from "../chat.js";
import { $, el, setPressed, userText } from "../dom.js";
import { errorText, formatDuration, formatNumber, isolate, languageName, onLanguageChange, t, tNodes } from "../i18n.js";
import {
  LevelMeter,
  canChooseSpeaker,
  canShareScreen,
  listDevices,
  mediaFigures,
  openScreen,
  publishOffer,
  screenOffer,
  subscribeOffer,
} from "../media.js";
import { api } from "../rest.js";
import { CallConnection, PROTOCOL_VERSION } from "../signalling.js";
import { RecordPanel, wireRecordControls } from "./record.js";

// Media that has not connected this long after the server answered is reported, with what to try.
const MEDIA_CONNECT_TIMEOUT_MS = 10000;
const STATS_INTERVAL_MS = 400;
const SPEAKING_LEVEL = 0.04; // received audio level (0-1) above which a participant is speaking
const MUTED_SPEAKING_LEVEL = 0.12; // local level that counts as speaking into a muted microphone
const MUTED_SPEAKING_HOLD_MS = 1500;
const PHONE = "(max-width: 600px)"; // style.css: the phone layout

// The board outlives a call: after the call ends its final captions can still be downloaded.
export const captionBoard = new CaptionBoard({ lines: $("#caption-lines"), live: $("#caption-live"), scroller: $("#captions") });

let current = null; // the Call on screen

export function activeCall() {
  return current;
}

export class Call {
  // app: {me, info, notice, route, navigate}; media: an open LocalMedia, which the call now owns.
  constructor(app, { roomId, speaks, captions, chineseScript, media, withVideo, speakerId }) {
    this.app = app;
    this.roomId = roomId;
    this.me = { speaks, captions, chineseScript };
    this.media = media;
    this.withVideo = withVideo;
    this.speakerId = speakerId || "";
    this.participantId = null;
    this.participants = new Map(); // id -> participant (from the server)
    this.subscribers = new Map(); // publisher id -> {pc, stream, state, watchdog}
    this.publisher = null; // {pc, senders, watchdog}
    this.screen = null; // this page's shared screen: {stream, track, pc}
    this.screens = new Map(); // id of a participant sharing their screen -> {pc, stream}
    this.outbox = new ChatOutbox();
    this.record = new RecordPanel(this);
    this.endingForAll = false; // this page's host asked to end the call for everyone
    this.room = null;
    this.host = null;
    this.status = "connecting";
    this.statusDetail = null;
    this.timers = [];
    this.meter = null;
    this.loudSince = null;
    this.lastLoud = 0;
    this.connection = new CallConnection({
      roomId,
      speaks,
      captions,
      chineseScript,
      onMessage: (message) => this.handle(message),
      onState: (state) => this.changeState(state),
    });
  }

  start() {
    current = this;
    captionBoard.clear();
    this.app.show("call");

    $("#call-title").textContent = t("call.connecting");
    $("#call-timer").textContent = "";
    $("#call-captions-language").value = this.me.captions;
    $("#call-chinese-script").value = this.me.chineseScript;
    showChineseScript($("#call-chinese-script-label"), this.me.captions);
    $("#chat-error").hidden = true;
    // On a phone the list of people starts folded, so the captions and chat have the room.
    $("#people-panel").open = !window.matchMedia(PHONE).matches;
    this.addSelfTile();
    this.watchMicrophone();
    this.showControls();
    this.fillDevicePickers();
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.readStats(), STATS_INTERVAL_MS));
    this.connection.start();
    this.showPeople();
  }

  // ------------------------------------------------------------ connection state

  changeState(state) {
    this.status = state.state;
    this.statusDetail = state;
    if (state.state === "joined") {
      this.joined(state.message);
    } else if (state.state === "reconnecting") {
      captionBoard.cutOff();
      this.dropConnections();
      $("#call-title").textContent = this.room ? this.room.title : t("call.connecting");
    } else if (state.state === "ended") {
      this.ended(state.reason);
      return;
    }
    this.showBanner();
    this.showPeople();
  }

  // The reason is a live region (announced when it changes); the countdown beside it is not, or it
  // would be read out every second.
  showBanner() {
    const state = this.statusDetail || {};
    let reason = null;
    let countdown = "";
    if (state.state === "reconnecting") {
      reason = t({
        media_lost: "connection.mediaLost",
        restarting: "connection.restarting",
        unreachable: "connection.unreachable",
      }[state.reason] || "connection.lost");
      const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      countdown = state.slow ? t("connection.retryingSlowly", { seconds }) : t("connection.retrying", { seconds });
    } else if (this.mediaProblem) {
      reason = t("connection.mediaNotFlowing");
    }
    if ($("#connection-message").textContent !== (reason || "")) $("#connection-message").textContent = reason || "";
    $("#connection-countdown").textContent = countdown;
    $("#connection-banner").hidden = !reason;
    $("#retry-now").hidden = state.state !== "reconnecting";
  }

  ended(reason) {
    this.stopEverything();
    switch (reason) {
      case "no_room":
        this.app.notice(null);
        this.app.showNoRoom();
        return;
      case "membership_ended":
      case "signed_out":
        this.app.signedOut(reason === "membership_ended" ? "errors.membership_ended" : "errors.not_signed_in");
        return;
      default: {
        // Back to the lobby, where the captions of this call can still be downloaded.
        const key = {
          left: "call.youLeft",
          room_full: "errors.room_full",
          removed: "errors.removed",
          replaced: "errors.replaced",
          call_ended: this.endingForAll ? "host.youEnded" : "errors.call_ended",
        }[reason] || "call.ended";
        this.app.notice(key);
        this.app.navigate("/");
      }
    }
  }

  leave() {
    this.connection.leave();
  }

  stopEverything() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    captionBoard.cutOff();
    this.dropConnections();
    if (this.meter) this.meter.stop();
    this.meter = null;
    this.media.stop();
    if (this.screen) this.screen.track.stop();
    this.screen = null;
    this.record.reset();
    $("#videos").replaceChildren();
    $("#screens").replaceChildren();
    this.arrangeScreens();
    $("#people").replaceChildren();
    $("#connection-banner").hidden = true;
    $("#muted-speaking").hidden = true;
    if (current === this) current = null;
  }

  dropConnections() {
    if (this.publisher) {
      clearTimeout(this.publisher.watchdog);
      this.publisher.pc.close();
    }
    this.publisher = null;
    this.mediaProblem = false;
    for (const id of [...this.subscribers.keys()]) this.closeSubscriber(id);
    for (const id of [...this.screens.keys()]) this.closeScreen(id);
    if (this.screen && this.screen.pc) this.screen.pc.close();
    if (this.screen) this.screen.pc = null; // shared again once the call is joined again
    this.outbox.clear();
    this.record.reset();
    this.participants.clear();
    this.participantId = null;
    const self = document.getElementById("tile-self");
    if (self) self.dataset.connection = "new";
  }

  // ------------------------------------------------------------ server messages

  async joined(message) {
    if (message.protocol !== PROTOCOL_VERSION) this.app.notice("errors.outdated");
    // STUN, and TURN with short-lived credentials: fetched afresh for every (re)join.
    this.iceServers = await api("/api/ice").then((body) => body.ice_servers).catch(() => []);
    this.participantId = message.participant_id;
    this.room = message.room;
    this.host = message.room.created_by;
    $("#call-title").textContent = message.room.title;
    this.showGlossary(message.room.glossary);
    for (const participant of message.room.participants) {
      if (participant.id === this.participantId) continue;
      this.participants.set(participant.id, participant);
      if (participant.publishing.length) this.subscribe(participant);
      this.followScreen(participant);
    }
    this.tick();
    this.showPeople();
    this.showControls();
    this.record.render();
    await this.publish();
    if (this.screen && this.screen.track.readyState === "live") await this.publishScreen();
  }

  async handle(message) {
    switch (message.type) {
      case "published": {
        const publisher = message.source === "screen" ? this.screen : this.publisher;
        if (publisher && publisher.pc) await publisher.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      }
      case "subscribed": {
        const subscriber = (message.source === "screen" ? this.screens : this.subscribers).get(message.publisher_id);
        if (subscriber) await subscriber.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      }
      case "participant_joined":
      case "participant_updated":
      case "participant_published": {
        // This page's own update comes back too: it is shown from this.me, not as a participant.
        const participant = message.participant;
        if (participant.id === this.participantId) break;
        this.participants.set(participant.id, participant);
        if (participant.publishing.length) this.subscribe(participant);
        this.followScreen(participant);
        this.showPeople();
        this.record.render();
        break;
      }
      case "participant_left":
        this.participants.delete(message.participant_id);
        this.closeSubscriber(message.participant_id);
        this.closeScreen(message.participant_id);
        this.showPeople();
        break;
      case "caption":
        captionBoard.show(message);
        break;
      case "chat":
        if (message.sender_id === this.participantId) this.outbox.delivered(message);
        captionBoard.showChat(message);
        break;
      case "glossary_updated":
        this.showGlossary(message.terms);
        break;
      case "mute_requested":
        this.muteRequested(message.by_name);
        break;
      case "record_state":
        this.record.update(message);
        break;
      case "error": {
        const refused = CHAT_ERROR_CODES.has(message.code) ? this.outbox.refused() : null;
        if (refused !== null) this.chatRefused(refused, refusalKey(message.code));
        else this.app.noticeText(errorText(message));
        break;
      }
    }
  }

  // ------------------------------------------------------------ media

  async publish() {
    const media = this.media;
    if (!media.audioTrack && !this.withVideo) return; // nothing to send: this seat only listens
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    // From the start: gathering candidates can hang too where the network blocks calls.
    const watchdog = setTimeout(() => {
      if (pc.connectionState !== "connected") this.reportMediaProblem(true);
    }, MEDIA_CONNECT_TIMEOUT_MS);
    this.publisher = { pc, senders: null, watchdog };
    pc.addEventListener("connectionstatechange", () => this.publisherStateChanged(pc));
    const offer = await publishOffer(pc, media, { withVideo: this.withVideo });
    if (!this.publisher || this.publisher.pc !== pc) return; // the connection dropped meanwhile
    this.publisher.senders = offer.senders;
    this.connection.send({ type: "publish", sdp: offer.sdp });
  }

  publisherStateChanged(pc) {
    if (!this.publisher || this.publisher.pc !== pc) return;
    const self = document.getElementById("tile-self");
    if (self) self.dataset.connection = pc.connectionState;
    if (pc.connectionState === "connected") this.reportMediaProblem(false);
    if (pc.connectionState === "failed") this.reportMediaProblem(true);
    this.showPeople();
  }

  reportMediaProblem(problem) {
    this.mediaProblem = problem;
    this.showBanner();
    this.showPeople();
  }

  async subscribe(participant) {
    if (this.subscribers.has(participant.id)) return;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const stream = new MediaStream();
    const subscriber = { pc, stream, watchdog: null, noMedia: false };
    this.subscribers.set(participant.id, subscriber);
    const video = this.addTile(participant.id, participant.name, stream, !participant.publishing.includes("video"));
    pc.addEventListener("track", (event) => {
      stream.addTrack(event.track);
      if (event.track.kind === "video") this.watchRemoteVideo(participant.id, event.track);
    });
    pc.addEventListener("connectionstatechange", () => {
      const tile = document.getElementById(`tile-${participant.id}`);
      if (tile) tile.dataset.connection = pc.connectionState;
      if (pc.connectionState === "connected") subscriber.noMedia = false;
      if (pc.connectionState === "failed") subscriber.noMedia = true;
      this.showPeople();
    });
    if (this.speakerId && canChooseSpeaker) video.setSinkId(this.speakerId).catch(() => {});
    subscriber.watchdog = setTimeout(() => {
      if (pc.connectionState !== "connected") {
        subscriber.noMedia = true;
        this.showPeople();
      }
    }, MEDIA_CONNECT_TIMEOUT_MS);
    const sdp = await subscribeOffer(pc, participant.publishing);
    if (this.subscribers.get(participant.id) !== subscriber) return;
    this.connection.send({ type: "subscribe", publisher_id: participant.id, sdp });
  }

  // A remote camera that sends no frames (turned off, or no camera) shows as such.
  watchRemoteVideo(participantId, track) {
    const update = () => {
      const tile = document.getElementById(`tile-${participantId}`);
      if (tile) tile.classList.toggle("camera-off", track.muted);
    };
    track.addEventListener("mute", update);
    track.addEventListener("unmute", update);
    update();
  }

  closeSubscriber(participantId) {
    const subscriber = this.subscribers.get(participantId);
    if (subscriber) {
      clearTimeout(subscriber.watchdog);
      subscriber.pc.close();
    }
    this.subscribers.delete(participantId);
    const tile = document.getElementById(`tile-${participantId}`);
    if (tile) tile.remove();
  }

  // ------------------------------------------------------------ shared screens

  async toggleScreen() {
    if (this.screen) this.stopSharing();
    else await this.shareScreen();
  }

  async shareScreen() {
    const opened = await openScreen();
    if (current !== this) {
      if (opened.track) opened.track.stop();
      return;
    }
    if (opened.problem) {
      if (opened.problem === "failed") this.app.notice("screen.failed");
      return;
    }
    const screen = { ...opened, pc: null };
    this.screen = screen;
    // The browser's own "Stop sharing" ends the track.
    opened.track.addEventListener("ended", () => this.screen === screen && this.stopSharing());
    this.addScreenTile("self", this.app.me.name, opened.stream);
    this.showControls();
    if (this.status === "joined") await this.publishScreen();
  }

  // The screen gets a publishing connection of its own, beside the camera's.
  async publishScreen() {
    const screen = this.screen;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    screen.pc = pc;
    const sdp = await screenOffer(pc, screen);
    if (this.screen !== screen || screen.pc !== pc) return; // stopped, or the connection dropped, meanwhile
    this.connection.send({ type: "publish", source: "screen", sdp });
  }

  stopSharing() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    screen.track.stop();
    if (screen.pc) {
      screen.pc.close();
      this.connection.send({ type: "unpublish", source: "screen" });
    }
    this.closeScreen("self");
    this.showControls();
  }

  // Someone's screen is watched while they share it.
  followScreen(participant) {
    if (participant.sharing_screen && !this.screens.has(participant.id)) this.subscribeScreen(participant);
    else if (!participant.sharing_screen && this.screens.has(participant.id)) this.closeScreen(participant.id);
  }

  async subscribeScreen(participant) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const stream = new MediaStream();
    const watching = { pc, stream };
    this.screens.set(participant.id, watching);
    pc.addEventListener("track", (event) => stream.addTrack(event.track));
    this.addScreenTile(participant.id, participant.name, stream);
    const sdp = await subscribeOffer(pc, ["video"]);
    if (this.screens.get(participant.id) !== watching) return;
    this.connection.send({ type: "subscribe", publisher_id: participant.id, source: "screen", sdp });
  }

  closeScreen(participantId) {
    const watching = this.screens.get(participantId);
    if (watching) watching.pc.close();
    this.screens.delete(participantId);
    const tile = document.getElementById(`screen-${participantId}`);
    if (tile) tile.remove();
    this.arrangeScreens();
  }

  addScreenTile(id, name, stream) {
    const tile = el(
      "figure",
      { className: "tile screen", id: `screen-${id}`, attrs: { role: "group" }, dataset: { name } },
      el("video", { autoplay: true, playsInline: true, muted: true, srcObject: stream }),
      el("span", { className: "who" }),
    );
    $("#screens").append(tile);
    this.labelScreenTile(tile);
    this.arrangeScreens();
  }

  labelScreenTile(tile) {
    const self = tile.id === "screen-self";
    const name = tile.dataset.name;
    tile.querySelector(".who").replaceChildren(self ? t("screen.yours") : tNodes("screen.of", { name: userText(name) }));
    tile.setAttribute("aria-label", self ? t("screen.yours") : t("screen.of", { name: isolate(name) }));
  }

  // A shared screen takes the main area; the cameras become a strip beside it.
  arrangeScreens() {
    const sharing = $("#screens").children.length > 0;
    $("#screens").hidden = !sharing;
    $(".main-area").classList.toggle("presenting", sharing);
  }

  addTile(id, name, stream, audioOnly = false) {
    const video = el("video", { autoplay: true, playsInline: true, muted: id === "self", srcObject: stream });
    const tile = el(
      "figure",
      { className: audioOnly ? "tile audio-only" : "tile", id: `tile-${id}`, attrs: { role: "group" }, dataset: { connection: "new", name } },
      video,
      el("span", { className: "tile-placeholder", attrs: { "aria-hidden": "true" } }),
      el("span", { className: "who" }),
    );
    $("#videos").append(tile);
    this.labelTile(tile);
    return video;
  }

  labelTile(tile) {
    const placeholder = tile.querySelector(".tile-placeholder");
    placeholder.textContent = tile.classList.contains("audio-only") ? t("call.audioOnly") : t("call.cameraOff");
    const name = tile.dataset.name;
    const self = tile.id === "tile-self";
    tile.querySelector(".who").replaceChildren(self ? tNodes("call.you", { name: userText(name) }) : userText(name));
    tile.setAttribute("aria-label", self ? t("call.tileSelf") : t("call.tileOf", { name: isolate(name) }));
  }

  addSelfTile() {
    const video = this.addTile("self", this.app.me.name, this.media.stream, !this.withVideo);
    video.muted = true;
    const tile = $("#tile-self");
    tile.classList.toggle("camera-off", this.withVideo && !this.media.videoTrack);
    tile.classList.toggle("muted", !this.media.microphoneOn);
  }

  refreshSelfTile() {
    const tile = $("#tile-self");
    if (!tile) return;
    tile.querySelector("video").srcObject = this.media.stream;
    tile.classList.toggle("camera-off", this.withVideo && !this.media.videoTrack);
    tile.classList.toggle("muted", !this.media.microphoneOn);
  }

  watchMicrophone() {
    if (this.meter) this.meter.stop();
    this.meter = null;
    if (!this.media.audioTrack) return;
    this.meter = new LevelMeter(this.media.audioTrack, (level) => this.localLevel(level));
  }

  // The local microphone: the self tile's speaking highlight, and "you are muted" when speaking into
  // a muted microphone.
  localLevel(level) {
    const now = Date.now();
    const loud = level > MUTED_SPEAKING_LEVEL;
    if (loud) this.lastLoud = now;
    const tile = $("#tile-self");
    if (tile) tile.classList.toggle("speaking", this.media.microphoneOn && level > SPEAKING_LEVEL * 2);
    const hint = $("#muted-speaking");
    if (!this.media.microphoneOn && loud) {
      this.loudSince = this.loudSince || now;
      if (now - this.loudSince > 300) hint.hidden = false;
    } else if (now - this.lastLoud > MUTED_SPEAKING_HOLD_MS || this.media.microphoneOn) {
      this.loudSince = null;
      hint.hidden = true;
    }
  }

  async readStats() {
    let loudest = null;
    for (const [id, subscriber] of this.subscribers) {
      if (subscriber.pc.connectionState !== "connected") continue;
      let figures;
      try {
        figures = await mediaFigures(subscriber.pc);
      } catch {
        continue;
      }
      const tile = document.getElementById(`tile-${id}`);
      if (!tile) continue;
      const speaking = figures.audioLevel > SPEAKING_LEVEL;
      tile.classList.toggle("speaking", speaking);
      if (speaking && (!loudest || figures.audioLevel > loudest.level)) loudest = { id, level: figures.audioLevel };
    }
    if (loudest) {
      for (const tile of document.querySelectorAll("#videos .tile")) tile.classList.toggle("active", tile.id === `tile-${loudest.id}`);
    }
  }

  tick() {
    if (this.room && this.room.opened_at) {
      $("#call-timer").textContent = formatDuration(Date.now() / 1000 - this.room.opened_at);
    }
    if (this.status === "reconnecting") this.showBanner();
  }

  // ------------------------------------------------------------ controls

  showControls() {
    const mic = $("#toggle-mic");
    const on = this.media.microphoneOn;
    setPressed(mic, !on);
    mic.disabled = !this.media.audioTrack;
    mic.textContent = on ? t("call.mute") : t("call.unmute");
    mic.title = !this.media.audioTrack ? t("call.noMicrophone") : on ? t("call.muteHint") : t("call.unmuteHint");
    const camera = $("#toggle-camera");
    const cameraOn = Boolean(this.media.videoTrack);
    setPressed(camera, !cameraOn);
    camera.disabled = !this.withVideo;
    camera.textContent = cameraOn ? t("call.cameraStop") : t("call.cameraStart");
    camera.title = !this.withVideo ? t("call.audioOnlyHint") : cameraOn ? t("call.cameraStopHint") : t("call.cameraStartHint");
    const screen = $("#toggle-screen");
    screen.hidden = !canShareScreen;
    setPressed(screen, Boolean(this.screen));
    screen.textContent = this.screen ? t("screen.stop") : t("screen.share");
    screen.title = this.screen ? t("screen.stopHint") : t("screen.shareHint");
    $("#end-for-all").hidden = !this.isHost();
  }

  toggleMicrophone() {
    if (!this.media.audioTrack) return;
    this.media.setMicrophone(!this.media.microphoneOn);
    this.refreshSelfTile();
    this.showControls();
    this.showPeople();
  }

  async toggleCamera() {
    if (!this.withVideo) return;
    const on = !this.media.videoTrack;
    const problem = await this.media.setCamera(on);
    if (problem) this.app.notice(`devices.video.${problem}`);
    await this.replaceSent("video");
    this.refreshSelfTile();
    this.showControls();
  }

  async replaceSent(kind) {
    const senders = this.publisher && this.publisher.senders;
    const sender = senders && senders[kind];
    const track = kind === "audio" ? this.media.audioTrack : this.media.videoTrack;
    if (sender) await sender.replaceTrack(track).catch(() => {});
  }

  // A device chosen mid-call: its track replaces the old one on the same sender, without renegotiating.
  async switchDevice(kind, deviceId) {
    if (kind === "speaker") {
      this.speakerId = deviceId;
      for (const video of document.querySelectorAll("#videos .tile:not(#tile-self) video")) {
        await video.setSinkId(deviceId).catch(() => {});
      }
      return;
    }
    const problem = await this.media.useDevice(kind, deviceId);
    if (problem) {
      this.app.notice(`devices.${kind}.${problem}`);
      return;
    }
    await this.replaceSent(kind);
    if (kind === "audio") this.watchMicrophone();
    this.refreshSelfTile();
    this.showControls();
  }

  async fillDevicePickers() {
    const devices = await listDevices();
    fillPicker($("#call-microphone-choice"), devices.audioinput, this.media.audioDeviceId, "devices.microphoneN");
    fillPicker($("#call-camera-choice"), devices.videoinput, this.media.videoDeviceId, "devices.cameraN");
    fillPicker($("#call-speaker-choice"), devices.audiooutput, this.speakerId, "devices.speakerN");
    $("#call-camera-choice").disabled = !this.withVideo;
    $("#call-speaker-choice-label").hidden = !canChooseSpeaker;
  }

  // ------------------------------------------------------------ people and glossary

  isHost() {
    return this.app.me.is_admin || this.app.me.id === this.host;
  }

  connectionLabel(state, noMedia) {
    if (noMedia) return ["no-media", t("connection.noMedia")];
    if (state === "listening") return ["connected", t("connection.listening")];
    if (state === "connected") return ["connected", t("connection.connected")];
    if (state === "disconnected") return ["unstable", t("connection.unstable")];
    if (state === "failed" || state === "closed") return ["no-media", t("connection.noMedia")];
    return ["connecting", t("connection.connecting")];
  }

  // Who is in the call and in which languages, so nobody is listening unseen; the host (or an
  // administrator) can remove someone from here.
  showPeople() {
    const list = $("#people");
    list.replaceChildren();
    const mayRemove = this.isHost();
    const selfState = this.status !== "joined" ? "new" : this.publisher ? this.publisher.pc.connectionState : "listening";
    const me = { id: this.participantId, name: this.app.me.name, ...this.me, self: true, state: selfState, noMedia: this.mediaProblem };
    const others = [...this.participants.values()].map((p) => {
      const subscriber = this.subscribers.get(p.id);
      return { ...p, state: subscriber ? subscriber.pc.connectionState : p.publishing.length ? "new" : "connected", noMedia: subscriber && subscriber.noMedia };
    });
    for (const person of [me, ...others]) {
      const spoken = person.speaks === "auto" ? t("people.severalLanguages") : languageName(person.speaks);
      const [stateClass, stateText] = this.connectionLabel(person.state, person.noMedia);
      const name = person.self ? tNodes("call.you", { name: userText(person.name) }) : userText(person.name);
      const item = el(
        "li",
        { dataset: { participantId: person.id || "" } },
        el("span", { className: "name" }, name),
        el("span", { className: `connection ${stateClass}`, textContent: stateText }),
        el("span", { className: "hint languages", textContent: t("people.languages", { speaks: spoken, reads: languageName(person.captions) }) }),
      );
      if (person.self && !this.media.microphoneOn) item.append(el("span", { className: "badge", textContent: t("call.muted") }));
      if (person.sharing_screen || (person.self && this.screen)) item.append(el("span", { className: "hint", textContent: t("screen.sharing") }));
      if (mayRemove && !person.self) {
        const actions = el("span", { className: "actions" });
        if (person.publishing.includes("audio")) {
          const mute = el("button", { type: "button", className: "secondary small", textContent: t("host.askToMute") });
          mute.setAttribute("aria-label", t("host.askToMuteNamed", { name: isolate(person.name) }));
          mute.addEventListener("click", () => this.askToMute(person));
          actions.append(mute);
        }
        const remove = el("button", { type: "button", className: "secondary small", textContent: t("people.remove") });
        remove.setAttribute("aria-label", t("people.removeNamed", { name: isolate(person.name) }));
        remove.addEventListener("click", () => this.remove(person));
        actions.append(remove);
        item.append(actions);
      }
      list.append(item);
    }
    $("#people-count").textContent = formatNumber(1 + this.participants.size);
  }

  async askToMute(person) {
    try {
      await api(`/api/rooms/${this.roomId}/participants/${person.id}/mute`, { method: "POST" });
      this.app.notice("host.askedToMute", { name: person.name });
    } catch (error) {
      this.app.noticeText(errorText(error));
    }
  }

  // The host asked this participant to mute: the microphone goes quiet at once; unmuting is theirs.
  muteRequested(byName) {
    if (this.media.audioTrack && this.media.microphoneOn) this.toggleMicrophone();
    this.app.notice("host.muteRequested", { name: byName });
  }

  async endForAll() {
    if (!confirm(t("host.endConfirm"))) return;
    this.endingForAll = true;
    try {
      await api(`/api/rooms/${this.roomId}/end`, { method: "POST" });
    } catch (error) {
      this.endingForAll = false;
      this.app.noticeText(errorText(error));
    }
  }

  // ------------------------------------------------------------ chat

  sendChat() {
    const input = $("#chat-text");
    const text = input.value.trim();
    if (!text) return;
    const problem = chatProblem(text);
    if (problem) return this.showChatError(...problem);
    if (this.status !== "joined") return this.showChatError("chat.offline");
    this.connection.send({ type: "chat", text });
    this.outbox.sent(text);
    input.value = "";
    this.showChatError(null);
  }

  // The server refused a message: the writer gets it back to correct or resend, with the reason.
  chatRefused(text, key) {
    const input = $("#chat-text");
    input.value = input.value ? `${text}\n${input.value}` : text;
    this.showChatError(key);
  }

  showChatError(key, params = {}) {
    this.chatError = key ? { key, params } : null;
    const node = $("#chat-error");
    node.hidden = !key;
    node.textContent = key ? t(key, params) : "";
  }

  async remove(person) {
    if (!confirm(t("people.removeConfirm", { name: isolate(person.name) }))) return;
    try {
      await api(`/api/rooms/${this.roomId}/participants/${person.id}`, { method: "DELETE" });
    } catch (error) {
      this.app.noticeText(errorText(error));
    }
  }

  showGlossary(terms) {
    this.glossary = terms || [];
    $("#glossary-terms").value = this.glossary.map((term) => term.term).join("\n");
    const editable = this.isHost();
    $("#glossary-terms").readOnly = !editable;
    $("#save-glossary").hidden = !editable;
    $("#glossary-hint").textContent = editable ? t("glossary.hint") : `${t("glossary.hint")} ${t("glossary.readOnly")}`;
  }

  async saveGlossary() {
    // Keep per-language renderings (set through the API) of the terms that stay.
    const known = new Map(this.glossary.map((term) => [term.term, term.renderings]));
    const terms = $("#glossary-terms").value.split("\n").map((term) => term.trim()).filter(Boolean)
      .map((term) => ({ term, renderings: known.get(term) || {} }));
    try {
      await api(`/api/rooms/${this.roomId}/glossary`, { method: "PUT", body: { terms } });
      this.app.notice("glossary.saved");
    } catch (error) {
      this.app.noticeText(errorText(error));
    }
  }

  relabel() {
    this.showControls();
    this.showPeople();
    this.showBanner();
    this.showGlossary(this.glossary);
    this.record.render();
    if (this.chatError) this.showChatError(this.chatError.key, this.chatError.params);
    for (const tile of document.querySelectorAll("#videos .tile")) this.labelTile(tile);
    for (const tile of document.querySelectorAll("#screens .tile")) this.labelScreenTile(tile);
    if (!this.room) $("#call-title").textContent = t("call.connecting");
  }
}

// The choice of Chinese script is offered to readers of Chinese captions only.
export function showChineseScript(label, captions) {
  label.hidden = captions !== "zh";
}

export function fillPicker(select, devices, chosen, fallbackKey) {
  select.replaceChildren();
  devices.forEach((device, index) => {
    select.append(el("option", { value: device.deviceId, textContent: device.label || t(fallbackKey, { n: index + 1 }) }));
  });
  if (chosen && devices.some((device) => device.deviceId === chosen)) select.value = chosen;
  select.disabled = devices.length === 0;
}

// The call's controls are wired once; they act on whichever call is on screen.
export function wireCallControls() {
  $("#toggle-mic").addEventListener("click", () => current && current.toggleMicrophone());
  $("#toggle-camera").addEventListener("click", () => current && current.toggleCamera());
  $("#leave").addEventListener("click", () => current && current.leave());
  $("#toggle-screen").addEventListener("click", () => current && current.toggleScreen());
  $("#end-for-all").addEventListener("click", () => current && current.endForAll());
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (current) current.sendChat();
  });
  // Enter sends, Shift+Enter starts a new line; never while an input method is composing a word.
  // A refusal's reason stays until the writer changes the message.
  $("#chat-text").addEventListener("input", () => current && current.chatError && current.showChatError(null));
  $("#chat-text").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    $("#chat-form").requestSubmit();
  });
  wireRecordControls(() => current);
  $("#retry-now").addEventListener("click", () => current && current.connection.tryNow());
  $("#toggle-devices").addEventListener("click", (event) => {
    const panel = $("#devices-panel");
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("#toggle-glossary").addEventListener("click", (event) => {
    const panel = $("#glossary-panel");
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("#glossary-panel").addEventListener("submit", (event) => {
    event.preventDefault();
    if (current) current.saveGlossary();
  });
  $("#call-microphone-choice").addEventListener("change", (event) => current && current.switchDevice("audio", event.target.value));
  $("#call-camera-choice").addEventListener("change", (event) => current && current.switchDevice("video", event.target.value));
  $("#call-speaker-choice").addEventListener("change", (event) => current && current.switchDevice("speaker", event.target.value));
  const languagesChanged = () => {
    if (!current) return;
    current.me.captions = $("#call-captions-language").value;
    current.me.chineseScript = $("#call-chinese-script").value;
    showChineseScript($("#call-chinese-script-label"), current.me.captions);
    current.connection.setCaptions(current.me.captions, current.me.chineseScript);
    current.app.rememberLanguages({ chineseScript: current.me.chineseScript });
    current.showPeople();
  };
  $("#call-captions-language").addEventListener("change", languagesChanged);
  $("#call-chinese-script").addEventListener("change", languagesChanged);
  $("#copy-link").addEventListener("click", async () => {
    const link = `${location.origin}/r/${current ? current.roomId : ""}`;
    await navigator.clipboard.writeText(link).catch(() => {});
    current.app.notice("call.linkCopied", { link });
  });
  $("#download-captions").addEventListener("click", () => captionBoard.download($("#call-title").textContent || "call"));
  // Shortcuts by key position (event.code), so they work on any keyboard layout; never while typing.
  document.addEventListener("keydown", (event) => {
    if (!current || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.code === "KeyM") current.toggleMicrophone();
    else if (event.code === "KeyV") current.toggleCamera();
    else return;
    event.preventDefault();
  });
  onLanguageChange(() => {
    captionBoard.relabel();
    if (current) current.relabel();
  });
}
