// The camera and microphone (devices, levels, switching) and the WebRTC peer connections: one to
// publish, one per other participant to subscribe (docs/protocol.md section 2, "Media").

// Why a device could not be opened, as the interface explains it: each has a message and advice.
export function deviceProblem(error) {
  if (!navigator.mediaDevices) return "insecure";
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "denied";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "in_use";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "not_found";
    default:
      return "other";
  }
}

const VIDEO_CONSTRAINTS = { width: 320, height: 240, frameRate: 15 };

function audioConstraints(deviceId, processing) {
  return {
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
    echoCancellation: processing,
    noiseSuppression: processing,
    autoGainControl: processing,
  };
}

function videoConstraints(deviceId) {
  return { ...VIDEO_CONSTRAINTS, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) };
}

// This browser's microphone and camera. Each is opened on its own, so that a denied, missing or busy
// camera never keeps the microphone from the call (and the reverse).
export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.audioTrack = null;
    this.videoTrack = null;
    this.problems = { audio: null, video: null }; // deviceProblem() of the last attempt, or null
    this.processing = true;
    this.microphoneOn = true;
    this.cameraOn = true;
    this.audioDeviceId = "";
    this.videoDeviceId = "";
  }

  async openMicrophone() {
    if (!navigator.mediaDevices) return (this.problems.audio = "insecure");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(this.audioDeviceId, this.processing) });
      this.setTrack("audio", stream.getAudioTracks()[0]);
      this.problems.audio = null;
    } catch (error) {
      this.problems.audio = deviceProblem(error);
    }
    return this.problems.audio;
  }

  async openCamera() {
    if (!navigator.mediaDevices) return (this.problems.video = "insecure");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(this.videoDeviceId) });
      this.setTrack("video", stream.getVideoTracks()[0]);
      this.problems.video = null;
    } catch (error) {
      this.problems.video = deviceProblem(error);
    }
    return this.problems.video;
  }

  setTrack(kind, track) {
    const old = kind === "audio" ? this.audioTrack : this.videoTrack;
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    if (track) {
      this.stream.addTrack(track);
      if (kind === "audio") track.enabled = this.microphoneOn;
      this.remember(kind, track);
    }
    if (kind === "audio") this.audioTrack = track;
    else this.videoTrack = track;
  }

  // The device actually opened, so that the pickers show it and a reopen asks for the same one.
  remember(kind, track) {
    const deviceId = track.getSettings().deviceId || "";
    if (kind === "audio") this.audioDeviceId = deviceId;
    else this.videoDeviceId = deviceId;
  }

  // Muting keeps the track (and its sender) and sends silence: the captions hear nothing.
  setMicrophone(on) {
    this.microphoneOn = on;
    if (this.audioTrack) this.audioTrack.enabled = on;
  }

  // Turning the camera off releases it (its light goes out); turning it on opens it again.
  async setCamera(on) {
    this.cameraOn = on;
    if (!on) {
      this.setTrack("video", null);
      return null;
    }
    return this.openCamera();
  }

  async useDevice(kind, deviceId) {
    if (kind === "audio") {
      this.audioDeviceId = deviceId;
      return this.openMicrophone();
    }
    this.videoDeviceId = deviceId;
    return this.cameraOn ? this.openCamera() : null;
  }

  stop() {
    this.setTrack("audio", null);
    this.setTrack("video", null);
  }
}

// The devices the browser lists, by kind; labels are empty until a device of that kind was allowed.
export async function listDevices() {
  const byKind = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return byKind;
  for (const device of await navigator.mediaDevices.enumerateDevices()) {
    if (byKind[device.kind] && device.deviceId) byKind[device.kind].push(device);
  }
  return byKind;
}

export const canChooseSpeaker = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

let audioContext = null;

// One AudioContext for the page. Browsers start it suspended until the person has interacted with the
// page (a room link opened while signed in): the first click or key press starts the meters.
function sharedAudioContext() {
  if (!audioContext) {
    audioContext = new AudioContext();
    const resume = () => audioContext.resume().catch(() => {});
    for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, resume, { once: true, capture: true });
  }
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

// A microphone's loudness (0-1), read from a copy of the track: muting the sent track silences it
// everywhere it is used, and "you are muted but speaking" still needs to hear the microphone.
export class LevelMeter {
  constructor(track, onLevel) {
    this.copy = track.clone();
    this.copy.enabled = true;
    const context = sharedAudioContext();
    this.source = context.createMediaStreamSource(new MediaStream([this.copy]));
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.timer = setInterval(() => {
      this.analyser.getFloatTimeDomainData(this.samples);
      let sum = 0;
      for (const sample of this.samples) sum += sample * sample;
      // RMS scaled so that speech at a normal distance reads about halfway.
      onLevel(Math.min(1, Math.sqrt(sum / this.samples.length) * 4));
    }, 100);
  }

  stop() {
    clearInterval(this.timer);
    this.source.disconnect();
    this.copy.stop();
  }
}

function gatheringComplete(pc) {
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

// The publishing connection: the microphone and, unless joining audio-only, a camera sender whose
// track can be swapped or removed (camera off) without renegotiating.
export async function publishOffer(pc, media, { withVideo }) {
  const senders = { audio: null, video: null };
  if (media.audioTrack) {
    senders.audio = pc.addTransceiver(media.audioTrack, { direction: "sendonly", streams: [media.stream] }).sender;
  }
  if (withVideo) {
    const transceiver = media.videoTrack
      ? pc.addTransceiver(media.videoTrack, { direction: "sendonly", streams: [media.stream] })
      : pc.addTransceiver("video", { direction: "sendonly", streams: [media.stream] });
    senders.video = transceiver.sender;
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  return { sdp: pc.localDescription.sdp, senders };
}

// Phones' browsers mostly cannot share their screen: the button is offered where this is true.
export const canShareScreen = Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);

// A screen, window or tab to share (the browser asks which): {stream, track}, or {problem}:
// "cancelled" (the person closed the browser's picker, or it is not allowed) or "failed".
export async function openScreen() {
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = "detail"; // scans and lab results: sharp text over smooth motion
    return { stream, track };
  } catch (error) {
    return { problem: error && error.name === "NotAllowedError" ? "cancelled" : "failed" };
  }
}

// The shared screen's own publishing connection (docs/protocol.md: `publish` with source "screen").
export async function screenOffer(pc, { stream, track }) {
  pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  return pc.localDescription.sdp;
}

export async function subscribeOffer(pc, kinds) {
  for (const kind of kinds) pc.addTransceiver(kind, { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  return pc.localDescription.sdp;
}

// What a connection carries now, from its statistics: bytes so far, and the loudness of received audio.
export async function mediaFigures(pc) {
  const figures = { bytesSent: 0, bytesReceived: 0, audioLevel: 0 };
  const report = await pc.getStats();
  report.forEach((stat) => {
    if (stat.type === "outbound-rtp") figures.bytesSent += stat.bytesSent || 0;
    if (stat.type === "inbound-rtp") {
      figures.bytesReceived += stat.bytesReceived || 0;
      if (stat.kind === "audio" && typeof stat.audioLevel === "number") figures.audioLevel = stat.audioLevel;
    }
  });
  return figures;
}
