"""The recogniser's settings, the events it emits, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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
    # on 2 CPU cores finals ~0.7 s sooner at the median for 40% less recognition CPU, at a cost in the
    # finals' accuracy (dev consultations: 16.5% -> 17.1% WER) that settling takes back (settled text
    # 13.2% full, 13.4% short; bench/RESULTS.md, eleventh session). A final the short window leaves
    # below the guards is decoded again in the full window. With the second pass off, finals are the
    # last word: turn this off too.
    short_final_windows: bool = True
    # The second pass (asr/settle.py): a speaker's finals are decoded again together, in windows of up
    # to 30 s of their speech, and the result settles them for good. Off: finals are the last word.
    second_pass: bool = True
    # A window is decoded once the speaker has been silent this long after their last final...
    settle_pause_s: float = 1.5
    # ...or once their unsettled finals hold this much audio (a monologue); the finals in its last
    # settle_right_context_s wait for the next window, so that they too are heard with what follows.
    # 8 s and 2 s rather than 12 s and 3 s: a dialogue on one track settled in 4.6 s instead of 6.5 s
    # at the median (bench.load, 2 CPU cores), for a little accuracy (dev consultations in real time,
    # with left context: 15.7% WER against 15.3%; bench/RESULTS.md, twelfth session).
    settle_window_s: float = 8.0
    settle_right_context_s: float = 2.0
    # ...or once their oldest unsettled final ended this long ago (stream time). In a dialogue on one
    # track the window rule counts only speech, so the oldest final of a window also waited for every
    # gap between the utterances after it: lines settled at p95 16.1 s, and 10.4-10.6 s with this
    # bound, for about 6% more server CPU (bench.load, 2 CPU cores; bench/RESULTS.md, fourteenth
    # session). inf: no bound.
    settle_wait_s: float = 8.0
    # The speaker's newest settled lines decoded again in front of each window (their words left out),
    # whole lines reaching back at least this many seconds, so that a short turn is heard after what the
    # speaker said before it. 0: none. In real time, windows are small (a turn, median 4.4 s) and
    # settled text was no better than the finals (17.6% WER against 17.2%); 10 s of left context:
    # 15.7%; kept as whole lines (a window after one long line no longer goes without): 14.2% against
    # 15.6% on eight generated consultation tracks, for 24% more second-pass CPU (bench/RESULTS.md,
    # twelfth and thirteenth sessions).
    settle_left_context_s: float = 10.0
    # Beam width of the second pass's decodes (1: greedy). On the dev consultations in real time on 2
    # CPU cores (AMD EPYC), beam 5 settled text at 12.5% WER against greedy's 13.8% (offline greedy
    # about 11%), lines settled 0.3-0.5 s later (bench.load p50 4.5-4.8 s against 4.2-4.3 s) for
    # 11-14% more server CPU, and first finals were not later; beam 2 replayed at 13.0%. Greedy had
    # been the CPU default while a slower CPU made beam 5 miss the 6 s settling target (6.7-6.8 s on
    # an Intel Xeon): `bench.load` tells an operator which their host does (bench/RESULTS.md, 2026-12-08).
    # Each line's confidence comes from a forced pass over the chosen text (WhisperDecoder._scored).
    settle_beam_size: int = 5
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


# Whisper's own limits for judging a decode, from OpenAI's transcribe() (faster-whisper's defaults).
LOG_PROB_MIN = -1.0
NO_SPEECH_MAX = 0.6
COMPRESSION_RATIO_MAX = 2.4


@dataclass(frozen=True)
class Confidence:
    """What the decoder thought of a text: its tokens' mean log probability, the probability it gave
    to there being no speech at all, and how repetitive the text is (gzip compression ratio)."""

    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    # The text was sampled at a raised temperature: the model's own best reading failed the limits.
    sampled: bool = False

    @property
    def uncertain(self) -> bool:
        """The text may not be what was said: any of Whisper's own quality limits is crossed. These are
        the limits at which Whisper's transcribe() retries a window at a higher temperature, and a final
        only reaches a reader past them when every retry failed them too, or the decode that gave it
        was unintelligible audio read fluently (its log probability is what gives that away). A retry
        that passed them is uncertain too: it is one random sample that happened to score well (on
        speech played backwards, about one run in three gives fluent text scored above the limit)."""
        return (
            self.sampled
            or self.avg_logprob < LOG_PROB_MIN
            or self.no_speech_prob > NO_SPEECH_MAX
            or self.compression_ratio > COMPRESSION_RATIO_MAX
        )


class SpeechEventKind(StrEnum):
    # A hypothesis for the utterance in progress; its first stable_chars will not change.
    PARTIAL = "partial"
    # The utterance's likely final, decoded during its closing silence, before the silence is long
    # enough to end the utterance. For slow work to start early (translation), never to show: the
    # utterance's FINAL follows, with the same text unless speech resumed.
    PRELIMINARY_FINAL = "preliminary_final"
    # The utterance is over and decoded on its own: shown at once.
    FINAL = "final"
    # The second pass decoded the utterance again with the speech around it: its text replaces the
    # finals it names (`replaces`) and never changes again.
    SETTLED = "settled"


@dataclass(frozen=True)
class SpeechEvent:
    kind: SpeechEventKind
    # 0, 1, 2... per stream: an utterance's partials, preliminary final and final share it. A settled
    # event carries the first utterance it replaces.
    utterance_seq: int
    text: str  # stripped; never empty, except for a settled event that removes its utterances
    stable_chars: int  # leading chars of `text` that later events of this stage will not change
    language: str  # ISO 639-1 code, e.g. "en"
    start_s: float  # seconds since the stream's first sample
    end_s: float
    # Whisper's own English translation: finals and settled events, when wanted and language != "en".
    english: str | None = None
    # Finals, preliminary finals and settled events: the decoder's judgement of `text` and `english`.
    confidence: Confidence | None = None
    english_confidence: Confidence | None = None
    # Settled events: the utterances whose finals this replaces, contiguous and in order, the first
    # being utterance_seq. Merging several finals into one settled line names them all.
    replaces: tuple[int, ...] = ()
    # Unix times (time.time()) of the stages this event went through: "speech_end" (the audio that
    # ended the utterance, its closing silence, was pushed; for partials, the newest audio in it),
    # "queued" (handed to the scheduler), "recognized" (decoding finished).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def uncertain(self) -> bool:
        return self.confidence is not None and self.confidence.uncertain

    @property
    def english_uncertain(self) -> bool:
        return self.english_confidence is not None and self.english_confidence.uncertain


@dataclass(frozen=True)
class RecognizerStats:
    active_streams: int
    queue_depth: int  # decode requests waiting for the scheduler (second-pass ones included)
    batches: int  # batched model calls run so far
    requests: int  # decode requests served by them
    mean_batch_size: float
    max_batch_size: int
    last_batch_s: float  # wall time of the latest batch
    skipped_partials: int  # superseded before they were decoded
    max_wait_batches: int  # most batches any request waited behind before being served
    second_pass_requests: int = 0  # second-pass windows decoded so far
    second_pass_s: float = 0.0  # wall time of batches of second-pass windows alone
    # CPU time they took: on a CPU, that of the second-pass lane's threads; elsewhere the process's.
    second_pass_cpu_s: float = 0.0
    # First-pass requests (and of them finals) that were queued while such a batch ran on the first
    # pass's thread, so waited for it: their number, their total and longest wait. Never on a CPU,
    # whose windows have a lane of their own.
    held_by_second_pass: int = 0
    finals_held_by_second_pass: int = 0
    held_by_second_pass_s: float = 0.0
    held_by_second_pass_max_s: float = 0.0
