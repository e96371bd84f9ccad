"""From one speaker's microphone to every listener's caption.

    MediaHub.listen (16 kHz audio from the media worker) ─► asr.RecognitionStream ─► SpeechEvent
        ─► mt.TranslationEngine (once per distinct caption language) ─► CaptionEvent per listener

One `SpeakerPipeline` per speaking participant. It never blocks the event loop: recognition and
translation run on their engines' worker threads. A final's translation can start before the final
itself, from the preliminary final the recogniser emits during the utterance's closing silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from asr import RecognitionStream, SpeechEvent, SpeechEventKind, SpeechRecognizer
from media import SAMPLE_RATE
from mt import (
    PartialTranslationPolicy,
    Translation,
    TranslationBusyError,
    TranslationEngine,
    UtteranceTranslation,
)
from protocol import CaptionEvent, Glossary, TranslationPath
from server.metrics import Metrics
from server.rooms import AUTO_LANGUAGE, LiveRoom, Participant

log = logging.getLogger(__name__)

_FINISH_TIMEOUT_S = 30.0
# Translated partials at most this often per utterance: fresh enough to follow, rare enough that
# translation work never delays finals.
PARTIAL_TRANSLATION_INTERVAL_S = 0.8


class MissingModelReporter:
    """Logs, once per language pair, which translation model an operator should install."""

    def __init__(self, engine: TranslationEngine) -> None:
        self._engine = engine
        self._reported: set[tuple[str, str]] = set()

    def report(self, source: str, target: str) -> None:
        if (source, target) not in self._reported:
            self._reported.add((source, target))
            log.warning(
                "no translation model for %s→%s: %s",
                source,
                target,
                self._engine.missing_model_hint(source, target),
            )


class SpeakerPipeline:
    def __init__(
        self,
        room: LiveRoom,
        speaker: Participant,
        audio: AsyncIterator[np.ndarray],
        recognizer: SpeechRecognizer,
        engine: TranslationEngine,
        missing_models: MissingModelReporter,
        metrics: Metrics,
    ) -> None:
        self._room = room
        self._metrics = metrics
        self._partial_policy = PartialTranslationPolicy(min_interval_s=PARTIAL_TRANSLATION_INTERVAL_S)
        self._speaker = speaker
        self._engine = engine
        self._missing_models = missing_models
        detect = speaker.speaks == AUTO_LANGUAGE
        self._stream: RecognitionStream = recognizer.open_stream(
            language=None if detect else speaker.speaks,
            allowed_languages=room.languages() if detect else None,
            english_wanted=self._english_wanted(),
            glossary=room.glossary.words,
        )
        # Stream time starts at the first sample heard, which comes a connection set-up after publishing;
        # the room clock is fixed when that sample arrives, so captions line up with when words were said.
        self._offset_s: float | None = None
        self._partial_translation: asyncio.Task[None] | None = None
        self._early: _EarlyTranslation | None = None
        self._tap = asyncio.create_task(self._hear_all(audio), name=f"hear-{speaker.id}")
        self._delivery = asyncio.create_task(self._deliver_all(), name=f"captions-{speaker.id}")

    async def _hear_all(self, audio: AsyncIterator[np.ndarray]) -> None:
        async for samples in audio:
            if self._offset_s is None:
                self._offset_s = time.time() - len(samples) / SAMPLE_RATE - self._room.opened_at
            await self._stream.push(samples)

    def room_changed(self) -> None:
        """Someone joined, left or changed languages, or the glossary changed."""
        self._stream.english_wanted = self._english_wanted()
        self._stream.glossary = self._room.glossary.words
        if self._speaker.speaks == AUTO_LANGUAGE:
            self._stream.allowed_languages = self._room.languages()

    def _english_wanted(self) -> bool:
        """Whisper's speech-to-English costs a second decode, so ask for it only when someone reads
        English and no machine translation model covers the pair (for a speaker whose language is
        detected, whenever someone reads English)."""
        source = self._speaker.speaks
        if source == "en" or "en" not in self._room.caption_languages():
            return False
        if source == AUTO_LANGUAGE:
            return True
        return self._engine.route(source, "en", whisper_english=True).path is TranslationPath.WHISPER

    async def finish(self) -> None:
        """The speaker left: stop listening, but deliver what they already said."""
        self._tap.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._tap
        await self._stream.finish()
        try:
            await asyncio.wait_for(self._delivery, _FINISH_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "captions of participant %s not flushed within %.0f s", self._speaker.id, _FINISH_TIMEOUT_S
            )

    async def _deliver_all(self) -> None:
        """Finals are delivered in order, each before the next transcript is looked at. A partial is
        sent at once to readers of the spoken language; its translation runs beside the pipeline, at
        most one at a time, and is dropped when the final arrives: a final never waits for a partial's."""
        try:
            async for transcript in self._stream:
                try:
                    if transcript.kind is SpeechEventKind.FINAL:
                        self._drop_partial_translation()
                        await self._deliver_final(transcript)
                    elif transcript.kind is SpeechEventKind.PARTIAL:
                        await self._deliver_partial(transcript)
                    elif transcript.kind is SpeechEventKind.PRELIMINARY_FINAL:
                        self._translate_early(transcript)
                except Exception:
                    log.exception("caption delivery failed for participant %s", self._speaker.id)
        finally:
            self._drop_partial_translation()
            self._drop_early_translation()

    def _translate_early(self, transcript: SpeechEvent) -> None:
        """The likely final of an utterance whose closing silence is still running: start its
        translation now, so that by the time the silence confirms the final (silence_ms) the
        translation is done or under way instead of only starting.

        Only on an idle engine: when speech resumes the work is wasted, and on a busy engine that waste
        would delay other speakers' finals."""
        self._drop_early_translation()
        targets = self._room.caption_languages() - {transcript.language}
        whisper_english = transcript.english is not None
        needs_a_model = any(
            self._engine.route(transcript.language, target, whisper_english=whisper_english).uses_model
            for target in targets
        )
        if not needs_a_model or self._delivery.done() or self._engine.pending:
            return
        self._early = _EarlyTranslation(
            transcript, self._room.glossary, self._start_translation(transcript, targets)
        )

    def _drop_early_translation(self) -> None:
        if self._early is not None:
            self._early.translation.cancel()
            self._metrics.early_translation(used=False)
            self._early = None

    def _final_translation(self, transcript: SpeechEvent, targets: set[str]) -> UtteranceTranslation:
        early, self._early = self._early, None
        if early is not None and early.serves(transcript, targets, self._room.glossary):
            self._metrics.early_translation(used=True)
            return early.translation
        if early is not None:
            early.translation.cancel()
            self._metrics.early_translation(used=False)
        return self._start_translation(transcript, targets)

    def _start_translation(self, transcript: SpeechEvent, targets: set[str]) -> UtteranceTranslation:
        """A final's translation, whether started early or when the final arrives."""
        return self._engine.start(
            transcript.text,
            transcript.language,
            targets,
            whisper_english=transcript.english,
            glossary=self._room.glossary,
        )

    async def _deliver_final(self, transcript: SpeechEvent) -> None:
        """Readers of the spoken language get the final at once; readers of each other language as soon
        as theirs is translated, without waiting for the other languages."""
        self._partial_policy.forget(self._utterance_id(transcript))  # the final supersedes its partials
        source = transcript.language
        targets = self._room.caption_languages()
        if source in targets:
            original = Translation(transcript.text, TranslationPath.ORIGINAL, None, None)
            await self._send(transcript, {source: original})
        others = targets - {source}
        if not others:
            self._drop_early_translation()
            return
        translation = self._final_translation(transcript, others)
        try:
            async for target, translated in translation.as_ready():
                if translated.path is TranslationPath.UNTRANSLATED:
                    self._missing_models.report(source, target)
                await self._send(transcript, {target: translated})
        finally:
            translation.cancel()  # a no-op once all are sent; the rest of the work when delivery failed

    async def _deliver_partial(self, transcript: SpeechEvent) -> None:
        """Partials go through machine translation only where a model exists, and only when their stable
        part has grown (at a bounded rate, one translation in flight), so translation never makes
        captions lag; readers of those languages keep the previous translated partial meanwhile.
        Whisper's English comes with the final, so until then the listener sees the words as spoken,
        marked as such."""
        targets = self._room.caption_languages()
        source = transcript.language
        by_model = {t for t in targets if self._engine.route(source, t, whisper_english=False).uses_model}
        at_once: dict[str, Translation] = {}
        if source in targets:
            at_once[source] = Translation(transcript.text, TranslationPath.ORIGINAL, None, None)
        for target in targets - by_model - {source}:
            whisper_later = (
                self._engine.route(source, target, whisper_english=True).path is TranslationPath.WHISPER
            )
            note = (
                "translation follows when the sentence ends"
                if whisper_later
                else f"not translated: no model for {source}→{target}"
            )
            at_once[target] = Translation(transcript.text, TranslationPath.UNTRANSLATED, None, note)
        if at_once:
            await self._send(transcript, at_once)
        if not by_model or (self._partial_translation is not None and not self._partial_translation.done()):
            return
        stable = transcript.text[: transcript.stable_chars]
        if self._partial_policy.should_translate(self._utterance_id(transcript), stable, time.monotonic()):
            self._partial_translation = asyncio.create_task(
                self._translate_partial(transcript, by_model), name=f"partial-{self._speaker.id}"
            )

    async def _translate_partial(self, transcript: SpeechEvent, targets: set[str]) -> None:
        try:
            translations = await self._engine.translate(
                transcript.text, transcript.language, targets, glossary=self._room.glossary, urgent=False
            )
        except TranslationBusyError:
            return  # listeners keep the previous translated partial; the final will come regardless
        except Exception:
            log.exception("partial translation failed for participant %s", self._speaker.id)
            return
        await self._send(transcript, translations)

    def _drop_partial_translation(self) -> None:
        if self._partial_translation is not None:
            self._partial_translation.cancel()
            self._partial_translation = None

    async def _send(self, transcript: SpeechEvent, translations: dict[str, Translation]) -> None:
        timings = {**transcript.timings, "translated": time.time()}
        sent_at = time.time()
        for listener in list(self._room.participants.values()):
            translation = translations.get(listener.captions)
            if translation is None:  # another listener's language
                continue
            event = CaptionEvent(
                room=self._room.id,
                speaker_id=self._speaker.id,
                speaker_name=self._speaker.name,
                utterance_id=self._utterance_id(transcript),
                final=transcript.kind is SpeechEventKind.FINAL,
                source_language=transcript.language,
                caption_language=transcript.language
                if translation.path is TranslationPath.UNTRANSLATED
                else listener.captions,
                text=translation.text,
                stable_chars=_stable_chars(transcript, translation),
                path=translation.path,
                note=translation.note,
                start_s=round((self._offset_s or 0.0) + transcript.start_s, 3),
                end_s=round((self._offset_s or 0.0) + transcript.end_s, 3),
                sent_at=sent_at,
                timings=timings,
            )
            try:
                await listener.send(event.to_dict())
            except Exception as error:  # a listener that vanished must not stop the others' captions
                log.info("caption not delivered to %s: %s", listener.id, type(error).__name__)
                continue
            self._metrics.observe(timings, sent_at, final=event.final, path=event.path.value, listeners=1)

    def _utterance_id(self, transcript: SpeechEvent) -> str:
        return f"{self._speaker.id}-{transcript.utterance_seq}"


@dataclass(frozen=True)
class _EarlyTranslation:
    """A translation started from a tentative final (see `SpeakerPipeline._translate_early`)."""

    tentative: SpeechEvent
    glossary: Glossary
    translation: UtteranceTranslation

    def serves(self, final: SpeechEvent, targets: set[str], glossary: Glossary) -> bool:
        """Whether it is the translation `final` needs: same words, same languages, same glossary."""
        tentative = self.tentative
        return (
            (tentative.utterance_seq, tentative.text, tentative.language, tentative.english)
            == (final.utterance_seq, final.text, final.language, final.english)
            and targets <= self.translation.targets
            and glossary is self.glossary
        )


def _stable_chars(transcript: SpeechEvent, translation: Translation) -> int:
    """Only text shown as spoken has a stable prefix: a translation of a partial can still reorder as
    words arrive, while a final is settled whatever produced it."""
    if translation.path in (TranslationPath.ORIGINAL, TranslationPath.UNTRANSLATED):
        return transcript.stable_chars
    return len(translation.text) if transcript.kind is SpeechEventKind.FINAL else 0
