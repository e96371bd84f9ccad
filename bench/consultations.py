"""More consultations to score recognition on: PriMock57 transcripts read aloud by espeak-ng.

The dev set has one consultation with audio (9.7 minutes, made this way), and on it a relative WER
figure carries a 95% interval some 50 points wide (bench/RESULTS.md). `../shared/data/dev/text/primock57`
holds 25 transcripts; reading more of them the same way (doctor and patient in two voices, turns one
after another with a pause between) gives the benchmark enough turns to tell figures apart. The audio
is synthetic: fine for comparing streaming with offline decoding of the same audio, not a claim about
real voices. It is made on demand into the benchmark's output folder and never committed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
VOICES = {"doctor": "en-us", "patient": "en-gb"}
PAUSE_S = 0.8  # between turns: longer than the recogniser's default closing silence (0.6 s)
# The transcript already in the dev set with audio (en_synthetic_consultation_day1_01.flac).
ALREADY_IN_DEV_SET = "day1_consultation01"
_TAG = re.compile(r"<[^>]*>")  # <UNSURE>...</UNSURE>, <UNIN/>, ...: markup, not words


class ConsultationError(RuntimeError):
    """A consultation cannot be made (espeak-ng missing, a transcript unreadable); says why."""


@dataclass(frozen=True)
class Consultation:
    name: str  # e.g. "primock57_day1_consultation02"
    audio: Path  # 16 kHz mono 16-bit WAV
    turns: tuple[str, ...]  # what each turn says, in order: the reference


def transcript_turns(tsv: Path) -> list[tuple[str, str]]:
    """(speaker, text) of each turn with words in it, tags removed (their inner words kept)."""
    turns = []
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        text = " ".join(_TAG.sub(" ", fields[3]).split())
        if any(ch.isalnum() for ch in text):
            turns.append((fields[2], text))
    return turns


def available(primock_dir: Path) -> list[Path]:
    """The transcripts not yet in the dev set as audio, in a fixed order."""
    return sorted(p for p in primock_dir.glob("*.tsv") if p.stem != ALREADY_IN_DEV_SET)


def make_consultations(primock_dir: Path, cache_dir: Path, count: int) -> list[Consultation]:
    """The first `count` available consultations, synthesised into `cache_dir` unless already there."""
    transcripts = available(primock_dir)
    if count > len(transcripts):
        raise ConsultationError(f"only {len(transcripts)} PriMock57 transcripts besides the dev set's")
    if shutil.which("espeak-ng") is None:
        raise ConsultationError("espeak-ng is not installed (Debian package espeak-ng)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for tsv in transcripts[:count]:
        turns = transcript_turns(tsv)
        audio = cache_dir / f"primock57_{tsv.stem}.wav"
        if not audio.is_file():
            _write_wav(audio, _read_aloud(turns))
        made.append(Consultation(audio.stem, audio, tuple(text for _, text in turns)))
    return made


def _read_aloud(turns: list[tuple[str, str]]) -> np.ndarray:
    from faster_whisper import decode_audio

    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    pieces = [pause]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "turn.wav"
        for speaker, text in turns:
            command = ["espeak-ng", "-v", VOICES.get(speaker, "en"), "-w", str(path), text]
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode != 0:
                raise ConsultationError(f"espeak-ng failed: {finished.stderr.strip()}")
            pieces += [decode_audio(str(path), sampling_rate=SAMPLE_RATE), pause]
    return np.concatenate(pieces)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    samples = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    partial = path.with_suffix(".part")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    partial.replace(path)  # a run interrupted mid-file leaves no half consultation in the cache
