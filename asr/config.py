"""The recogniser's settings and the transcript event it emits."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class RecognizerConfig:
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    silence_ms: int = 600  # silence that ends an utterance
    max_utterance_s: float = 15.0  # a monologue is cut here, at the quietest recent point
    partial_interval_s: float = 1.0  # how often a partial hypothesis is recomputed while speaking
    beam_size: int = 1  # for finals; partials always decode greedily
    max_queued_s: float = 10.0  # audio buffered per stream before push() applies back-pressure


@dataclass(frozen=True)
class Transcript:
    utterance_seq: int  # 0, 1, 2... per stream; partials and their final share it
    final: bool
    text: str  # stripped, never empty
    stable_chars: int  # leading chars of `text` that later partials of this utterance will not change
    language: str  # ISO 639-1 code, e.g. "en"
    start_s: float  # seconds since the stream's first sample
    end_s: float
    english: str | None  # Whisper's own English translation, finals only, when wanted and language != "en"
