"""Generated test audio: non-speech sounds a consultation is full of, and synthetic speech (espeak-ng).

Every generator is seeded, so a failing test fails the same way again.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from asr import RecognitionStream, SpeechEvent

SAMPLE_RATE = 16_000


def _normalise(audio: np.ndarray, rms: float) -> np.ndarray:
    return (audio / np.sqrt(np.mean(audio**2)) * rms).astype(np.float32)


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent: 1 is pink, 2 is brown."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.maximum(np.arange(len(spectrum)), 1) ** (exponent / 2)
    return np.fft.irfft(spectrum, n)


def _band(audio: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, len(audio))


def breathing(seconds: float = 25.0, seed: int = 1) -> np.ndarray:
    """In- and out-breaths close to a headset microphone: band-limited noise bursts, ~4 s apart."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    audio = np.zeros(n)
    t = 0.3
    while t < seconds - 2:
        length = rng.uniform(0.8, 1.6)
        m = int(length * SAMPLE_RATE)
        burst = _band(rng.standard_normal(m), rng.uniform(300, 600), rng.uniform(2500, 4500))
        envelope = np.sin(np.linspace(0, np.pi, m)) ** 2
        start = int(t * SAMPLE_RATE)
        audio[start : start + m] += burst * envelope * rng.uniform(0.5, 1.0)
        t += length + rng.uniform(1.5, 3.0)
    return _normalise(audio + 0.002 * rng.standard_normal(n), 0.03)


def keyboard(seconds: float = 25.0, seed: int = 2) -> np.ndarray:
    """Typing: short decaying clicks at random intervals, in bursts like words."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    audio = 0.001 * rng.standard_normal(n)
    t = 0.2
    while t < seconds - 0.1:
        m = int(0.015 * SAMPLE_RATE)
        click = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.002 * SAMPLE_RATE))
        click += (
            0.5
            * np.sin(2 * np.pi * rng.uniform(1500, 4000) * np.arange(m) / SAMPLE_RATE)
            * np.exp(-np.arange(m) / (0.004 * SAMPLE_RATE))
        )
        start = int(t * SAMPLE_RATE)
        audio[start : start + m] += click * rng.uniform(0.3, 1.0)
        # Keystrokes ~8 per second, with a pause between "words" now and then.
        t += rng.uniform(0.06, 0.2) + (rng.uniform(0.3, 1.0) if rng.random() < 0.15 else 0.0)
    return (audio / np.max(np.abs(audio)) * 0.3).astype(np.float32)


def room_noise(seconds: float = 25.0, seed: int = 3) -> np.ndarray:
    """Ventilation and traffic rumble: pink plus brown noise at a busy room's level."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    pink = _coloured_noise(rng, n, 1.0)
    brown = _coloured_noise(rng, n, 2.0)
    mix = pink / np.std(pink) + 0.7 * brown / np.std(brown)
    return _normalise(mix, 0.05)


def music(seconds: float = 25.0, seed: int = 4) -> np.ndarray:
    """Hold music: chords and a melody of harmonic-rich tones over a kick-drum beat at 100 bpm."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    audio = np.zeros(n)

    def tone(freq: float, start: float, length: float, level: float) -> None:
        a, b = int(start * SAMPLE_RATE), min(n, int((start + length) * SAMPLE_RATE))
        local = t[a:b] - start
        envelope = np.minimum(local / 0.02, 1) * np.exp(-local * 1.5)
        wave = sum(np.sin(2 * np.pi * freq * k * local) / k**1.3 for k in range(1, 7))
        audio[a:b] += level * envelope * wave

    progression = [[261.6, 329.6, 392.0], [220.0, 261.6, 329.6], [174.6, 220.0, 261.6], [196.0, 246.9, 293.7]]
    beat = 60 / 100
    bar = 0
    while bar * 4 * beat < seconds:
        for freq in progression[bar % 4]:
            tone(freq, bar * 4 * beat, 4 * beat, 0.15)
        for step in range(8):
            tone(float(rng.choice(progression[bar % 4])) * 2, bar * 4 * beat + step * beat / 2, beat / 2, 0.1)
        for step in range(4):
            a = int((bar * 4 + step) * beat * SAMPLE_RATE)
            m = min(n - a, int(0.15 * SAMPLE_RATE))
            if m > 0:
                local = np.arange(m) / SAMPLE_RATE
                audio[a : a + m] += (
                    0.5 * np.sin(2 * np.pi * (60 + 80 * np.exp(-local * 30)) * local) * np.exp(-local * 20)
                )
        bar += 1
    return _normalise(audio, 0.08)


def espeak(text: str, voice: str = "en") -> np.ndarray:
    """`text` spoken by espeak-ng, at 16 kHz."""
    from faster_whisper import decode_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def collect_transcripts(stream: RecognitionStream) -> tuple[list[SpeechEvent], asyncio.Task[None]]:
    """Gather a stream's events in the background, as the server's caption delivery does; the list
    fills as they arrive and the task ends when the stream does."""
    transcripts: list[SpeechEvent] = []

    async def collect() -> None:
        async for transcript in stream:
            transcripts.append(transcript)

    return transcripts, asyncio.create_task(collect())
