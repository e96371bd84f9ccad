"""More consultations to score recognition on: PriMock57 transcripts read aloud by espeak-ng.

The dev set has one consultation with audio (9.7 minutes, made this way), and on it a relative WER
figure carries a 95% interval some 50 points wide (bench/RESULTS.md). `../shared/data/dev/text/primock57`
holds 25 transcripts; reading more of them the same way (doctor and patient in two voices, turns one
after another with a pause between) gives the benchmark enough turns to tell figures apart. The audio
is synthetic: fine for comparing streaming with offline decoding of the same audio, not a claim about
real voices. It is made on demand into the benchmark's output folder and never committed.

A consultation comes as one mixed track (both voices, as the dev set's file) or as one track per
speaker, which is what BabelCall hears: each participant's microphone is a stream of its own. The
tracks share one timeline (a speaker's track is silent while the other speaks), so the two
per-speaker tracks add up to the mixed one.
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
    name: str  # e.g. "primock57_day1_consultation02", or "primock57_day1_consultation02.doctor"
    audio: Path  # 16 kHz mono 16-bit WAV
    turns: tuple[str, ...]  # what each turn on this track says, in order: the reference
    speaker: str | None = None  # whose track this is; None: both speakers, mixed


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


def make_consultations(
    primock_dir: Path, cache_dir: Path, count: int, *, per_speaker: bool = False
) -> list[Consultation]:
    """The first `count` available consultations, synthesised into `cache_dir` unless already there:
    one mixed track each, or with `per_speaker` one track per speaker (doctor, then patient)."""
    transcripts = available(primock_dir)
    if count > len(transcripts):
        raise ConsultationError(f"only {len(transcripts)} PriMock57 transcripts besides the dev set's")
    if shutil.which("espeak-ng") is None:
        raise ConsultationError("espeak-ng is not installed (Debian package espeak-ng)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for tsv in transcripts[:count]:
        turns = transcript_turns(tsv)
        name = f"primock57_{tsv.stem}"
        tracks: list[str | None] = list(dict.fromkeys(who for who, _ in turns)) if per_speaker else [None]
        paths = {who: cache_dir / f"{name}{'' if who is None else '.' + who}.wav" for who in tracks}
        missing = [who for who, path in paths.items() if not path.is_file()]
        if missing:
            spoken = _read_aloud(turns)
            for who in missing:
                _write_wav(paths[who], _lay_out(turns, spoken, who))
        for who in tracks:
            said = tuple(text for speaker, text in turns if who in (None, speaker))
            made.append(Consultation(paths[who].stem, paths[who], said, who))
    return made


def _read_aloud(turns: list[tuple[str, str]]) -> list[np.ndarray]:
    """Each turn read by its speaker's voice."""
    from faster_whisper import decode_audio

    spoken = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "turn.wav"
        for speaker, text in turns:
            command = ["espeak-ng", "-v", VOICES.get(speaker, "en"), "-w", str(path), text]
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode != 0:
                raise ConsultationError(f"espeak-ng failed: {finished.stderr.strip()}")
            spoken.append(decode_audio(str(path), sampling_rate=SAMPLE_RATE))
    return spoken


def _lay_out(turns: list[tuple[str, str]], spoken: list[np.ndarray], speaker: str | None) -> np.ndarray:
    """The conversation's timeline: a pause, then each turn and a pause. On one speaker's track the
    other's turns are silence of the same length, so every track keeps the same clock."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    pieces = [pause]
    for (who, _), audio in zip(turns, spoken, strict=True):
        pieces += [audio if speaker in (None, who) else np.zeros_like(audio), pause]
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
