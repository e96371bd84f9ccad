"""The audio tap on real Opus: speech encoded and decoded by aiortc's own codecs, as on a call."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from faster_whisper import decode_audio

from media import SAMPLE_RATE, AudioTap
from media.file_source import decode_file


def _through_opus(samples_48k_mono: np.ndarray) -> list[av.AudioFrame]:
    """Encode 20 ms frames with aiortc's Opus encoder and decode them as a receiving peer would."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    frames: list[av.AudioFrame] = []
    for index, start in enumerate(range(0, len(samples_48k_mono) - 960 + 1, 960)):
        chunk = samples_48k_mono[start : start + 960].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = start
        frame.time_base = fractions.Fraction(1, 48_000)
        payloads, _timestamp = encoder.encode(frame)
        for payload in payloads:
            frames.extend(decoder.decode(JitterFrame(data=payload, timestamp=index * 960)))
    return frames


def test_tap_turns_decoded_opus_into_16k_mono_float(speech_dir: Path) -> None:
    source = speech_dir / "en_jfk.flac"
    decoded = _through_opus(decode_file(source))
    # aiortc hands the tap 48 kHz stereo s16, 960 samples per frame.
    assert decoded[0].sample_rate == 48_000 and decoded[0].layout.name == "stereo"

    tap = AudioTap()
    tapped = np.concatenate([tap.convert(frame) for frame in decoded])
    assert tapped.dtype == np.float32 and tapped.ndim == 1

    reference = decode_audio(str(source), sampling_rate=SAMPLE_RATE)
    # Same length within the resampler's and codec's few-millisecond delays.
    assert abs(len(tapped) - len(reference)) < 0.05 * SAMPLE_RATE
    assert np.max(np.abs(tapped)) <= 1.0

    # Opus is lossy and adds a small delay: find the best alignment, then compare per-second envelopes.
    n = min(len(tapped), len(reference)) - 2_000
    lags = range(0, 800, 8)
    best = max(lags, key=lambda lag: float(np.dot(tapped[lag : lag + n], reference[:n])))
    aligned = tapped[best : best + n]
    correlation = float(np.corrcoef(aligned, reference[:n])[0, 1])
    assert correlation > 0.9, f"tapped audio does not match the source (r={correlation:.2f})"


def test_tap_downmixes_stereo_and_resamples_any_rate() -> None:
    tap = AudioTap()
    seconds, rate = 1.0, 44_100
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    stereo = np.stack([tone, tone]).T.reshape(1, -1)  # packed s16: L R L R ...
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = rate
    out = np.concatenate([tap.convert(frame), tap.convert(frame)])
    # Two seconds at 16 kHz, minus what the resampler still holds.
    assert abs(len(out) - 2 * SAMPLE_RATE) < 200
    assert 0.45 < np.max(np.abs(out)) < 0.55


async def test_a_file_track_paces_by_the_clock_and_reports_how_late_it_was_read() -> None:
    import asyncio
    import time

    from media import FileAudioTrack

    track = FileAudioTrack(np.zeros(48_000, dtype=np.int16))  # 1 s, 50 frames of 20 ms
    started = time.monotonic()
    for _ in range(5):
        await track.recv()
    assert time.monotonic() - started >= 0.07  # frames 2-5 waited for their time
    assert track.max_lateness_s < 0.01
    await asyncio.sleep(0.25)  # a sender too busy to ask for the next frame in time
    await track.recv()
    assert 0.15 < track.max_lateness_s < 1.0


@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_the_fast_audio_level_equals_aiortcs(layout: str) -> None:
    """The numpy audio level the media workers and clients send must be aiortc's, value for value."""
    from media.audio_level import AIORTC_AUDIO_LEVEL_DBOV, audio_level_dbov

    rng = np.random.default_rng(7)
    channels = 2 if layout == "stereo" else 1
    t = np.arange(960) / 48_000
    signals = [
        np.zeros(960),  # silence: the floor, -127
        np.full(960, 32767.0),  # full scale: 0
        32767 * np.sin(2 * np.pi * 440 * t),
        300 * np.sin(2 * np.pi * 1000 * t),
        *(rng.normal(0, scale, 960) for scale in (1, 30, 1_000, 12_000)),
    ]
    for signal in signals:
        samples = np.clip(np.repeat(signal, channels), -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = 48_000
        assert audio_level_dbov(frame) == AIORTC_AUDIO_LEVEL_DBOV(frame)
    assert audio_level_dbov(frame) > -127
