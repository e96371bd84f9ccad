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
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np
from ctranslate2 import Device, StorageView
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from asr.config import SAMPLE_RATE
from asr.context import ContextWindow, SpeakerContext
from asr.hallucinations import clean_transcript

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s training window, 10 ms per frame
# A final and its left context share one 30 s window; this much of its end is left as silence.
_CONTEXT_MARGIN_S = 1.0
# Short windows keep this much room after the audio. With 1 s Whisper repeated itself on JFK cuts
# ("And so my fellow Americans. And so my fellow Americans.") and dropped a consultation sentence;
# 3 s gave the full-window text on the same cuts at about a fifth of the cost.
_SHORT_WINDOW_MARGIN_FRAMES = 300
_SHORT_WINDOW_STEP_FRAMES = 100

# Most tokens a second of speech can need (fast Thai or Chinese run at 6-8), plus a floor for short
# utterances; a decode going beyond is looping.
_MAX_TOKENS_PER_S = 15
_MIN_TOKENS = 10

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
    # Finals only: the speaker's previous finals, decoded in front of this one when the language is
    # declared (asr/context.py); this final is added to it, as utterance `utterance_seq`, once decoded.
    context: SpeakerContext | None = None
    utterance_seq: int = 0


@dataclass(frozen=True)
class Decoded:
    # Stripped, repetition loops collapsed; empty when the guards judged the audio not to be speech or
    # the text to be boilerplate Whisper invents on noise.
    text: str
    language: str
    english: str | None


@dataclass(frozen=True)
class _Prompt:
    tokens: list[int]
    sot_index: int  # CTranslate2 batches rows only if <|startoftranscript|> is at the same index
    prefix_length: int  # tokens after the SOT sequence that the decoder is made to start with


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
    """Not thread-safe: the recogniser's scheduler thread is its only caller.

    `feature_pool`: where a batch's log-mel features are computed, in parallel, rather than on the
    calling thread while the GPU waits.
    """

    def __init__(
        self,
        model: WhisperModel,
        beam_size: int,
        synthetic_tokens_per_s: float = 0.0,
        feature_pool: Executor | None = None,
        short_final_windows: bool = False,
    ) -> None:
        self._feature_pool = feature_pool
        self._short_final_windows = short_final_windows
        self._model = model
        self._beam_size = beam_size
        self._synthetic_tokens_per_s = synthetic_tokens_per_s
        # Random-weight models: decode a forced length, without the guards or the text clean-up.
        self._synthetic = synthetic_tokens_per_s > 0
        self._max_length = model.max_length
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def decode_batch(self, tasks: Sequence[DecodeTask]) -> list[Decoded]:
        """Decode every task; finals and partials are encoded separately (different windows)."""
        results: list[Decoded | None] = [None] * len(tasks)
        for final in (True, False):
            rows = [i for i, task in enumerate(tasks) if task.final is final]
            if rows:
                group = [tasks[i] for i in rows]
                short_window = not final or self._short_final_windows
                for i, decoded in zip(rows, self._decode_group(group, short_window), strict=True):
                    results[i] = decoded
        return [r for r in results if r is not None]

    def _decode_group(self, tasks: list[DecodeTask], short_window: bool) -> list[Decoded]:
        final = tasks[0].final
        windows = [_context_window(t) for t in tasks]
        audios = [
            t.audio if w is None else np.concatenate([w.audio, t.audio])
            for t, w in zip(tasks, windows, strict=True)
        ]
        encoder_output = self._encode(audios, short_window=short_window)
        languages = self._languages(encoder_output, tasks)
        prefixes = {i: w.text for i, w in enumerate(windows) if w is not None}
        # A short window is a shortcut Whisper was not trained on: a final it leaves unconfident is
        # decoded again in the full window rather than sampled at rising temperatures there. On a
        # two-word JFK utterance the short window's greedy text was right but scored under the guard,
        # and sampling then picked a wrong one, differently from run to run.
        retry_in_full_window = final and short_window
        raw = self._generate_rows(
            encoder_output,
            tasks,
            languages,
            "transcribe",
            range(len(tasks)),
            prefixes,
            hand_back_failures=retry_in_full_window,
        )
        seconds = [len(t.audio) / SAMPLE_RATE for t in tasks]
        # Rows handed back unconfident. A context the decoder cannot continue from (its text was
        # misheard) is dropped, not fought with at rising temperatures: those rows are decoded alone.
        again = [i for i in range(len(tasks)) if raw[i] is None]
        texts = [self._clean(raw[i] or "", seconds[i]) for i in range(len(tasks))]
        translate = [
            i for i, t in enumerate(tasks) if final and t.english_wanted and texts[i] and languages[i] != "en"
        ]
        english: dict[int, str] = {}
        if translate:
            english_prefixes = {i: w.english for i, w in enumerate(windows) if w is not None and w.english}
            english = self._generate_rows(
                encoder_output, tasks, languages, "translate", translate, english_prefixes
            )
        decoded = [
            Decoded(texts[i], languages[i], self._clean(english.get(i) or "", seconds[i]) or None)
            for i in range(len(tasks))
        ]
        if again:
            if retry_in_full_window:
                redecoded = self._decode_group([tasks[i] for i in again], short_window=False)
            else:
                redecoded = self._decode_group([replace(tasks[i], context=None) for i in again], short_window)
            for i, result in zip(again, redecoded, strict=True):
                decoded[i] = result
        for task, result in zip(tasks, decoded, strict=True):
            if task.context is not None:
                task.context.remember(
                    task.utterance_seq, task.audio, result.text, result.language, result.english
                )
        return decoded

    def _clean(self, text: str, utterance_s: float) -> str:
        # Random weights (speed measurements) write noise that the guards would judge; keep it whole,
        # as its length is what the measurement is about.
        return text if self._synthetic else clean_transcript(text, utterance_s)

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
        def extract(audio: np.ndarray, content: int) -> np.ndarray:
            return extractor(audio)[:, :content]

        pool = self._feature_pool if len(audios) > 1 else None
        features = list((pool.map if pool else map)(extract, audios, contents))
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

    def prompt(self, language: str, task: str, glossary: Sequence[str], prefix: str = "") -> _Prompt:
        """Glossary terms as previous text (faster-whisper's `hotwords`), SOT, then the context's text.

        The previous text slot holds only the glossary (condition_on_previous_text stays off): a
        misrecognition there would bias every later utterance. The context's text goes after SOT as
        what the decoder has already said about the context audio in front of this utterance.
        """
        tokenizer = self._tokenizer(language, task)
        before: list[int] = []
        if glossary:
            terms = tokenizer.encode(" " + ", ".join(glossary))[: self._max_length // 2 - 1]
            before = [tokenizer.sot_prev, *terms]
        # Its end must meet this utterance's audio: a long one loses its beginning.
        said = tokenizer.encode(" " + prefix.strip())[-(self._max_length // 4) :] if prefix.strip() else []
        tokens = [*before, *tokenizer.sot_sequence, tokenizer.no_timestamps, *said]
        return _Prompt(tokens, sot_index=len(before), prefix_length=len(said))

    def _generate_rows(
        self,
        encoder_output: StorageView,
        tasks: list[DecodeTask],
        languages: list[str],
        task_name: str,
        rows: Sequence[int],
        prefixes: dict[int, str],
        hand_back_failures: bool = False,
    ) -> dict[int, str | None]:
        """Each row's text; None for a row handed back after failing the guards at temperature 0.

        Rows decoded behind a context are always handed back; with `hand_back_failures`, every row is.
        """
        prompts = {
            i: self.prompt(languages[i], task_name, tasks[i].glossary, prefixes.get(i, "")) for i in rows
        }
        by_sot: dict[int, list[int]] = {}
        for i in rows:
            by_sot.setdefault(prompts[i].sot_index, []).append(i)
        texts: dict[int, str | None] = {}
        final = tasks[0].final
        for group in by_sot.values():
            outputs = _subset(encoder_output, group, len(tasks))
            longest_s = max(len(tasks[i].audio) for i in group) / SAMPLE_RATE
            longest_prefix = max(prompts[i].prefix_length for i in group)
            if self._synthetic:
                new_tokens = math.ceil(self._synthetic_tokens_per_s * longest_s)
            else:
                # A decode that runs on far past what the audio can hold is a loop; stopping it early
                # keeps one bad utterance from holding up every stream's batch.
                new_tokens = _MIN_TOKENS + math.ceil(_MAX_TOKENS_PER_S * longest_s)
            max_length = self._generate_max_length(prompts[group[0]], longest_prefix + new_tokens)
            texts.update(
                self._generate_with_fallback(
                    outputs, group, prompts, languages, task_name, final, max_length, hand_back_failures
                )
            )
        return texts

    def _generate_max_length(self, prompt: _Prompt, tokens_after_sot: int) -> int:
        """The `max_length` that lets generate() return `tokens_after_sot` tokens (forced prefix included).

        CTranslate2's Whisper stops after min(max_length / 2, max_length - tokens up to the SOT sequence)
        tokens (whisper.cc; CTranslate2 issue #1856): passing the wanted count itself returned half of
        it, and nothing at all behind a long glossary. Whisper's 448-token context still bounds both.
        """
        start_tokens = len(prompt.tokens) - prompt.prefix_length - 1  # all but <|notimestamps|> and prefix
        return min(self._max_length, max(2 * tokens_after_sot, tokens_after_sot + start_tokens))

    def _generate_with_fallback(
        self,
        encoder_output: StorageView,
        rows: list[int],
        prompts: dict[int, _Prompt],
        languages: list[str],
        task_name: str,
        final: bool,
        max_length: int,
        hand_back_failures: bool,
    ) -> dict[int, str | None]:
        temperatures = _TEMPERATURES if final and not self._synthetic else _TEMPERATURES[:1]
        attempts: dict[int, list[_Attempt]] = {i: [] for i in rows}
        texts: dict[int, str | None] = {}
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
                    max_length,
                ),
                strict=True,
            ):
                attempts[rows[position]].append(attempt)
            still = []
            for position in pending:
                attempt = attempts[rows[position]][-1]
                if self._synthetic:  # random weights: the guards would judge noise
                    texts[rows[position]] = attempt.text
                elif attempt.silence:
                    texts[rows[position]] = ""
                elif attempt.passed:
                    texts[rows[position]] = attempt.text
                elif hand_back_failures or prompts[rows[position]].prefix_length:
                    texts[rows[position]] = None
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
        prompts: dict[int, _Prompt],
        languages: list[str],
        task_name: str,
        temperature: float,
        final: bool,
        max_length: int,
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
        if self._synthetic:
            suppressed.append(tokenizer.eot)  # decode exactly max_length tokens
        results = self._model.model.generate(
            encoder_output,
            [prompts[i].tokens for i in rows],
            max_length=min(max_length, self._max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppressed,
            **kwargs,
        )
        attempts = []
        for row, result in zip(rows, results, strict=True):
            # The result starts with the forced prefix; its score is the new tokens' summed log
            # probability divided by the length of both.
            tokens = result.sequences_ids[0]
            new_tokens = tokens[prompts[row].prefix_length :]
            text = tokenizer.decode(new_tokens).strip()
            attempts.append(
                _Attempt(
                    text=text,
                    avg_logprob=result.scores[0] * len(tokens) / (len(new_tokens) + 1),
                    compression_ratio=_compression_ratio(text),
                    no_speech_prob=result.no_speech_prob,
                )
            )
        return attempts


def _context_window(task: DecodeTask) -> ContextWindow | None:
    """The left context to decode `task` behind, if any fits its window."""
    if task.context is None or task.language is None:
        return None  # a language to be detected must be detected on the utterance alone
    room = int((FULL_WINDOW_FRAMES / 100 - _CONTEXT_MARGIN_S) * SAMPLE_RATE) - len(task.audio)
    english_wanted = task.english_wanted and task.language != "en"
    if room <= 0:
        return None
    return task.context.window(task.utterance_seq, task.language, room, english_wanted=english_wanted)


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
