"""Turn decoded WebRTC audio frames into what speech recognition eats: 16 kHz mono float32."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

SAMPLE_RATE = 16_000


class AudioTap:
    """Downmixes and resamples frames of any layout and rate (aiortc gives 48 kHz stereo s16)."""

    def __init__(self) -> None:
        # Planar float keeps the channels apart so we can average them ourselves: ffmpeg's own stereo to
        # mono downmix adds the channels at -3 dB, which makes a browser's (identical) channels 41% louder
        # than the speaker's real level and skews energy-based speech detection.
        self._resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        # The resampler keeps state between frames, so consecutive frames join without clicks; it may
        # hold a few samples back, which is why the result is not always len(frame) / 3 long.
        chunks = [out.to_ndarray().mean(axis=0) for out in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


async def tap_track(track: MediaStreamTrack, sink: Callable[[np.ndarray], Awaitable[None]]) -> None:
    """Read `track` until it ends, handing each converted chunk to `sink` (which may apply back-pressure)."""
    tap = AudioTap()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        assert isinstance(frame, av.AudioFrame)
        samples = tap.convert(frame)
        if samples.size:
            await sink(samples)
