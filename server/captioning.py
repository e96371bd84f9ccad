"""From one speaker's microphone to every listener's caption.

    MediaHub.listen (16 kHz audio from the media worker) ─► asr.RecognitionStream ─► SpeechEvent
        ─► mt.TranslationEngine (once per distinct caption language) ─► CaptionEvent per listener

One `SpeakerPipeline` per speaking participant. It never blocks the event loop: recognition and
translation run on their engines' worker threads. Per utterance a reader sees partials, then the
final, then perhaps a settled caption from the recogniser's second pass:
- a final's translation can start before the final itself, from the preliminary final the recogniser
  emits during the utterance's closing silence;
- finals are delivered in order, each before the next event is looked at;
- settled captions are delivered beside that, in their own order, at a lower translation priority, so
  settling never delays a final; a settled caption goes only to readers whose text it changes (or
  whose lines it merges), and never before the final it replaces.
What to translate, and how, comes from the room's translation plan (mt/plan.py); this module delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from asr import Confidence, RecognitionStream, SpeechEvent, SpeechEventKind, SpeechRecognizer, to_traditional
from media import SAMPLE_RATE
from mt import (
    PartialTranslationPolicy,
    Priority,
    Translation,
    TranslationBusyError,
    TranslationEngine,
    TranslationPlan,
    UtteranceTranslation,
)
from protocol import CaptionEvent, Glossary, TranslationPath
from protocol.captions import CaptionKind
from protocol.privacy import describe_exception
from protocol.signalling import AUTO_LANGUAGE, ChineseScript
from server.metrics import Metrics
from server.rooms import LiveRoom, Seat

log = logging.getLogger(__name__)

_FINISH_TIMEOUT_S = 30.0
# Translated partials at most this often per utterance: fresh enough to follow, rare enough that
# translation work never delays finals.
PARTIAL_TRANSLATION_INTERVAL_S = 0.8
# Lines whose finals a settled caption may still replace: the second pass settles within a 30 s
# window, so a few dozen is ample; older ones are forgotten, so a long call cannot grow memory.
_MAX_OPEN_LINES = 64
_KIND = {
    SpeechEventKind.PARTIAL: CaptionKind.PARTIAL,
    SpeechEventKind.FINAL: CaptionKind.FINAL,
    SpeechEventKind.SETTLED: CaptionKind.SETTLED,
}


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


class CaptionRecorder(Protocol):
    """Where the room's consultation record (server/records.py) gets the words it may keep: every final,
    and every settled caption (naming the finals it `replaces`), as a caption in the speaker's own
    language, whoever reads that language. The record uses these results: it has no recogniser of its
    own. Must not block: it is called on the way to the listeners."""

    def offer(self, room: LiveRoom, speaker: Seat, caption: CaptionEvent) -> None: ...


@dataclass
class _Line:
    """A final as it went out: what settling compares with, per reader language."""

    text: str  # in the spoken language
    english: str | None  # Whisper's English, when recognition made it
    sent: dict[str, str] = field(default_factory=dict)  # caption language -> the text its readers have


class SpeakerPipeline:
    def __init__(
        self,
        room: LiveRoom,
        speaker: Seat,
        audio: AsyncIterator[np.ndarray],
        recognizer: SpeechRecognizer,
        engine: TranslationEngine,
        missing_models: MissingModelReporter,
        metrics: Metrics,
        recorder: CaptionRecorder | None = None,
    ) -> None:
        self._room = room
        self._recorder = recorder
        self._metrics = metrics
        self._partial_policy = PartialTranslationPolicy(min_interval_s=PARTIAL_TRANSLATION_INTERVAL_S)
        self._speaker = speaker
        self._engine = engine
        self._missing_models = missing_models
        self._plans: dict[str, TranslationPlan] = {}  # by spoken language; dropped when the room changes
        self._lines: OrderedDict[int, _Line] = OrderedDict()  # by utterance: finals not yet settled
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
        self._settling: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self._tap = asyncio.create_task(self._hear_all(audio), name=f"hear-{speaker.id}")
        self._delivery = asyncio.create_task(self._deliver_all(), name=f"captions-{speaker.id}")
        self._settler = asyncio.create_task(self._settle_all(), name=f"settled-{speaker.id}")

    async def _hear_all(self, audio: AsyncIterator[np.ndarray]) -> None:
        async for samples in audio:
            if self._offset_s is None:
                self._offset_s = time.time() - len(samples) / SAMPLE_RATE - self._room.opened_at
            await self._stream.push(samples)
        # The microphone ended (the speaker left, or their media process died): what they were
        # saying becomes a final now, not when someone remembers to finish the stream.
        await self._stream.finish()

    def room_changed(self) -> None:
        """Someone joined, left or changed languages, or the glossary changed."""
        self._plans.clear()
        self._stream.english_wanted = self._english_wanted()
        self._stream.glossary = self._room.glossary.words
        if self._speaker.speaks == AUTO_LANGUAGE:
            self._stream.allowed_languages = self._room.languages()

    def _plan(self, source: str) -> TranslationPlan:
        plan = self._plans.get(source)
        if plan is None:
            plan = self._plans[source] = self._engine.plan(source, self._room.caption_languages())
        return plan

    def _english_wanted(self) -> bool:
        """Whisper's speech-to-English costs a second decode, so ask for it only when the plan's route
        to English starts from it (for a speaker whose language is detected, whenever someone reads
        English: the route depends on the language each utterance turns out to be in)."""
        source = self._speaker.speaks
        if source == "en" or "en" not in self._room.caption_languages():
            return False
        if source == AUTO_LANGUAGE:
            return True
        return self._plan(source).whisper_english

    async def finish(self) -> None:
        """The speaker left: stop listening, but deliver what they already said."""
        self._tap.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._tap
        await self._stream.finish()
        try:
            await asyncio.wait_for(asyncio.gather(self._delivery, self._settler), _FINISH_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "captions of participant %s not flushed within %.0f s", self._speaker.id, _FINISH_TIMEOUT_S
            )

    async def _deliver_all(self) -> None:
        """Finals are delivered in order, each before the next event is looked at. A partial is sent at
        once to readers of the spoken language; its translation runs beside the pipeline, at most one at
        a time, and is dropped when the final arrives: a final never waits for a partial's. Settled
        events go to the settler, which delivers them in order beside this."""
        try:
            async for event in self._stream:
                try:
                    if event.kind is SpeechEventKind.FINAL:
                        self._drop_partial_translation()
                        await self._deliver_final(event)
                    elif event.kind is SpeechEventKind.PARTIAL:
                        await self._deliver_partial(event)
                    elif event.kind is SpeechEventKind.PRELIMINARY_FINAL:
                        self._translate_early(event)
                    elif event.kind is SpeechEventKind.SETTLED:
                        self._settling.put_nowait(event)
                except Exception as error:
                    log.error(
                        "caption delivery failed for participant %s: %s",
                        self._speaker.id,
                        describe_exception(error),
                    )
        finally:
            self._settling.put_nowait(None)
            self._drop_partial_translation()
            self._drop_early_translation()

    # ------------------------------------------------------------ finals

    def _translate_early(self, preliminary: SpeechEvent) -> None:
        """The likely final of an utterance whose closing silence is still running: start its
        translation now, so that by the time the silence confirms the final (silence_ms) the
        translation is done or under way instead of only starting.

        Only on an idle engine: when speech resumes the work is wasted, and on a busy engine that waste
        would delay other speakers' finals."""
        self._drop_early_translation()
        plan = self._plan(preliminary.language)
        if (
            not plan.needs_model(preliminary.english is not None)
            or self._delivery.done()
            or self._engine.pending
        ):
            return
        self._early = _EarlyTranslation(
            preliminary, self._room.glossary, self._start_translation(preliminary, set(plan.targets))
        )

    def _drop_early_translation(self) -> None:
        if self._early is not None:
            self._early.translation.cancel()
            self._metrics.early_translation(used=False)
            self._early = None

    def _final_translation(self, final: SpeechEvent, targets: set[str]) -> UtteranceTranslation:
        early, self._early = self._early, None
        if early is not None and early.serves(final, targets, self._room.glossary):
            self._metrics.early_translation(used=True)
            return early.translation
        if early is not None:
            early.translation.cancel()
            self._metrics.early_translation(used=False)
        return self._start_translation(final, targets)

    def _start_translation(
        self, event: SpeechEvent, targets: set[str], priority: Priority = Priority.FINAL
    ) -> UtteranceTranslation:
        return self._engine.start(
            event.text,
            event.language,
            targets,
            whisper_english=event.english,
            glossary=self._room.glossary,
            priority=priority,
        )

    async def _deliver_final(self, final: SpeechEvent) -> None:
        """Readers of the spoken language get the final at once; readers of each other language as soon
        as theirs is translated, without waiting for the other languages."""
        self._partial_policy.forget(self._utterance_id(final.utterance_seq))  # it supersedes the partials
        line = self._lines[final.utterance_seq] = _Line(final.text, final.english)
        while len(self._lines) > _MAX_OPEN_LINES:
            self._lines.popitem(last=False)
        source = final.language
        plan = self._plan(source)
        original = Translation(final.text, TranslationPath.ORIGINAL, None, None)
        self._offer_to_record(final, original)
        if plan.original_read:
            await self._send(final, {source: original}, line)
        if not plan.targets:
            self._drop_early_translation()
            return
        translation = self._final_translation(final, set(plan.targets))
        try:
            async for target, translated in translation.as_ready():
                if target == source:
                    continue  # sent above, as spoken
                if translated.path is TranslationPath.UNTRANSLATED:
                    self._missing_models.report(source, target)
                await self._send(final, {target: translated}, line)
        finally:
            translation.cancel()  # a no-op once all are sent; the rest of the work when delivery failed

    # ------------------------------------------------------------ settled captions

    async def _settle_all(self) -> None:
        while (settled := await self._settling.get()) is not None:
            try:
                await self._deliver_settled(settled)
            except Exception as error:
                log.error(
                    "settled caption failed for participant %s: %s",
                    self._speaker.id,
                    describe_exception(error),
                )

    async def _deliver_settled(self, settled: SpeechEvent) -> None:
        """The second pass's text for the finals it names: translated again only where the words (or
        Whisper's English) changed, and sent only to readers whose text changes or whose lines merge."""
        replaced = [self._lines.pop(seq, None) for seq in settled.replaces]
        lines = [line for line in replaced if line is not None]
        merged = len(settled.replaces) > 1
        source = settled.language
        before = " ".join(line.text for line in lines)
        english_before = " ".join(line.english or "" for line in lines).strip() or None
        words_changed = settled.text != before or not lines
        english_changed = (settled.english or None) != english_before
        self._offer_to_record(settled, Translation(settled.text, TranslationPath.ORIGINAL, None, None))
        plan = self._plan(source)
        readers = self._room.caption_languages()
        texts: dict[str, Translation] = {}
        if source in readers:
            texts[source] = Translation(settled.text, TranslationPath.ORIGINAL, None, None)
        targets = set(plan.targets)
        # Merged lines are one sentence now: its translation is of the sentence, not the pieces.
        if settled.text and (words_changed or english_changed or merged) and targets:
            translation = self._start_translation(settled, targets, Priority.SETTLED)
            try:
                async for target, translated in translation.as_ready():
                    if target != source:
                        texts[target] = translated
            finally:
                translation.cancel()
        elif not settled.text:  # the lines go away for every reader
            texts.update(
                {target: Translation("", TranslationPath.ORIGINAL, None, None) for target in targets}
            )
        sent = {
            language: " ".join(line.sent[language] for line in lines if language in line.sent)
            for language in readers
        }
        changed = {
            language: translation
            for language, translation in texts.items()
            if merged or not lines or translation.text != sent.get(language)
        }
        if changed:
            await self._send(settled, changed, None)

    # ------------------------------------------------------------ partials

    async def _deliver_partial(self, partial: SpeechEvent) -> None:
        """Partials go through machine translation only where a model exists, and only when their stable
        part has grown (at a bounded rate, one translation in flight), so translation never makes
        captions lag; readers of those languages keep the previous translated partial meanwhile.
        Whisper's English comes with the final, so until then the listener sees the words as spoken,
        marked as such."""
        plan = self._plan(partial.language)
        at_once = plan.as_spoken(partial.text)
        if at_once:
            await self._send(partial, at_once, None)
        by_model = set(plan.partial_targets)
        if not by_model or (self._partial_translation is not None and not self._partial_translation.done()):
            return
        stable = partial.text[: partial.stable_chars]
        key = self._utterance_id(partial.utterance_seq)
        if self._partial_policy.should_translate(key, stable, time.monotonic()):
            self._partial_translation = asyncio.create_task(
                self._translate_partial(partial, by_model), name=f"partial-{self._speaker.id}"
            )

    async def _translate_partial(self, partial: SpeechEvent, targets: set[str]) -> None:
        try:
            translations = await self._engine.translate(
                partial.text,
                partial.language,
                targets,
                glossary=self._room.glossary,
                priority=Priority.PARTIAL,
            )
        except TranslationBusyError:
            return  # listeners keep the previous translated partial; the final will come regardless
        except Exception as error:
            log.error(
                "partial translation failed for participant %s: %s",
                self._speaker.id,
                describe_exception(error),
            )
            return
        await self._send(partial, translations, None)

    def _drop_partial_translation(self) -> None:
        if self._partial_translation is not None:
            self._partial_translation.cancel()
            self._partial_translation = None

    # ------------------------------------------------------------ to the readers

    def _offer_to_record(self, event: SpeechEvent, original: Translation) -> None:
        if self._recorder is not None:
            now = time.time()
            caption = self._caption(event, original, event.language, ChineseScript.SIMPLIFIED, now, now)
            self._recorder.offer(self._room, self._speaker, caption)

    async def _send(
        self, event: SpeechEvent, translations: dict[str, Translation], line: _Line | None
    ) -> None:
        """Each reader of a language in `translations` gets its caption; `line` (a final's) remembers
        what each language's readers now have, for the settled caption that may follow."""
        translated_at = time.time()
        sent_at = time.time()
        for language, translation in translations.items():
            if line is not None:
                line.sent[language] = translation.text
        for reader in list(self._room.seats.values()):
            translation = translations.get(reader.captions)
            if translation is None:  # another reader's language
                continue
            caption = self._caption(
                event, translation, reader.captions, reader.chinese_script, translated_at, sent_at
            )
            await reader.send(caption)
            self._metrics.observe(
                caption.timings, sent_at, kind=caption.kind.value, path=caption.path.value, listeners=1
            )

    def _caption(
        self,
        event: SpeechEvent,
        translation: Translation,
        language: str,
        script: ChineseScript,
        translated_at: float,
        sent_at: float,
    ) -> CaptionEvent:
        shown_language = event.language if translation.path is TranslationPath.UNTRANSLATED else language
        text = translation.text
        if shown_language == "zh" and script is ChineseScript.TRADITIONAL:
            text = to_traditional(text)  # recognition writes simplified; this reader reads traditional
        heard = event.english_confidence if translation.from_whisper_english else event.confidence
        return CaptionEvent(
            room=self._room.id,
            speaker_id=self._speaker.id,
            speaker_name=self._speaker.name,
            utterance_id=self._utterance_id(event.utterance_seq),
            kind=_KIND[event.kind],
            source_language=event.language,
            caption_language=shown_language,
            text=text,
            stable_chars=min(len(text), _stable_chars(event, translation)),
            path=translation.path,
            note=translation.note.text if translation.note else None,
            note_code=translation.note.code if translation.note else None,
            target_language=language,
            start_s=round((self._offset_s or 0.0) + event.start_s, 3),
            end_s=round((self._offset_s or 0.0) + event.end_s, 3),
            sent_at=sent_at,
            timings={**event.timings, "translated": translated_at},
            replaces=tuple(self._utterance_id(seq) for seq in event.replaces),
            confidence=_probability(heard, translation),
            uncertain=(heard is not None and heard.uncertain) or translation.uncertain,
            model=translation.model,
        )

    def _utterance_id(self, seq: int) -> str:
        return f"{self._speaker.id}-{seq}"


@dataclass(frozen=True)
class _EarlyTranslation:
    """A translation started from a preliminary final (see `SpeakerPipeline._translate_early`)."""

    preliminary: SpeechEvent
    glossary: Glossary
    translation: UtteranceTranslation

    def serves(self, final: SpeechEvent, targets: set[str], glossary: Glossary) -> bool:
        """Whether it is the translation `final` needs: same words, same languages, same glossary."""
        preliminary = self.preliminary
        return (
            (preliminary.utterance_seq, preliminary.text, preliminary.language, preliminary.english)
            == (final.utterance_seq, final.text, final.language, final.english)
            and targets <= self.translation.targets
            and glossary is self.glossary
        )


def _stable_chars(event: SpeechEvent, translation: Translation) -> int:
    """Only text shown as spoken has a stable prefix: a translation of a partial can still reorder as
    words arrive, while a final or settled caption is whole whatever produced it."""
    if event.kind is not SpeechEventKind.PARTIAL:
        return len(translation.text)
    if translation.path in (TranslationPath.ORIGINAL, TranslationPath.UNTRANSLATED):
        return event.stable_chars
    return 0


def _probability(heard: Confidence | None, translation: Translation) -> float | None:
    """The recogniser's mean token probability (its mean log probability, exponentiated), 0 to 1, times
    the translation models' for translated text: the chance that both are right."""
    if heard is None:
        return None
    return round(min(1.0, math.exp(heard.avg_logprob + (translation.logprob or 0.0))), 3)
