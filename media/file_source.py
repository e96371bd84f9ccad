"""An audio track that plays a file in real time, as a microphone would: the headless participant's voice."""

from __future__ import annotations

import asyncio
import fractions
import time
import wave
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

_RATE = 48_000
_FRAME_SAMPLES = 960  # 20 ms, what browsers send and aiortc's Opus encoder expects


def decode_file(path: Path, rate: int = _RATE) -> np.ndarray:
    """Decode any audio file PyAV (ffmpeg) reads into mono int16 at `rate`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if not chunks:
        raise ValueError(f"{path} decoded to no audio")
    return np.concatenate(chunks).astype(np.int16, copy=False)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono int16 samples as 16-bit PCM WAV (the one format Chromium's fake microphone reads right)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype(np.int16).tobytes())
    return path


class FileAudioTrack(MediaStreamTrack):
    """Plays decoded samples paced by the wall clock, then sends silence until stopped.

    Silence after the file matters: it is how a listener's voice-activity detector hears the end of
    the last sentence. `playback_started_at` / `playback_ended_at` (Unix time) let benchmarks measure
    latency from the moment speech actually left the microphone; `max_lateness_s` says how far behind
    the wall clock the sender asked for a frame (a busy client sends audio late, and every latency
    measured from the recording's timeline then includes that).
    """

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self._samples = samples
        self._position = 0
        self._pts = 0
        self._clock_start: float | None = None
        self.playback_started_at: float | None = None
        self.playback_ended_at: float | None = None
        self.max_lateness_s = 0.0
        self.finished = asyncio.Event()

    @classmethod
    def from_path(cls, path: Path) -> FileAudioTrack:
        return cls(decode_file(path))

    @property
    def duration_s(self) -> float:
        return len(self._samples) / _RATE

    async def recv(self) -> av.AudioFrame:
        if self._clock_start is None:
            self._clock_start = time.monotonic()
            self.playback_started_at = time.time()
        lateness = await _wait_until(self._clock_start + self._pts / _RATE)
        self.max_lateness_s = max(self.max_lateness_s, lateness)

        chunk = self._samples[self._position : self._position + _FRAME_SAMPLES]
        self._position += len(chunk)
        if len(chunk) < _FRAME_SAMPLES:
            if not self.finished.is_set():
                self.playback_ended_at = time.time()
                self.finished.set()
            chunk = np.concatenate([chunk, np.zeros(_FRAME_SAMPLES - len(chunk), dtype=np.int16)])

        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = _RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, _RATE)
        self._pts += _FRAME_SAMPLES
        return frame


class PatternVideoTrack(MediaStreamTrack):
    """A camera for headless participants: a moving, textured test pattern in real time.

    Textured and moving so that encoding it costs about what a real camera costs (a flat colour would
    compress to nothing); the texture is made once and shifted per frame, so making frames is cheap.
    """

    kind = "video"
    _CLOCK_RATE = 90_000

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        # Smooth blobs plus fine grain: like a face in a room, not like static.
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        smooth = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:height, :width]
        grain = rng.integers(-12, 13, (height, width, 3))
        self.texture = np.clip(smooth.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        self._fps = fps
        self._index = 0
        self._clock_start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._clock_start is None:
            self._clock_start = time.monotonic()
        await _wait_until(self._clock_start + self._index / self._fps)
        image = np.roll(self.texture, 3 * self._index, axis=1)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._index * self._CLOCK_RATE // self._fps
        frame.time_base = fractions.Fraction(1, self._CLOCK_RATE)
        self._index += 1
        return frame


async def _wait_until(due: float) -> float:
    """Sleep until `time.monotonic()` reaches `due`, as a real device delivers on its own clock; return
    how late the caller already was (0 when on time)."""
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
        return 0.0
    return -delay
