"""Utterances' audio in, text out: Whisper's encoder once per batch, then its decoder for each task.

faster-whisper's `transcribe()` encodes again for language detection and again per task, and always
pads to a 30 s window. Working on the CTranslate2 model directly lets one encoder pass serve language
detection, transcription and translation, lets partials use a window just covering their audio, and
lets several streams' utterances share one batched call.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ctranslate2 import Device, StorageView
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from asr.config import SAMPLE_RATE

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


@dataclass(frozen=True, eq=False)
class DecodeTask:
    audio: np.ndarray
    final: bool  # finals: full window, configured beam, temperature fallback; partials: the cheap path
    language: str | None  # None: detect, among allowed_languages
    allowed_languages: frozenset[str] | None
    english_wanted: bool
    glossary: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decoded:
    text: str  # stripped; empty when the guards judged the audio not to be speech
    language: str
    english: str | None


@dataclass(frozen=True)
class _Attempt:
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float

    @property
    def silence(self) -> bool:
        return self.no_speech_prob > _NO_SPEECH_MAX and self.avg_logprob < _LOG_PROB_MIN

    @property
    def passed(self) -> bool:
        return self.compression_ratio <= _COMPRESSION_RATIO_MAX and self.avg_logprob >= _LOG_PROB_MIN


class WhisperDecoder:
    """Not thread-safe: the recogniser's scheduler thread is its only caller."""

    def __init__(self, model: WhisperModel, beam_size: int, synthetic_tokens_per_s: float = 0.0) -> None:
        self._model = model
        self._beam_size = beam_size
        self._synthetic_tokens_per_s = synthetic_tokens_per_s
        self._max_length = model.max_length
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def decode_batch(self, tasks: Sequence[DecodeTask]) -> list[Decoded]:
        """Decode every task; finals and partials are encoded separately (different windows)."""
        results: list[Decoded | None] = [None] * len(tasks)
        for final in (True, False):
            rows = [i for i, task in enumerate(tasks) if task.final is final]
            if rows:
                for i, decoded in zip(rows, self._decode_group([tasks[i] for i in rows]), strict=True):
                    results[i] = decoded
        return [r for r in results if r is not None]

    def _decode_group(self, tasks: list[DecodeTask]) -> list[Decoded]:
        final = tasks[0].final
        encoder_output = self._encode([t.audio for t in tasks], short_window=not final)
        languages = self._languages(encoder_output, tasks)
        texts = self._generate_rows(encoder_output, tasks, languages, "transcribe", range(len(tasks)))
        translate = [
            i for i, t in enumerate(tasks) if final and t.english_wanted and texts[i] and languages[i] != "en"
        ]
        english: dict[int, str] = {}
        if translate:
            english = self._generate_rows(encoder_output, tasks, languages, "translate", translate)
        return [
            Decoded(text=texts[i], language=languages[i], english=english.get(i) or None)
            for i in range(len(tasks))
        ]

    def _encode(self, audios: list[np.ndarray], *, short_window: bool) -> StorageView:
        extractor = self._model.feature_extractor
        contents = [min(len(a) // extractor.hop_length, FULL_WINDOW_FRAMES) for a in audios]
        window = FULL_WINDOW_FRAMES
        if short_window:
            # One window for the batch: the longest audio's. Padding is silence, which Whisper was
            # trained on, so shorter rows decode as they would alone with a slightly longer window.
            wanted = max(contents) + _SHORT_WINDOW_MARGIN_FRAMES
            window = min(
                FULL_WINDOW_FRAMES, math.ceil(wanted / _SHORT_WINDOW_STEP_FRAMES) * _SHORT_WINDOW_STEP_FRAMES
            )
        # Features of each audio alone, padded with zero features as faster-whisper's pad_or_trim does.
        features = [extractor(audio)[:, :content] for audio, content in zip(audios, contents, strict=True)]
        batch = np.zeros((len(audios), features[0].shape[0], window), dtype=np.float32)
        for row, rows_features in enumerate(features):
            batch[row, :, : rows_features.shape[1]] = rows_features[:, :window]
        return self._model.model.encode(StorageView.from_array(batch), to_cpu=False)

    def _languages(self, encoder_output: StorageView, tasks: list[DecodeTask]) -> list[str]:
        if all(t.language is not None for t in tasks):
            return [t.language for t in tasks if t.language is not None]
        # One decoder step per row: cheaper to run on the whole batch than to split it.
        ranked_rows = self._model.model.detect_language(encoder_output)
        languages = []
        for task, ranked in zip(tasks, ranked_rows, strict=True):  # ranked: [("<|en|>", p), ...]
            if task.language is not None:
                languages.append(task.language)
                continue
            allowed = [
                t[2:-2]
                for t, _ in ranked
                if task.allowed_languages is None or t[2:-2] in task.allowed_languages
            ]
            # None of the allowed languages is in Whisper's vocabulary: trust Whisper.
            languages.append(allowed[0] if allowed else ranked[0][0][2:-2])
        return languages

    def _tokenizer(self, language: str, task: str) -> Tokenizer:
        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(self._model.hf_tokenizer, True, task=task, language=language)
        return self._tokenizers[key]

    def prompt(self, language: str, task: str, glossary: Sequence[str]) -> list[int]:
        """The decoder prompt: glossary terms as previous text (faster-whisper's `hotwords`), then SOT.

        condition_on_previous_text stays off: only the glossary is ever in front, so one bad utterance
        cannot poison the next.
        """
        tokenizer = self._tokenizer(language, task)
        prompt: list[int] = []
        if glossary:
            terms = tokenizer.encode(" " + ", ".join(glossary))[: self._max_length // 2 - 1]
            prompt = [tokenizer.sot_prev, *terms]
        return [*prompt, *tokenizer.sot_sequence, tokenizer.no_timestamps]

    def _generate_rows(
        self,
        encoder_output: StorageView,
        tasks: list[DecodeTask],
        languages: list[str],
        task_name: str,
        rows: Sequence[int],
    ) -> dict[int, str]:
        prompts = {i: self.prompt(languages[i], task_name, tasks[i].glossary) for i in rows}
        # CTranslate2 wants <|startoftranscript|> at the same position in every row of a call.
        by_length: dict[int, list[int]] = {}
        for i in rows:
            by_length.setdefault(len(prompts[i]), []).append(i)
        texts: dict[int, str] = {}
        final = tasks[0].final
        for group in by_length.values():
            outputs = _subset(encoder_output, group, len(tasks))
            forced_length = None
            if self._synthetic_tokens_per_s > 0:
                longest_s = max(len(tasks[i].audio) for i in group) / SAMPLE_RATE
                forced_length = (
                    len(prompts[group[0]]) + math.ceil(self._synthetic_tokens_per_s * longest_s) + 1
                )
            texts.update(
                self._generate_with_fallback(
                    outputs, group, prompts, languages, task_name, final, forced_length
                )
            )
        return texts

    def _generate_with_fallback(
        self,
        encoder_output: StorageView,
        rows: list[int],
        prompts: dict[int, list[int]],
        languages: list[str],
        task_name: str,
        final: bool,
        forced_length: int | None,
    ) -> dict[int, str]:
        temperatures = _TEMPERATURES if final and forced_length is None else _TEMPERATURES[:1]
        attempts: dict[int, list[_Attempt]] = {i: [] for i in rows}
        texts: dict[int, str] = {}
        pending = list(range(len(rows)))  # positions in `rows` (and in encoder_output's batch)
        for temperature in temperatures:
            if not pending:
                break
            outputs = _subset(encoder_output, pending, len(rows))
            for position, attempt in zip(
                pending,
                self._attempts(
                    outputs,
                    [rows[p] for p in pending],
                    prompts,
                    languages,
                    task_name,
                    temperature,
                    final,
                    forced_length,
                ),
                strict=True,
            ):
                attempts[rows[position]].append(attempt)
            still = []
            for position in pending:
                attempt = attempts[rows[position]][-1]
                if forced_length is not None:  # random weights: the guards would judge noise
                    texts[rows[position]] = attempt.text
                elif attempt.silence:
                    texts[rows[position]] = ""
                elif attempt.passed:
                    texts[rows[position]] = attempt.text
                else:
                    still.append(position)
            pending = still
        for position in pending:
            # Every temperature failed a guard. Repetition loops are dropped: they are never what was
            # said. A merely unconfident decode is kept, as faster-whisper does: the VAD already judged
            # this to be speech, and a word cut off by finish() or max_utterance_s decodes this way.
            plausible = [a for a in attempts[rows[position]] if a.compression_ratio <= _COMPRESSION_RATIO_MAX]
            texts[rows[position]] = max(plausible, key=lambda a: a.avg_logprob).text if plausible else ""
        return texts

    def _attempts(
        self,
        encoder_output: StorageView,
        rows: list[int],
        prompts: dict[int, list[int]],
        languages: list[str],
        task_name: str,
        temperature: float,
        final: bool,
        forced_length: int | None,
    ) -> list[_Attempt]:
        if temperature > 0:
            kwargs: dict[str, object] = {
                "beam_size": 1,
                "num_hypotheses": 1,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            kwargs = {"beam_size": self._beam_size if final else 1}
        # Any row's tokenizer will do: decoding and the non-speech tokens do not depend on the language.
        tokenizer = self._tokenizer(languages[rows[0]], task_name)
        suppressed = [-1, *tokenizer.non_speech_tokens]
        if forced_length is not None:
            suppressed.append(tokenizer.eot)  # decode exactly forced_length tokens
        results = self._model.model.generate(
            encoder_output,
            [prompts[i] for i in rows],
            max_length=min(forced_length or self._max_length, self._max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppressed,
            **kwargs,
        )
        attempts = []
        for result in results:
            tokens = result.sequences_ids[0]
            text = tokenizer.decode(tokens).strip()
            attempts.append(
                _Attempt(
                    text=text,
                    avg_logprob=result.scores[0] * len(tokens) / (len(tokens) + 1),
                    compression_ratio=_compression_ratio(text),
                    no_speech_prob=result.no_speech_prob,
                )
            )
        return attempts


def _subset(encoder_output: StorageView, rows: Sequence[int], batch: int) -> StorageView:
    """The given batch rows of an encoder output (the output itself when that is all of them)."""
    if list(rows) == list(range(batch)):
        return encoder_output
    on_cpu = encoder_output if encoder_output.device == "cpu" else encoder_output.to_device(Device.cpu)
    array = np.asarray(on_cpu)
    # generate() moves CPU features to the model's device itself.
    return StorageView.from_array(np.ascontiguousarray(array[list(rows)]))


def _compression_ratio(text: str) -> float:
    if not text:
        return 0.0
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))
