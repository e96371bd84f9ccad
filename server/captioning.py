"""From one speaker's microphone to every listener's caption.

    published audio track ─► media.tap_track ─► asr.RecognitionStream ─► Transcript
        ─► mt.TranslationEngine (once per distinct caption language) ─► CaptionEvent per listener

One `SpeakerPipeline` per speaking participant. It never blocks the event loop: recognition and
translation run on their engines' worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiortc.mediastreams import MediaStreamTrack

from asr import RecognitionStream, SpeechRecognizer, Transcript
from media import tap_track
from mt import Translation, TranslationEngine
from protocol import CaptionEvent, TranslationPath
from server.rooms import LiveRoom, Participant

log = logging.getLogger(__name__)

_FINISH_TIMEOUT_S = 30.0


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
        audio: MediaStreamTrack,
        recognizer: SpeechRecognizer,
        engine: TranslationEngine,
        missing_models: MissingModelReporter,
    ) -> None:
        self._room = room
        self._speaker = speaker
        self._engine = engine
        self._missing_models = missing_models
        self._stream: RecognitionStream = recognizer.open_stream(
            language=speaker.speaks, english_wanted=self._english_wanted()
        )
        # Stream time counts from the first sample; captions count from the room's opening.
        self._offset_s = time.time() - room.opened_at
        self._tap = asyncio.create_task(tap_track(audio, self._stream.push), name=f"tap-{speaker.id}")
        self._delivery = asyncio.create_task(self._deliver_all(), name=f"captions-{speaker.id}")

    def listeners_changed(self) -> None:
        self._stream.english_wanted = self._english_wanted()

    def _english_wanted(self) -> bool:
        """Whisper's speech-to-English costs a second decode, so ask for it only when someone reads
        English and no machine translation model covers the pair."""
        source = self._speaker.speaks
        if source == "en" or "en" not in self._room.caption_languages():
            return False
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
        async for transcript in self._stream:
            try:
                await self._deliver(transcript)
            except Exception:
                log.exception("caption delivery failed for participant %s", self._speaker.id)

    async def _deliver(self, transcript: Transcript) -> None:
        listeners = list(self._room.participants.values())
        if not listeners:
            return
        targets = {listener.captions for listener in listeners}
        translations = await self._translate(transcript, targets)
        sent_at = time.time()
        for listener in listeners:
            translation = translations[listener.captions]
            event = CaptionEvent(
                room=self._room.id,
                speaker_id=self._speaker.id,
                speaker_name=self._speaker.name,
                utterance_id=f"{self._speaker.id}-{transcript.utterance_seq}",
                final=transcript.final,
                source_language=transcript.language,
                caption_language=transcript.language
                if translation.path is TranslationPath.UNTRANSLATED
                else listener.captions,
                text=translation.text,
                stable_chars=transcript.stable_chars
                if translation.path is not TranslationPath.MACHINE
                else 0,
                path=translation.path,
                note=translation.note,
                start_s=round(self._offset_s + transcript.start_s, 3),
                end_s=round(self._offset_s + transcript.end_s, 3),
                sent_at=sent_at,
            )
            try:
                await listener.send(event.to_dict())
            except Exception as error:  # a listener that vanished must not stop the others' captions
                log.info("caption not delivered to %s: %s", listener.id, type(error).__name__)

    async def _translate(self, transcript: Transcript, targets: set[str]) -> dict[str, Translation]:
        source = transcript.language
        if transcript.final:
            translations = await self._engine.translate(
                transcript.text, source, targets, whisper_english=transcript.english
            )
        else:
            translations = await self._translate_partial(transcript, targets)
        for target, translation in translations.items():
            if translation.path is TranslationPath.UNTRANSLATED and transcript.final:
                self._missing_models.report(source, target)
        return translations

    async def _translate_partial(self, transcript: Transcript, targets: set[str]) -> dict[str, Translation]:
        """Partials go through machine translation only where a model exists; Whisper's English comes
        with the final, so until then the listener sees the words as spoken, marked as such."""
        source = transcript.language
        by_model = {
            t
            for t in targets
            if self._engine.route(source, t, whisper_english=False).path
            in (TranslationPath.MACHINE, TranslationPath.PIVOT, TranslationPath.ORIGINAL)
        }
        translations = await self._engine.translate(transcript.text, source, by_model) if by_model else {}
        for target in targets - by_model:
            whisper_later = (
                self._engine.route(source, target, whisper_english=True).path is TranslationPath.WHISPER
            )
            note = (
                "translation follows when the sentence ends"
                if whisper_later
                else f"not translated: no model for {source}→{target}"
            )
            translations[target] = Translation(transcript.text, TranslationPath.UNTRANSLATED, None, note)
        return translations
