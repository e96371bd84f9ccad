"""The recogniser's settings, the transcript event it emits, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_RATE = 16_000


class RecognizerError(RuntimeError):
    """The recogniser cannot run as configured (e.g. CUDA libraries missing); the message says why."""


@dataclass(frozen=True)
class RecognizerConfig:
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when CTranslate2 sees a GPU)
    compute_type: str = "int8"  # "default": int8 on CPU, float16 on GPU
    cpu_threads: int = 2
    silence_ms: int = 600  # silence that ends an utterance
    max_utterance_s: float = 15.0  # a monologue is cut here, at the quietest recent point
    partial_interval_s: float = 1.0  # how often a partial hypothesis is recomputed while speaking
    beam_size: int = 1  # for finals; partials always decode greedily
    # Start decoding a final once the silence after speech has lasted PAD_S (0.3 s), while the rest of
    # silence_ms is still being waited for; speech resuming throws that decode away.
    speculative_finals: bool = True
    # Seconds of the speaker's previous finals decoded in front of each final (asr/context.py); 0: none.
    # 20 s made finals more accurate (per-speaker tracks of five consultations: WER 17.9% -> 14.9%) but
    # captions ~0.65 s later on 2 CPU cores: CTranslate2 forces the context's text through the decoder
    # token by token.
    context_s: float = 0.0
    # Encode finals in a window cut to the utterance (as partials are) instead of Whisper's full 30 s:
    # on 2 CPU cores ~2.5x less recognition work and finals ~0.5 s sooner, at a cost in accuracy
    # (consultation WER 13.6% -> 15.2%; bench/RESULTS.md). A final the short window leaves below the
    # guards is decoded again in the full window. Off: accuracy first.
    short_final_windows: bool = False
    max_queued_s: float = 10.0  # audio buffered per stream before push() applies back-pressure
    # Decode requests (one per stream) run in one batched model call; 0: 8 on GPU, 1 on CPU, where a
    # batch costs its members' sum anyway and only delays the first stream's result (measured: 4 JFK
    # streams, median end-of-speech->final 1.72 s batched vs 1.57 s one at a time).
    max_batch: int = 0
    # Threads that run streams' VAD and the batches' log-mel extraction, off the scheduler thread.
    # 0: none on CPU, where they would preempt CTranslate2's own threads; on GPU, where the scheduler
    # thread would otherwise spend the GPU's idle time on them, min(8, CPU cores - 2).
    prep_threads: int = 0
    batch_window_ms: float = 10.0  # how long a request waits for other streams' requests to batch with
    # Speed measurements only, with random-weight models (models/synthetic_whisper.py), which never
    # decide to stop: decode exactly this many tokens per second of audio (speech runs at about 3-4
    # Whisper tokens a second), at temperature 0, without the quality guards. 0 turns it off.
    synthetic_tokens_per_s: float = 0.0


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
    # Unix times (time.time()) of the stages this transcript went through: "speech_end" (the audio that
    # ended the utterance, its closing silence, was pushed; for partials, the newest audio in it), "queued"
    # (handed to the scheduler, after the segmenter got to that audio), "recognized" (decoding finished).
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RecognizerStats:
    active_streams: int
    queue_depth: int  # decode requests waiting for the scheduler
    batches: int  # batched model calls run so far
    requests: int  # decode requests served by them
    mean_batch_size: float
    max_batch_size: int
    last_batch_s: float  # wall time of the latest batch
    skipped_partials: int  # superseded before they were decoded
    max_wait_batches: int  # most batches any request waited behind before being served
