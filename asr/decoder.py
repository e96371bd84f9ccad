"""One utterance's audio in, text out: Whisper's encoder once, then its decoder for each task.

faster-whisper's `transcribe()` encodes again for language detection and again per task, and always
pads to a 30 s window. Working on the CTranslate2 model directly lets one encoder pass serve language
detection, transcription and translation, and lets partials use a window just covering their audio.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from ctranslate2 import StorageView
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s training window, 10 ms per frame
# Short windows keep this much room after the audio. With 1 s Whisper repeated itself on JFK cuts
# ("And so my fellow Americans. And so my fellow Americans.") and dropped a consultation sentence;
# 3 s gave the full-window text on the same cuts at about a fifth of the cost.
_SHORT_WINDOW_MARGIN_FRAMES = 300
_SHORT_WINDOW_STEP_FRAMES = 100

# Guards from OpenAI's transcribe(), which faster-whisper keeps as defaults.
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_COMPRESSION_RATIO_MAX = 2.4
_LOG_PROB_MIN = -1.0
_NO_SPEECH_MAX = 0.6


@dataclass(frozen=True)
class Decoded:
    text: str  # stripped; empty when the guards judged the audio not to be speech
    language: str
    english: str | None


@dataclass(frozen=True)
class _Attempt:
    tokens: list[int]
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class WhisperDecoder:
    """Not thread-safe: the recogniser's single worker thread is its only caller."""

    def __init__(self, model: WhisperModel) -> None:
        self._model = model
        self._max_length = model.max_length
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def decode(
        self,
        audio: np.ndarray,
        *,
        language: str | None,
        allowed_languages: frozenset[str] | None,
        beam_size: int,
        english_wanted: bool,
        short_window: bool,
        fallback: bool,
    ) -> Decoded:
        encoder_output = self._encode(audio, short_window=short_window)
        if language is None:
            language = self._detect_language(encoder_output, allowed_languages)
        text = self._generate(encoder_output, language, "transcribe", beam_size, fallback)
        english = None
        if text and english_wanted and language != "en":
            english = self._generate(encoder_output, language, "translate", beam_size, fallback) or None
        return Decoded(text=text, language=language, english=english)

    def _encode(self, audio: np.ndarray, *, short_window: bool) -> StorageView:
        features = self._model.feature_extractor(audio)
        content_frames = min(len(audio) // self._model.feature_extractor.hop_length, FULL_WINDOW_FRAMES)
        window = FULL_WINDOW_FRAMES
        if short_window:
            wanted = content_frames + _SHORT_WINDOW_MARGIN_FRAMES
            steps = math.ceil(wanted / _SHORT_WINDOW_STEP_FRAMES)
            window = min(FULL_WINDOW_FRAMES, steps * _SHORT_WINDOW_STEP_FRAMES)
        segment = pad_or_trim(features[:, :content_frames], window)
        storage = StorageView.from_array(np.ascontiguousarray(segment[np.newaxis]))
        return self._model.model.encode(storage, to_cpu=False)

    def _detect_language(self, encoder_output: StorageView, allowed: frozenset[str] | None) -> str:
        ranked = self._model.model.detect_language(encoder_output)[0]  # [("<|en|>", p), ...], best first
        for token, _prob in ranked:
            code = token[2:-2]
            if allowed is None or code in allowed:
                return code
        # None of the allowed languages is in Whisper's vocabulary: trust Whisper.
        return ranked[0][0][2:-2]

    def _tokenizer(self, language: str, task: str) -> Tokenizer:
        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(self._model.hf_tokenizer, True, task=task, language=language)
        return self._tokenizers[key]

    def _generate(
        self, encoder_output: StorageView, language: str, task: str, beam_size: int, fallback: bool
    ) -> str:
        tokenizer = self._tokenizer(language, task)
        # condition_on_previous_text=False: no prompt, so one bad utterance cannot poison the next.
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        suppress = [-1, *tokenizer.non_speech_tokens]
        temperatures = _TEMPERATURES if fallback else _TEMPERATURES[:1]
        attempts: list[_Attempt] = []
        for temperature in temperatures:
            if temperature > 0:
                kwargs: dict[str, object] = {
                    "beam_size": 1,
                    "num_hypotheses": 1,
                    "sampling_topk": 0,
                    "sampling_temperature": temperature,
                }
            else:
                kwargs = {"beam_size": beam_size}
            result = self._model.model.generate(
                encoder_output,
                [prompt],
                max_length=self._max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=suppress,
                **kwargs,
            )[0]
            tokens = result.sequences_ids[0]
            text = tokenizer.decode(tokens).strip()
            attempt = _Attempt(
                tokens=tokens,
                text=text,
                avg_logprob=result.scores[0] * len(tokens) / (len(tokens) + 1),
                compression_ratio=_compression_ratio(text),
                no_speech_prob=result.no_speech_prob,
            )
            attempts.append(attempt)
            if _is_silence(attempt):
                return ""
            if attempt.compression_ratio <= _COMPRESSION_RATIO_MAX and attempt.avg_logprob >= _LOG_PROB_MIN:
                return text
        # Every temperature failed a guard. Repetition loops are dropped: they are never what was said.
        # A merely unconfident decode is kept, as faster-whisper does: the VAD already judged this to be
        # speech, and a word cut off by finish() or max_utterance_s is typically decoded this way.
        plausible = [a for a in attempts if a.compression_ratio <= _COMPRESSION_RATIO_MAX]
        return max(plausible, key=lambda a: a.avg_logprob).text if plausible else ""


def _is_silence(attempt: _Attempt) -> bool:
    return attempt.no_speech_prob > _NO_SPEECH_MAX and attempt.avg_logprob < _LOG_PROB_MIN


def _compression_ratio(text: str) -> float:
    if not text:
        return 0.0
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))
