"""Cutting a stream into utterances from VAD probabilities: where speech starts, ends, or must be cut.

Pure bookkeeping over samples; runs as the recogniser's preparation job for its stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from asr.config import SAMPLE_RATE, RecognizerConfig
from asr.vad import WINDOW, StreamingVad

# Silero's own defaults: a window at or above THRESHOLD starts or continues speech; only below
# NEG_THRESHOLD does silence start counting, so breathy word endings do not end an utterance.
THRESHOLD = 0.5
NEG_THRESHOLD = 0.35
# Audio kept either side of the detected speech: the VAD reacts a window or two late and clips
# soft onsets and final consonants, which Whisper then drops or guesses.
PAD_S = 0.3
# Utterances with less detected speech than this are clicks, coughs or noise bursts; decoding them
# mostly produces hallucinations.
MIN_SPEECH_S = 0.25
# When an utterance reaches max_utterance_s it is cut at the quietest window of its second half, so
# that the cut is more likely to fall between words than inside one, while the piece stays long.
CUT_SEARCH_FRACTION = 0.5
# Partials need enough audio for Whisper to say something useful.
MIN_PARTIAL_S = 1.0


@dataclass(frozen=True, eq=False)
class Segment:
    """Audio to decode: a finished utterance, or the latest state of one in progress."""

    seq: int
    final: bool
    audio: np.ndarray
    start_sample: int  # stream position of the first sample of speech (after the leading pad)
    end_sample: int  # stream position where speech ended (final) or of the latest audio (partial)
    # A final offered early: the utterance as it will end if the silence that has begun lasts. It is
    # the same audio, seq and bounds as that final, so a decode started now can serve it.
    tentative: bool = False
    # Stream position just past the newest audio the segmenter had heard when it made this segment
    # (for a final, the end of the silence that closed it): the moment that audio arrived is when the
    # segment could first be known, whenever the segmenter got round to it.
    decided_sample: int = 0


class UtteranceSegmenter:
    """Not thread-safe: a stream runs one preparation job at a time, and only they use it."""

    def __init__(self, config: RecognizerConfig, vad: StreamingVad | None = None) -> None:
        self._vad = vad if vad is not None else StreamingVad()
        self._silence_end = int(config.silence_ms * SAMPLE_RATE / 1000)
        self._max_samples = int(config.max_utterance_s * SAMPLE_RATE)
        self._partial_every = int(config.partial_interval_s * SAMPLE_RATE)
        self._pad = int(PAD_S * SAMPLE_RATE)
        # Once the silence has run as long as the trailing pad, the final's audio is complete.
        self._offer_tentative = config.speculative_finals and self._silence_end > self._pad
        self._min_speech = int(MIN_SPEECH_S * SAMPLE_RATE)
        self._unscored = np.zeros(0, dtype=np.float32)  # samples the VAD has not scored yet
        self._position = 0  # stream position of the first unscored sample
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, self._pad // WINDOW))
        self._next_seq = 0
        self._reset_utterance()

    def _reset_utterance(self) -> None:
        self._in_speech = False
        self._windows: list[np.ndarray] = []
        self._probs: list[float] = []
        self._audio_start = 0  # stream position of self._windows[0]
        self._speech_start = 0
        self._speech_samples = 0
        self._silence_run = 0
        self._last_partial_end = 0
        self._tentative_offered = False

    def debug_sizes(self) -> dict[str, int]:
        return {
            "unscored_samples": len(self._unscored),
            "preroll_windows": len(self._preroll),
            "utterance_windows": len(self._windows),
            "utterance_probs": len(self._probs),
        }

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def position(self) -> int:
        """Stream position just past the audio the VAD has scored."""
        return self._position

    def feed(self, samples: np.ndarray) -> list[Segment]:
        """Finals for utterances that ended in `samples`, then at most one partial for the current one.

        Only the newest partial is offered: when recognition falls behind, hypotheses for audio that
        has already been superseded are never computed.
        """
        probs = self._vad.process(samples)
        audio = np.concatenate([self._unscored, samples.astype(np.float32, copy=False)])
        finals: list[Segment] = []
        for i, prob in enumerate(probs):
            segment = self._step(audio[i * WINDOW : (i + 1) * WINDOW], float(prob))
            if segment is not None:
                finals.append(segment)
        self._unscored = audio[len(probs) * WINDOW :].copy()
        partial = self._partial()
        return [*finals, partial] if partial is not None else finals

    def flush(self) -> list[Segment]:
        """The stream ended: the utterance in progress, if any, becomes final."""
        if self._unscored.size:
            # The VAD never scores a trailing half window; speech in it is still speech.
            if self._in_speech:
                self._windows.append(self._unscored)
            self._position += len(self._unscored)
            self._unscored = np.zeros(0, dtype=np.float32)
        if not self._in_speech:
            return []
        end = self._position - self._silence_run
        segment = self._finalise(end)
        return [segment] if segment is not None else []

    def _step(self, window: np.ndarray, prob: float) -> Segment | None:
        start = self._position
        self._position += WINDOW
        if not self._in_speech:
            if prob < THRESHOLD:
                self._preroll.append(window)
                return None
            self._in_speech = True
            self._windows = [*self._preroll, window]
            self._probs = [0.0] * len(self._preroll) + [prob]
            self._audio_start = start - WINDOW * len(self._preroll)
            self._speech_start = start
            self._speech_samples = WINDOW
            self._last_partial_end = start
            self._preroll.clear()
            return None

        self._windows.append(window)
        self._probs.append(prob)
        if prob >= THRESHOLD or (prob >= NEG_THRESHOLD and self._silence_run == 0):
            self._silence_run = 0
            self._speech_samples += WINDOW
            self._tentative_offered = False
        else:
            self._silence_run += WINDOW

        if self._silence_run >= self._silence_end:
            return self._finalise(self._position - self._silence_run)
        if self._offer_tentative and not self._tentative_offered and self._silence_run >= self._pad:
            self._tentative_offered = True
            return self._tentative(self._position - self._silence_run)
        if self._position - self._audio_start >= self._max_samples:
            return self._cut()
        return None

    def _segment(self, final: bool, audio: np.ndarray, end: int, *, tentative: bool = False) -> Segment:
        """The utterance in progress as a segment, decided by the audio heard so far."""
        return Segment(
            self._next_seq,
            final,
            audio,
            self._speech_start,
            end,
            tentative=tentative,
            decided_sample=self._position,
        )

    def _finalise(self, speech_end: int) -> Segment | None:
        """Close the utterance whose speech ended at `speech_end`; keep its trailing silence as preroll."""
        audio = self._final_audio(speech_end)
        trailing = self._windows[-self._preroll.maxlen :] if self._preroll.maxlen else []
        enough_speech = self._speech_samples >= self._min_speech
        segment = None
        if enough_speech:
            segment = self._segment(True, audio, speech_end)
            self._next_seq += 1
        self._reset_utterance()
        self._preroll.extend(w for w in trailing if len(w) == WINDOW)
        return segment

    def _final_audio(self, speech_end: int) -> np.ndarray:
        return self._audio_between(self._audio_start, min(speech_end + self._pad, self._position))

    def _tentative(self, speech_end: int) -> Segment | None:
        if self._speech_samples < self._min_speech:
            return None
        audio = self._final_audio(speech_end)
        return self._segment(True, audio, speech_end, tentative=True)

    def _cut(self) -> Segment:
        """Split a too-long utterance at its quietest recent window; the rest continues as speech."""
        search_from = max(1, int(len(self._probs) * (1 - CUT_SEARCH_FRACTION)))
        quietest = search_from + int(np.argmin(self._probs[search_from:]))
        cut_at = self._audio_start + quietest * WINDOW + WINDOW // 2
        segment = self._segment(True, self._audio_between(self._audio_start, cut_at), cut_at)
        self._next_seq += 1
        rest = self._audio_between(cut_at, self._position)
        rest_probs = self._probs[quietest:]
        self._windows = [rest]
        self._probs = rest_probs
        self._audio_start = cut_at
        self._speech_start = cut_at
        self._speech_samples = len(rest)
        self._last_partial_end = cut_at
        return segment

    def _audio_between(self, start: int, end: int) -> np.ndarray:
        audio = np.concatenate(self._windows) if self._windows else np.zeros(0, dtype=np.float32)
        return audio[start - self._audio_start : end - self._audio_start]

    def _partial(self) -> Segment | None:
        if not self._in_speech or self._silence_run > 0:
            return None
        if self._position - self._audio_start < MIN_PARTIAL_S * SAMPLE_RATE:
            return None
        if self._position - self._last_partial_end < self._partial_every:
            return None
        self._last_partial_end = self._position
        audio = self._audio_between(self._audio_start, self._position)
        return self._segment(False, audio, self._position)
