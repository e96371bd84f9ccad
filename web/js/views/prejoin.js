// Before joining: the camera preview, the microphone's level, the choice of devices and languages, and
// every device problem explained with what to do. A camera problem never keeps anyone from joining
// with their microphone.

import { $, el, setPressed } from "../dom.js";
import { onLanguageChange, t } from "../i18n.js";
import { LevelMeter, LocalMedia, canChooseSpeaker, listDevices } from "../media.js";
import { Call, fillPicker, showChineseScript } from "./call.js";

let view = null; // {app, roomId, media, meter}

export function enterPrejoin(app, roomId, room) {
  leavePrejoin();
  const media = new LocalMedia();
  media.processing = $("#audio-processing").checked;
  view = { app, roomId, room, media, meter: null, speakerId: "", joining: false };
  $("#prejoin-room").replaceChildren(room ? el("bdi", { textContent: room.title, dir: "auto" }) : "");
  app.show("prejoin");
  view.opening = openDevices(view);
}

// Leaving the page's pre-join screen without joining releases the camera and microphone.
export function leavePrejoin() {
  if (!view) return;
  if (view.meter) view.meter.stop();
  view.media.stop();
  $("#preview-video").srcObject = null;
  view = null;
}

async function openDevices(current) {
  const { media } = current;
  await media.openMicrophone();
  if (media.cameraOn) await media.openCamera();
  if (view !== current) return media.stop(); // left the screen meanwhile
  showMedia(current);
  const devices = await listDevices();
  if (view !== current || current.joining) return;
  fillPicker($("#microphone-choice"), devices.audioinput, media.audioDeviceId, "devices.microphoneN");
  fillPicker($("#camera-choice"), devices.videoinput, media.videoDeviceId, "devices.cameraN");
  fillPicker($("#speaker-choice"), devices.audiooutput, current.speakerId, "devices.speakerN");
  $("#speaker-choice-label").hidden = !canChooseSpeaker;
  if (!devices.videoinput.length && !media.problems.video && media.cameraOn) media.problems.video = "not_found";
  showMedia(current);
}

function showMedia(current) {
  const { media } = current;
  $("#preview-video").srcObject = media.videoTrack ? media.stream : null;
  const placeholder = $("#preview-placeholder");
  placeholder.hidden = Boolean(media.videoTrack);
  placeholder.textContent = media.cameraOn ? t("prejoin.noCamera") : t("call.cameraOff");
  if (current.meter) current.meter.stop();
  current.meter = media.audioTrack ? new LevelMeter(media.audioTrack, (level) => ($("#mic-level").value = level)) : null;
  if (!media.audioTrack) $("#mic-level").value = 0;
  const mic = $("#prejoin-mic");
  setPressed(mic, !media.microphoneOn);
  mic.textContent = media.microphoneOn ? t("prejoin.micOn") : t("prejoin.micOff");
  mic.disabled = !media.audioTrack;
  const camera = $("#prejoin-camera");
  setPressed(camera, !media.cameraOn);
  camera.textContent = media.cameraOn ? t("prejoin.cameraOn") : t("prejoin.cameraOff");
  showProblems(media);
  const nothing = !media.audioTrack && !media.videoTrack;
  $("#join-button").textContent = nothing ? t("prejoin.joinListening") : t("prejoin.join");
  $("#join-audio-only").hidden = !media.audioTrack;
}

function showProblems(media) {
  const list = $("#device-problems");
  list.replaceChildren();
  for (const kind of ["audio", "video"]) {
    const problem = media.problems[kind];
    if (!problem || (kind === "video" && !media.cameraOn)) continue;
    const other = kind === "video" ? (media.audioTrack ? t("devices.joinWithMicrophone") : "") : media.videoTrack ? t("devices.joinWithCamera") : t("devices.joinListening");
    list.append(
      el(
        "li",
        { className: "problem", dataset: { kind, problem } },
        el("strong", { textContent: t(`devices.${kind}.${problem}`) }),
        " ",
        t(`devices.advice.${problem}`),
        other ? el("span", { className: "then", textContent: ` ${other}` }) : null,
      ),
    );
  }
}

async function join({ audioOnly }) {
  const current = view;
  if (!current || current.joining) return;
  current.joining = true;
  await current.opening; // a join clicked at once waits for the devices being opened
  if (view !== current) return;
  const { app, roomId, media } = current;
  if (current.meter) current.meter.stop();
  current.meter = null;
  const withVideo = !audioOnly && !media.problems.video && (media.cameraOn ? Boolean(media.videoTrack) : true);
  if (audioOnly) media.setTrack("video", null);
  $("#preview-video").srcObject = null;
  view = null; // the call owns the media now
  const speaks = $("#speaks").value;
  const captions = $("#captions-language").value;
  const chineseScript = $("#chinese-script").value;
  app.rememberLanguages({ speaks, captions, chineseScript });
  app.notice(null);
  new Call(app, { roomId, speaks, captions, chineseScript, media, withVideo, speakerId: current.speakerId }).start();
}

export function wirePrejoin() {
  $("#join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    join({ audioOnly: false });
  });
  $("#join-audio-only").addEventListener("click", () => join({ audioOnly: true }));
  $("#captions-language").addEventListener("change", (event) => showChineseScript($("#chinese-script-label"), event.target.value));
  $("#prejoin-mic").addEventListener("click", () => {
    if (!view) return;
    view.media.setMicrophone(!view.media.microphoneOn);
    showMedia(view);
  });
  $("#prejoin-camera").addEventListener("click", async () => {
    if (!view) return;
    const current = view;
    await current.media.setCamera(!current.media.cameraOn);
    if (view === current) showMedia(current);
  });
  $("#microphone-choice").addEventListener("change", async (event) => {
    if (!view) return;
    const current = view;
    await current.media.useDevice("audio", event.target.value);
    if (view === current) showMedia(current);
  });
  $("#camera-choice").addEventListener("change", async (event) => {
    if (!view) return;
    const current = view;
    await current.media.useDevice("video", event.target.value);
    if (view === current) showMedia(current);
  });
  $("#speaker-choice").addEventListener("change", (event) => {
    if (view) view.speakerId = event.target.value;
  });
  $("#audio-processing").addEventListener("change", async (event) => {
    if (!view) return;
    const current = view;
    current.media.processing = event.target.checked;
    await current.media.openMicrophone();
    if (view === current) showMedia(current);
  });
  onLanguageChange(() => view && showMedia(view));
}
