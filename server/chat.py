"""Chat in a call: a written message, translated for each reader like a caption.

Doctors type what recognition keeps getting wrong (a drug name, a dose), so a message goes through
the same translation engine as captions, with the room's glossary protected, once per reader
language; each reader gets it in their caption language, or as typed and marked where no model
translates it, with the words as typed alongside.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace

from asr import to_traditional
from mt import Translation, TranslationEngine
from protocol import TranslationPath
from protocol.errors import ErrorCode, ProtocolError
from protocol.privacy import describe_exception
from protocol.signalling import AUTO_LANGUAGE, ChatMessage, ChineseScript
from server.rooms import Seat

log = logging.getLogger(__name__)

# Messages of one participant being translated at once; more are refused until those are delivered,
# so one person pasting in a loop cannot take the engine from everyone's captions.
MAX_IN_FLIGHT = 3


class ChatRelay:
    def __init__(self, engine: TranslationEngine) -> None:
        self._engine = engine
        self._numbers = itertools.count()
        self._in_flight: dict[Seat, set[asyncio.Task[None]]] = {}

    async def send(self, sender: Seat, text: str) -> None:
        """Start delivering `sender`'s message to everyone in their room; returns once it is under way."""
        tasks = self._in_flight.setdefault(sender, set())
        if len(tasks) >= MAX_IN_FLIGHT:
            raise ProtocolError(ErrorCode.CHAT_BUSY, "your earlier messages are still being sent")
        task = asyncio.create_task(self._deliver(sender, text), name=f"chat-{sender.id}")
        tasks.add(task)
        task.add_done_callback(lambda done: self._finished(sender, done))

    async def aclose(self) -> None:
        tasks = [task for tasks in self._in_flight.values() for task in tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, sender: Seat, text: str) -> None:
        room = sender.room
        # A speaker whose language is detected per sentence writes, we assume, in the one they read.
        source = sender.captions if sender.speaks == AUTO_LANGUAGE else sender.speaks
        message_id = f"{sender.id}-c{next(self._numbers)}"
        sent_at = time.time()
        targets = room.caption_languages()

        async def to_readers_of(language: str, translation: Translation) -> None:
            shown_language = source if translation.path is TranslationPath.UNTRANSLATED else language
            message = ChatMessage(
                id=message_id,
                sender_id=sender.id,
                sender_name=sender.name,
                source_language=source,
                language=shown_language,
                text=translation.text,
                original=text,
                path=translation.path,
                note=translation.note.text if translation.note else None,
                model=translation.model,
                sent_at=sent_at,
                note_code=translation.note.code if translation.note else None,
                target_language=language,
            )
            readers = [seat for seat in list(room.seats.values()) if seat.captions == language]
            traditional = (
                replace(message, text=to_traditional(message.text)) if shown_language == "zh" else message
            )
            await asyncio.gather(
                *(
                    seat.send(traditional if seat.chinese_script is ChineseScript.TRADITIONAL else message)
                    for seat in readers
                )
            )

        if source in targets:
            await to_readers_of(source, Translation(text, TranslationPath.ORIGINAL, None, None))
        others = targets - {source}
        if not others:
            return
        translation = self._engine.start(text, source, others, glossary=room.glossary, spoken=False)
        try:
            async for language, translated in translation.as_ready():
                await to_readers_of(language, translated)
        finally:
            translation.cancel()

    def _finished(self, sender: Seat, task: asyncio.Task[None]) -> None:
        tasks = self._in_flight.get(sender)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._in_flight[sender]
        if not task.cancelled() and task.exception() is not None:
            log.error("chat from participant %s failed: %s", sender.id, describe_exception(task.exception()))
