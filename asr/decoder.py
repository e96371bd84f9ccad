"""Utterances' audio in, text out: Whisper's encoder once per batch, then its decoder for each task.

faster-whisper's `transcribe()` encodes again for language detection and again per task, and always
pads to a 30 s window. Working on the CTranslate2 model directly lets one encoder pass serve language
detection, transcription and translation, lets partials use a window just covering their audio, and
lets several streams' utterances share one batched call.

Two kinds of task: a `DecodeTask` is one utterance (a partial or a final, the first pass); a
`WindowTask` is the second pass (asr/settle.py): up to 30 s of a speaker's finals back to back, decoded
as one text, cut into sentences that asr/settle.py gives back to the finals they were said in.
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

from asr.chinese_script import in_one_script
from asr.config import (
    COMPRESSION_RATIO_MAX,
    LOG_PROB_MIN,
    NO_SPEECH_MAX,
    SAMPLE_RATE,
    Confidence,
)
from asr.context import ContextWindow, SpeakerContext
from asr.hallucinations import clean_transcript, trim_repetition

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s training window, 10 ms per frame
WINDOW_S = FULL_WINDOW_FRAMES / 100
# A final and its left context share one 30 s window; this much of its end is left as silence.
_CONTEXT_MARGIN_S = 1.0
# Short windows keep this much room after the audio. With 1 s Whisper repeated itself on JFK cuts
# ("And so my fellow Americans. And so my fellow Americans.") and dropped a consultation sentence;
# 3 s gave the full-window text on the same cuts at about a fifth of the cost.
_SHORT_WINDOW_MARGIN_FRAMES = 300
_SHORT_WINDOW_STEP_FRAMES = 100
# A final's short window is at least this long. Short finals (a 1 s "okay" in a 4 s window) are where
# Whisper, far from its 30 s training window, most often scored under the guards and went to the full
# window (bench/final_windows.py; figures in bench/RESULTS.md). Partials keep the shortest window:
# they are many and soon replaced.
SHORT_FINAL_WINDOW_MIN_S = 8.0

# Most tokens a second of speech can need (fast Thai or Chinese run at 6-8), plus a floor for short
# utterances; a decode going beyond is looping.
_MAX_TOKENS_PER_S = 15
_MIN_TOKENS = 10

# What ends a sentence in the eleven languages' scripts (Arabic asks with "؟"; Thai has no mark of its
# own).
SENTENCE_ENDS = (".", "?", "!", "؟", "。", "？", "！", "…")

# Temperatures of OpenAI's transcribe(), which faster-whisper keeps as defaults.
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


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


@dataclass(frozen=True, eq=False)
class WindowTask:
    """The second pass over a speaker's finals: their audio back to back (at most WINDOW_S), decoded
    as one text (beam search of the decoder's `window_beam_size`). Like finals, windows carry only
    the room's glossary as previous text (see asr/settle.py for why not the speaker's settled text)."""

    audio: np.ndarray
    language: str
    english_wanted: bool
    glossary: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decoded:
    # Stripped, repetition loops collapsed; empty when the guards judged the audio not to be speech or
    # the text to be boilerplate Whisper invents on noise. Chinese in simplified characters.
    text: str
    language: str
    english: str | None
    confidence: Confidence | None = None  # None for partials
    english_confidence: Confidence | None = None


@dataclass(frozen=True)
class Sentence:
    """A sentence of a window's decode, with its tokens' mean log probability."""

    text: str  # stripped, loops collapsed, Chinese simplified; boilerplate is judged by the caller
    avg_logprob: float


@dataclass(frozen=True)
class WindowTranscript:
    sentences: tuple[Sentence, ...]
    # The decode reached its token limit before the end of the window's audio: the sentence it was in
    # is left out, and what was said after it was not decoded.
    cut_off: bool
    confidence: Confidence  # of the whole window's decode


@dataclass(frozen=True)
class WindowDecoded:
    transcript: WindowTranscript
    english: WindowTranscript | None  # when wanted and the language is not English


@dataclass(frozen=True)
class _Prompt:
    tokens: list[int]
    sot_index: int  # CTranslate2 batches rows only if <|startoftranscript|> is at the same index
    prefix_length: int  # tokens after the SOT sequence that the decoder is made to start with
    start_tokens: int  # previous text and the SOT sequence (<|notimestamps|> is not counted)


@dataclass(frozen=True)
class Attempt:
    """One decode of one row at one temperature."""

    tokens: tuple[int, ...]  # generated, the forced prefix left out
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    token_logprobs: tuple[float, ...] = ()  # per generated token, windows only
    temperature: float = 0.0

    @property
    def silence(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_MAX and self.avg_logprob < LOG_PROB_MIN

    @property
    def loops(self) -> bool:
        """The text repeats itself (gzip compresses it too well): a decoding loop, never what was said."""
        return self.compression_ratio > COMPRESSION_RATIO_MAX

    @property
    def passed(self) -> bool:
        return not self.loops and self.avg_logprob >= LOG_PROB_MIN

    @property
    def confidence(self) -> Confidence:
        return Confidence(
            round(self.avg_logprob, 4),
            round(self.no_speech_prob, 4),
            round(self.compression_ratio, 4),
            sampled=self.temperature > 0,
        )


class WhisperDecoder:
    """Not thread-safe: the recogniser's scheduler thread is its only caller.

    `feature_pool`: where a batch's log-mel features are computed, in parallel, rather than on the
    calling thread while the GPU waits.

    The methods under "generation policy" are what a decoder for random-weight speed measurements
    overrides (bench/synthetic_asr.py): such weights never decide to stop, and their text means nothing.
    """

    def __init__(
        self,
        model: WhisperModel,
        beam_size: int,
        feature_pool: Executor | None = None,
        short_final_windows: bool = False,
        window_beam_size: int = 1,
        short_final_window_min_s: float = SHORT_FINAL_WINDOW_MIN_S,
    ) -> None:
        self._feature_pool = feature_pool
        self._short_final_windows = short_final_windows
        self._short_final_window_min_frames = round(short_final_window_min_s * FULL_WINDOW_FRAMES / WINDOW_S)
        self._model = model
        self._beam_size = beam_size
        self._window_beam_size = window_beam_size
        self._max_length = model.max_length
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    # --- generation policy ---------------------------------------------------------------------

    def new_token_limit(self, audio_s: float) -> int:
        """Most tokens to generate for `audio_s` of speech: beyond, a decode is looping. Stopping it
        keeps one bad utterance from holding up every stream's batch."""
        return _MIN_TOKENS + math.ceil(_MAX_TOKENS_PER_S * audio_s)

    def temperatures(self, final: bool) -> tuple[float, ...]:
        return _TEMPERATURES if final else _TEMPERATURES[:1]

    def suppressed_tokens(self, tokenizer: Tokenizer) -> list[int]:
        return [-1, *tokenizer.non_speech_tokens]

    def verdict(self, attempt: Attempt) -> str | None:
        """The text to keep from an attempt: "" for silence, None to try again."""
        if attempt.silence:
            return ""
        return attempt.text if attempt.passed else None

    def clean(self, text: str, utterance_s: float, language: str) -> str:
        return in_one_script(clean_transcript(text, utterance_s), language)

    # --- tasks ---------------------------------------------------------------------------------

    def decode_batch(self, tasks: Sequence[DecodeTask | WindowTask]) -> list[Decoded | WindowDecoded]:
        """Decode every task; finals, partials and windows are encoded separately (different windows)."""
        results: list[Decoded | WindowDecoded | None] = [None] * len(tasks)
        windows = [i for i, task in enumerate(tasks) if isinstance(task, WindowTask)]
        if windows:
            group = [t for t in tasks if isinstance(t, WindowTask)]
            for i, result in zip(windows, self._decode_windows(group), strict=True):
                results[i] = result
        for final in (True, False):
            rows = [i for i, task in enumerate(tasks) if isinstance(task, DecodeTask) and task.final is final]
            if rows:
                utterances = [t for i in rows if isinstance(t := tasks[i], DecodeTask)]
                short_window = not final or self._short_final_windows
                for i, decoded in zip(rows, self._decode_group(utterances, short_window), strict=True):
                    results[i] = decoded
        return [r for r in results if r is not None]

    def _decode_group(self, tasks: list[DecodeTask], short_window: bool) -> list[Decoded]:
        final = tasks[0].final
        windows = [_context_window(t) for t in tasks]
        audios = [
            t.audio if w is None else np.concatenate([w.audio, t.audio])
            for t, w in zip(tasks, windows, strict=True)
        ]
        encoder_output = self._encode(
            audios, short_window=short_window, min_frames=self._short_final_window_min_frames if final else 0
        )
        languages = self._languages(encoder_output, tasks)
        prefixes = {i: w.text for i, w in enumerate(windows) if w is not None}
        # A short window is a shortcut Whisper was not trained on: a final it leaves unconfident is
        # decoded again in the full window rather than sampled at rising temperatures there. On a
        # two-word JFK utterance the short window's greedy text was right but scored under the guard,
        # and sampling then picked a wrong one, differently from run to run.
        retry_in_full_window = final and short_window
        prompts = {
            i: self.prompt(languages[i], "transcribe", tasks[i].glossary, prefixes.get(i, ""))
            for i in range(len(tasks))
        }
        seconds = [len(t.audio) / SAMPLE_RATE for t in tasks]
        raw = self._generate_rows(
            encoder_output,
            prompts,
            languages,
            "transcribe",
            seconds,
            final=final,
            hand_back_failures=retry_in_full_window,
        )
        # Rows handed back unconfident. A context the decoder cannot continue from (its text was
        # misheard) is dropped, not fought with at rising temperatures: those rows are decoded alone.
        again = [i for i in range(len(tasks)) if raw[i] is None]
        texts = [
            self.clean(kept[0], seconds[i], languages[i]) if (kept := raw[i]) else ""
            for i in range(len(tasks))
        ]
        translate = [
            i for i, t in enumerate(tasks) if final and t.english_wanted and texts[i] and languages[i] != "en"
        ]
        english: dict[int, tuple[str, Attempt] | None] = {}
        if translate:
            english_prefixes = {i: w.english for i, w in enumerate(windows) if w is not None and w.english}
            english = self._generate_rows(
                _subset(encoder_output, translate, len(tasks)),
                {
                    row: self.prompt(
                        languages[i], "translate", tasks[i].glossary, english_prefixes.get(i, "")
                    )
                    for row, i in enumerate(translate)
                },
                [languages[i] for i in translate],
                "translate",
                [seconds[i] for i in translate],
                final=True,
            )
            english = {translate[row]: result for row, result in english.items()}
        decoded = []
        for i in range(len(tasks)):
            kept_english = english.get(i)
            english_text = self.clean(kept_english[0], seconds[i], "en") if kept_english else ""
            kept = raw[i]
            decoded.append(
                Decoded(
                    texts[i],
                    languages[i],
                    english_text or None,
                    kept[1].confidence if final and kept else None,
                    kept_english[1].confidence if english_text and kept_english else None,
                )
            )
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

    def _decode_windows(self, tasks: list[WindowTask]) -> list[WindowDecoded]:
        encoder_output = self._encode([t.audio for t in tasks], short_window=False)
        seconds = [min(len(t.audio) / SAMPLE_RATE, WINDOW_S) for t in tasks]
        transcripts = self._window_transcripts(
            encoder_output,
            [(t.language, t.glossary) for t in tasks],
            "transcribe",
            seconds,
        )
        english: dict[int, WindowTranscript] = {}
        translate = [
            i
            for i, t in enumerate(tasks)
            if t.english_wanted and t.language != "en" and transcripts[i].sentences
        ]
        if translate:
            translated = self._window_transcripts(
                _subset(encoder_output, translate, len(tasks)),
                [(tasks[i].language, tasks[i].glossary) for i in translate],
                "translate",
                [seconds[i] for i in translate],
            )
            english = dict(zip(translate, translated, strict=True))
        return [WindowDecoded(transcripts[i], english.get(i)) for i in range(len(tasks))]

    def _window_transcripts(
        self,
        encoder_output: StorageView,
        rows: list[tuple[str, tuple[str, ...]]],
        task_name: str,
        seconds: list[float],
    ) -> list[WindowTranscript]:
        """Decodes of whole windows (beam search of `window_beam_size`), each with its tokens' log
        probabilities so that every sentence gets a confidence of its own."""
        prompts = [self.window_prompt(language, task_name, glossary) for language, glossary in rows]
        by_sot: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            by_sot.setdefault(prompt.sot_index, []).append(i)
        results: list[WindowTranscript | None] = [None] * len(rows)
        for group in by_sot.values():
            limit = self.new_token_limit(max(seconds[i] for i in group))
            max_length = self._generate_max_length(prompts[group[0]], limit)
            # What generate() can return at most, whatever was asked for (its cap: see above).
            returned = min(limit, max_length // 2, max_length - max(prompts[i].start_tokens for i in group))
            language = rows[group[0]][0]
            group_output = _subset(encoder_output, group, len(rows))
            attempts = self._attempts(
                group_output,
                [prompts[i] for i in group],
                language,
                task_name,
                0.0,
                beam_size=self._window_beam_size,
                max_length=max_length,
            )
            if self._window_beam_size > 1:
                attempts = self._unlooped(
                    group_output, [prompts[i] for i in group], attempts, language, task_name, max_length
                )
            tokenizer = self._tokenizer(language, task_name)
            attempts = self._scored(
                group_output,
                [prompts[i] for i in group],
                attempts,
                [seconds[i] for i in group],
                tokenizer,
            )
            for i, attempt in zip(group, attempts, strict=True):
                cut_off = len(attempt.tokens) >= returned
                results[i] = window_sentences(
                    attempt, tokenizer, rows[i][0] if task_name == "transcribe" else "en", cut_off
                )
        return [r for r in results if r is not None]

    def _unlooped(
        self,
        encoder_output: StorageView,
        prompts: list[_Prompt],
        attempts: list[Attempt],
        language: str,
        task_name: str,
        max_length: int,
    ) -> list[Attempt]:
        """Beam search can fall into a loop ("nothing new, nothing new, ..." to the token limit) where
        greedy decoding of the same window does not: such rows are decoded again greedily, and the
        greedy text is kept where it does not loop (a window that loops either way settles nothing)."""
        looping = [row for row, attempt in enumerate(attempts) if attempt.loops]
        if not looping:
            return attempts
        greedy = self._attempts(
            _subset(encoder_output, looping, len(attempts)),
            [prompts[row] for row in looping],
            language,
            task_name,
            0.0,
            beam_size=1,
            max_length=max_length,
        )
        kept = list(attempts)
        for row, attempt in zip(looping, greedy, strict=True):
            if not attempt.loops:
                kept[row] = attempt
        return kept

    def _scored(
        self,
        encoder_output: StorageView,
        prompts: list[_Prompt],
        attempts: list[Attempt],
        seconds: list[float],
        tokenizer: Tokenizer,
    ) -> list[Attempt]:
        """The attempts with each text token's log probability, from one forced pass of the decoder
        over their text (CTranslate2's `align`). Beam search returns only a whole sequence's score, and
        a window's lines need one each; on the development consultations these agree with the
        probabilities greedy decoding computes as it goes (correlation 0.97, means within 0.02).
        Special tokens are given 0."""
        scored = list(attempts)
        by_start: dict[tuple[int, ...], list[int]] = {}
        for row, (prompt, attempt) in enumerate(zip(prompts, attempts, strict=True)):
            if any(t < tokenizer.eot for t in attempt.tokens):
                by_start.setdefault(tuple(prompt.tokens), []).append(row)
        for start, rows in by_start.items():
            texts = [[t for t in attempts[r].tokens if t < tokenizer.eot] for r in rows]
            alignments = self._model.model.align(
                _subset(encoder_output, rows, len(attempts)),
                list(start),
                texts,
                [round(seconds[r] * 100) for r in rows],
            )
            for row, alignment in zip(rows, alignments, strict=True):
                probabilities = iter(alignment.text_token_probs)
                scored[row] = replace(
                    attempts[row],
                    token_logprobs=tuple(
                        math.log(max(next(probabilities), 1e-12)) if t < tokenizer.eot else 0.0
                        for t in attempts[row].tokens
                    ),
                )
        return scored

    def _encode(self, audios: list[np.ndarray], *, short_window: bool, min_frames: int = 0) -> StorageView:
        extractor = self._model.feature_extractor
        contents = [min(len(a) // extractor.hop_length, FULL_WINDOW_FRAMES) for a in audios]
        window = FULL_WINDOW_FRAMES
        if short_window:
            # One window for the batch: the longest audio's. Padding is silence, which Whisper was
            # trained on, so shorter rows decode as they would alone with a slightly longer window.
            wanted = max(contents) + _SHORT_WINDOW_MARGIN_FRAMES
            window = min(
                FULL_WINDOW_FRAMES,
                max(min_frames, math.ceil(wanted / _SHORT_WINDOW_STEP_FRAMES) * _SHORT_WINDOW_STEP_FRAMES),
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
        before = self._previous_text(tokenizer, glossary)
        # Its end must meet this utterance's audio: a long one loses its beginning.
        said = tokenizer.encode(" " + prefix.strip())[-(self._max_length // 4) :] if prefix.strip() else []
        tokens = [*before, *tokenizer.sot_sequence, tokenizer.no_timestamps, *said]
        start = len(before) + len(tokenizer.sot_sequence)
        return _Prompt(tokens, sot_index=len(before), prefix_length=len(said), start_tokens=start)

    def window_prompt(self, language: str, task: str, glossary: Sequence[str]) -> _Prompt:
        """Glossary terms as previous text, then SOT, without timestamps.

        Timestamps cost the settled text accuracy and bought nothing it used: on the development
        consultations, windows decoded without them settled text at 13.9% word errors against 14.6%
        with them, better on each file, at the same cost (bench/RESULTS.md). Words go back to their
        finals by their text (asr/settle.py); Whisper's segment times, which came in whole seconds on
        consultation audio, had given words to the wrong lines.
        """
        tokenizer = self._tokenizer(language, task)
        before = self._previous_text(tokenizer, glossary)
        tokens = [*before, *tokenizer.sot_sequence, tokenizer.no_timestamps]
        start = len(before) + len(tokenizer.sot_sequence)
        return _Prompt(tokens, sot_index=len(before), prefix_length=0, start_tokens=start)

    def _previous_text(self, tokenizer: Tokenizer, glossary: Sequence[str]) -> list[int]:
        # Closed with a full stop: an open list of terms invites Whisper to go on with it, and behind 23
        # drug names a short, unclear "ask not" came out as one of them, "ezetimibe," (AMD EPYC).
        terms = tokenizer.encode(" " + ", ".join(glossary) + ".") if glossary else []
        # Whisper was trained with at most half its context as previous text.
        tokens = terms[-(self._max_length // 2 - 1) :]
        return [tokenizer.sot_prev, *tokens] if tokens else []

    def _generate_rows(
        self,
        encoder_output: StorageView,
        prompts: dict[int, _Prompt],
        languages: list[str],
        task_name: str,
        seconds: list[float],
        *,
        final: bool,
        hand_back_failures: bool = False,
    ) -> dict[int, tuple[str, Attempt] | None]:
        """Each row's kept text and the attempt it came from; None for a row handed back after failing
        the guards at temperature 0. Rows are the encoder output's, numbered 0..n-1.

        Rows decoded behind a context are always handed back; with `hand_back_failures`, every row is.
        """
        by_sot: dict[int, list[int]] = {}
        for i in sorted(prompts):
            by_sot.setdefault(prompts[i].sot_index, []).append(i)
        kept: dict[int, tuple[str, Attempt] | None] = {}
        for group in by_sot.values():
            longest_prefix = max(prompts[i].prefix_length for i in group)
            new_tokens = self.new_token_limit(max(seconds[i] for i in group))
            max_length = self._generate_max_length(prompts[group[0]], longest_prefix + new_tokens)
            kept.update(
                self._generate_with_fallback(
                    encoder_output,
                    group,
                    len(prompts),
                    prompts,
                    languages,
                    task_name,
                    final,
                    max_length,
                    hand_back_failures,
                )
            )
        return kept

    def _generate_max_length(self, prompt: _Prompt, tokens_after_sot: int) -> int:
        """The `max_length` that lets generate() return `tokens_after_sot` tokens (forced prefix included).

        CTranslate2's Whisper stops after min(max_length / 2, max_length - tokens up to the SOT sequence)
        tokens (whisper.cc; CTranslate2 issue #1856): passing the wanted count itself returned half of
        it, and nothing at all behind a long glossary. Whisper's 448-token context still bounds both, so
        no decode returns more than 224 tokens: a window's decode can be cut off (see window_sentences).
        """
        return min(self._max_length, max(2 * tokens_after_sot, tokens_after_sot + prompt.start_tokens))

    def _generate_with_fallback(
        self,
        encoder_output: StorageView,
        rows: list[int],
        batch: int,
        prompts: dict[int, _Prompt],
        languages: list[str],
        task_name: str,
        final: bool,
        max_length: int,
        hand_back_failures: bool,
    ) -> dict[int, tuple[str, Attempt] | None]:
        attempts: dict[int, list[Attempt]] = {i: [] for i in rows}
        kept: dict[int, tuple[str, Attempt] | None] = {}
        pending = list(rows)
        for temperature in self.temperatures(final):
            if not pending:
                break
            made = self._attempts(
                _subset(encoder_output, pending, batch),
                [prompts[i] for i in pending],
                languages[pending[0]],
                task_name,
                temperature,
                beam_size=self._beam_size if final and temperature == 0 else 1,
                max_length=max_length,
            )
            still = []
            for row, attempt in zip(pending, made, strict=True):
                attempts[row].append(attempt)
                text = self.verdict(attempt)
                if text is not None:
                    kept[row] = (text, attempt)
                elif hand_back_failures or prompts[row].prefix_length:
                    kept[row] = None
                else:
                    still.append(row)
            pending = still
        for row in pending:
            # Every temperature failed a guard. Repetition loops are dropped: they are never what was
            # said. A merely unconfident decode is kept, as faster-whisper does: the VAD already judged
            # this to be speech, and a word cut off by finish() or max_utterance_s decodes this way.
            # Its confidence says so.
            plausible = [a for a in attempts[row] if not a.loops]
            best = max(plausible, key=lambda a: a.avg_logprob) if plausible else None
            kept[row] = (best.text, best) if best else ("", attempts[row][-1])
        return kept

    def _attempts(
        self,
        encoder_output: StorageView,
        prompts: list[_Prompt],
        language: str,
        task_name: str,
        temperature: float,
        *,
        beam_size: int,
        max_length: int,
    ) -> list[Attempt]:
        if temperature > 0:
            kwargs: dict[str, object] = {
                "beam_size": 1,
                "num_hypotheses": 1,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            kwargs = {"beam_size": beam_size}
        # Any row's tokenizer will do: decoding and the non-speech tokens do not depend on the language.
        tokenizer = self._tokenizer(language, task_name)
        results = self._model.model.generate(
            encoder_output,
            [p.tokens for p in prompts],
            max_length=min(max_length, self._max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self.suppressed_tokens(tokenizer),
            **kwargs,
        )
        attempts = []
        for prompt, result in zip(prompts, results, strict=True):
            # The result starts with the forced prefix; its score is the new tokens' summed log
            # probability divided by the length of both.
            tokens = result.sequences_ids[0]
            new_tokens = tokens[prompt.prefix_length :]
            text = tokenizer.decode([t for t in new_tokens if t < tokenizer.timestamp_begin]).strip()
            attempts.append(
                Attempt(
                    tokens=tuple(new_tokens),
                    text=text,
                    avg_logprob=result.scores[0] * len(tokens) / (len(new_tokens) + 1),
                    compression_ratio=compression_ratio(text),
                    no_speech_prob=result.no_speech_prob,
                    temperature=temperature,
                )
            )
        return attempts


def window_sentences(
    attempt: Attempt, tokenizer: Tokenizer, language: str, cut_off: bool
) -> WindowTranscript:
    """A window's decode cut into sentences, each scored by its own tokens. A decode cut off by its
    token limit loses the sentence it was in: its words run on into audio that was not decoded."""
    sentences: list[Sentence] = []
    tokens: list[int] = []
    logprobs: list[float] = []
    logprobs_of = [*attempt.token_logprobs, *[0.0] * (len(attempt.tokens) - len(attempt.token_logprobs))]
    for token, logprob in zip(attempt.tokens, logprobs_of, strict=False):
        if token >= tokenizer.eot:
            continue
        tokens.append(token)
        logprobs.append(logprob)
        # The text so far, not the token alone: a full-width mark can take two byte tokens.
        if tokenizer.decode(tokens).rstrip().endswith(SENTENCE_ENDS):
            sentences.append(_sentence(tokens, logprobs, tokenizer, language))
            tokens, logprobs = [], []
    if tokens and not cut_off:
        sentences.append(_sentence(tokens, logprobs, tokenizer, language))
    return WindowTranscript(tuple(s for s in sentences if s.text), cut_off, attempt.confidence)


def _sentence(tokens: list[int], logprobs: list[float], tokenizer: Tokenizer, language: str) -> Sentence:
    text = in_one_script(trim_repetition(tokenizer.decode(tokens).strip()), language)
    # As Whisper scores a whole decode: summed log probability over the tokens and the end.
    return Sentence(text, round(sum(logprobs) / (len(logprobs) + 1), 4))


def _context_window(task: DecodeTask) -> ContextWindow | None:
    """The left context to decode `task` behind, if any fits its window."""
    if task.context is None or task.language is None:
        return None  # a language to be detected must be detected on the utterance alone
    room = int((WINDOW_S - _CONTEXT_MARGIN_S) * SAMPLE_RATE) - len(task.audio)
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


def compression_ratio(text: str) -> float:
    if not text:
        return 0.0
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))
