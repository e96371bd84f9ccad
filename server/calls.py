"""Calls: every live room and every seat in it, from joining to leaving, in one place.

A seat is vacated in one way, whatever the reason (the member left, their connection dropped, they
joined from elsewhere, the host removed them, the call ended, their membership ended, the server is
shutting down): it leaves its room at once, so it gets no more captions; its media connections close
at once; and the captions of what its member already said are still delivered to the others, in the
background, so neither the person who dismissed them nor their own reconnection waits for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np

from media import MediaHub
from protocol import PROTOCOL_VERSION, Glossary
from protocol.errors import ErrorCode, ProtocolError
from protocol.signalling import (
    Error,
    GlossaryUpdated,
    Join,
    Joined,
    Languages,
    MediaSource,
    MuteRequested,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantPublished,
    ParticipantUpdated,
    Published,
    Subscribed,
)
from server.records import RecordKeeper
from server.rooms import (
    CALL_ENDED,
    MEMBERSHIP_ENDED,
    REMOVED_BY_ADMIN,
    REMOVED_BY_HOST,
    REPLACED,
    SERVER_RESTARTING,
    CaptionPipeline,
    Connection,
    Dismissal,
    LiveRoom,
    Seat,
)
from server.store import Member, MemberStatus, RoomKind, RoomRecord, Store

log = logging.getLogger(__name__)

# Starts a seat's caption pipeline from its microphone's 16 kHz audio (server/captioning.py).
StartCaptions = Callable[[LiveRoom, Seat, AsyncIterator[np.ndarray]], CaptionPipeline]

# On shutdown: how long speech already heard may take to reach everyone as captions, and how long
# pages are given to hear that the server is restarting; within the 5 s an operator's restart allows.
SHUTDOWN_FLUSH_S = 2.5
SHUTDOWN_NOTICE_S = 0.5


class Refused(ProtocolError):
    """A join refused for good: the page is told why and its socket closed with the close code."""

    def __init__(self, dismissal: Dismissal) -> None:
        super().__init__(dismissal.code, dismissal.message)
        self.dismissal = dismissal


class Calls:
    def __init__(
        self,
        *,
        store: Store,
        hub: MediaHub,
        start_captions: StartCaptions,
        records: RecordKeeper,
        max_review_participants: int,
    ) -> None:
        self._store = store
        self._hub = hub
        self._start_captions = start_captions
        self._records = records
        self._max_review = max_review_participants
        self._rooms: dict[str, LiveRoom] = {}
        # Flushes of vacated speakers' captions and notices to dismissed pages: awaited at shutdown.
        self._background: set[asyncio.Task[None]] = set()
        hub.on_lost(self._media_lost)

    # ------------------------------------------------------------ what is live

    def room(self, room_id: str) -> LiveRoom | None:
        return self._rooms.get(room_id)

    @property
    def rooms(self) -> list[LiveRoom]:
        return list(self._rooms.values())

    def seats(self) -> list[Seat]:
        return [seat for room in self._rooms.values() for seat in room.seats.values()]

    def seats_of(self, member_id: str) -> list[Seat]:
        return [seat for seat in self.seats() if seat.member.id == member_id]

    def room_changed(self, room: LiveRoom) -> None:
        """Someone joined, left or changed languages, or the glossary changed."""
        for seat in room.seats.values():
            if seat.pipeline is not None:
                seat.pipeline.room_changed()

    async def set_glossary(self, room: LiveRoom, glossary: Glossary) -> None:
        room.glossary = glossary
        self.room_changed(room)
        await room.broadcast(GlossaryUpdated(tuple(glossary.to_list())))

    # ------------------------------------------------------------ a seat's life

    async def take_seat(self, record: RoomRecord, member: Member, join: Join, connection: Connection) -> Seat:
        """Seat `member` in the room, replacing a seat they already have there. Raises Refused when
        they may not join (membership ended, removed from this call) and ProtocolError(room_full)."""
        current = await self._store.member(member.id)
        if current is None or current.status is not MemberStatus.APPROVED:
            # Ended while this socket was open: the check at connect time no longer holds.
            raise Refused(MEMBERSHIP_ENDED)
        if await self._store.is_removed(record.id, member.id):
            raise Refused(REMOVED_BY_HOST)
        previous = self._rooms[record.id].seat_of(member.id) if record.id in self._rooms else None
        if previous is not None:
            # The same member again: a reconnect the server has not noticed the drop of yet (its
            # heartbeat takes up to 40 s), or another tab. The newer connection takes the seat.
            await self.vacate(previous, REPLACED)
        room = self._open(record)
        if room.full:
            self._close_if_empty(room)
            raise ProtocolError(
                ErrorCode.ROOM_FULL, f"this {record.kind.value} is full ({room.capacity} participants)"
            )
        seat = Seat(
            secrets.token_hex(16), room, member, join.speaks, join.captions, join.chinese_script, connection
        )
        room.seats[seat.id] = seat
        log.info("participant %s joined room %s (%s→%s)", seat.id, room.id, seat.speaks, seat.captions)
        await seat.send(Joined(seat.id, room.state(), PROTOCOL_VERSION))
        await room.broadcast(ParticipantJoined(seat.state()), exclude=seat)
        self.room_changed(room)
        await self._records.seated(seat)  # while a record runs, they are asked before anything is kept
        return seat

    async def publish(self, seat: Seat, offer_sdp: str, source: MediaSource) -> None:
        """Negotiate the seat's microphone and camera (captioned), or its shared screen."""
        if source is MediaSource.SCREEN:
            await self._share_screen(seat, offer_sdp)
            return
        if seat.publishing:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "already publishing; leave and join again to change")
        answer, kinds = await self._hub.publish(seat.room.id, seat.id, offer_sdp)
        if seat.vacated:  # removed or replaced while negotiating: what was just set up goes too
            await self._hub.remove(seat.id)
            return
        seat.publishing = tuple(kinds)
        await seat.send(Published(answer, seat.publishing, source))
        if "audio" in kinds:
            seat.pipeline = self._start_captions(seat.room, seat, self._hub.listen(seat.id))
        await seat.room.broadcast(ParticipantPublished(seat.state()), exclude=seat)

    async def _share_screen(self, seat: Seat, offer_sdp: str) -> None:
        if seat.sharing_screen:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "already sharing a screen; stop sharing it first")
        media_id = seat.media_id(MediaSource.SCREEN)
        # A screen's sound (a tab playing a video) is relayed to the others, never captioned.
        answer, kinds = await self._hub.publish(seat.room.id, media_id, offer_sdp, listen=False)
        if seat.vacated:
            await self._hub.remove(media_id)
            return
        seat.sharing_screen = True
        await seat.send(Published(answer, tuple(kinds), MediaSource.SCREEN))
        await seat.room.broadcast(ParticipantPublished(seat.state()), exclude=seat)

    async def stop_sharing(self, seat: Seat) -> None:
        if not seat.sharing_screen:
            return
        seat.sharing_screen = False
        await self._hub.remove(seat.media_id(MediaSource.SCREEN))
        await seat.room.broadcast(ParticipantUpdated(seat.state()))

    async def subscribe(self, seat: Seat, publisher_id: str, offer_sdp: str, source: MediaSource) -> None:
        publisher = seat.room.seats.get(publisher_id)
        if publisher is None:
            raise ProtocolError(ErrorCode.UNKNOWN_PARTICIPANT, "no such participant in this room")
        if publisher is seat:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "cannot subscribe to yourself")
        if source is MediaSource.SCREEN and not publisher.sharing_screen:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "that participant is not sharing a screen")
        answer = await self._hub.subscribe(seat.room.id, seat.id, publisher.media_id(source), offer_sdp)
        await seat.send(Subscribed(publisher.id, answer, source))

    async def ask_to_mute(self, seat: Seat, *, by: Member) -> None:
        await seat.send(MuteRequested(by.name))

    async def record_consent(self, seat: Seat, agree: bool) -> None:
        await self._records.answer(seat, agree)

    async def change_languages(self, seat: Seat, languages: Languages) -> None:
        seat.captions = languages.captions
        seat.chinese_script = languages.chinese_script
        await seat.room.broadcast(ParticipantUpdated(seat.state()))
        self.room_changed(seat.room)

    async def vacate(self, seat: Seat, why: Dismissal | None = None) -> None:
        """The seat's time in the call ends now (see the module's docstring). `why`: the server's
        reason, told to the page before its socket is closed with the reason's close code."""
        if seat.vacated:
            return
        seat.vacated = True
        room = seat.room
        room.seats.pop(seat.id, None)
        pipeline, seat.pipeline = seat.pipeline, None
        if why is not None:
            # A replaced connection is often dead (that is why its member is back): neither telling it
            # nor waiting for its closing handshake may hold up the new one, or the host.
            self._in_background(_tell_and_close(seat.connection, why), f"dismiss-{seat.id}")
        await self._hub.remove(seat.id)
        if seat.sharing_screen:
            await self._hub.remove(seat.media_id(MediaSource.SCREEN))
        if pipeline is not None:
            self._in_background(pipeline.finish(), f"flush-{seat.id}")
        await room.broadcast(ParticipantLeft(seat.id))
        self.room_changed(room)
        await self._records.left(seat)  # the record may resume without them, or end with the call
        self._close_if_empty(room)
        log.info("participant %s left room %s%s", seat.id, room.id, f" ({why.code})" if why else "")

    async def remove(self, room: LiveRoom, seat: Seat, *, by: Member) -> None:
        """The host or an administrator removes someone: kept out of this room until the call is ended
        for everyone, restarts included."""
        await self._store.add_removal(room.id, seat.member.id)
        by_host = by.id == room.record.created_by
        await self.vacate(seat, REMOVED_BY_HOST if by_host else REMOVED_BY_ADMIN)

    async def end(self, record: RoomRecord) -> int:
        """End the call for everyone in it and lift the room's removals; how many were in it."""
        await self._store.clear_removals(record.id)
        room = self._rooms.get(record.id)
        seats = list(room.seats.values()) if room is not None else []
        await asyncio.gather(*(self.vacate(seat, CALL_ENDED) for seat in seats))
        return len(seats)

    async def membership_ended(self, member_id: str) -> None:
        await asyncio.gather(*(self.vacate(seat, MEMBERSHIP_ENDED) for seat in self.seats_of(member_id)))

    async def shutdown(self) -> None:
        """The server is stopping: captions of what was already said go out first, then every page is
        told the server is restarting (its socket closed with close code 1012: it joins again)."""
        seats = self.seats()
        pipelines = [seat.pipeline for seat in seats if seat.pipeline is not None]
        for seat in seats:
            seat.pipeline = None
        flushes = [asyncio.ensure_future(pipeline.finish()) for pipeline in pipelines]
        if flushes:
            _, late = await asyncio.wait(flushes, timeout=SHUTDOWN_FLUSH_S)
            if late:
                log.warning("shutdown: %d speaker(s) still had speech to caption; dropped", len(late))
                for task in late:
                    task.cancel()
        await asyncio.gather(*(self.vacate(seat, SERVER_RESTARTING) for seat in seats))
        if self._background:
            _, late = await asyncio.wait(list(self._background), timeout=SHUTDOWN_NOTICE_S)
            for task in late:
                task.cancel()

    # ------------------------------------------------------------ internals

    def _open(self, record: RoomRecord) -> LiveRoom:
        room = self._rooms.get(record.id)
        if room is None:
            capacity = 2 if record.kind is RoomKind.CONSULTATION else self._max_review
            room = self._rooms[record.id] = LiveRoom(record, capacity)
        return room

    def _close_if_empty(self, room: LiveRoom) -> None:
        if not room.seats and self._rooms.get(room.id) is room:
            del self._rooms[room.id]

    def _media_lost(self, participant_ids: list[str]) -> None:
        """Their media worker died, with their connections: each must publish (and subscribe) again.
        What they were saying when it died is still captioned."""
        lost = set(participant_ids)
        for seat in self.seats():
            if seat.id not in lost:
                continue
            pipeline, seat.pipeline = seat.pipeline, None
            seat.publishing = ()
            seat.sharing_screen = False
            if pipeline is not None:
                self._in_background(pipeline.finish(), f"flush-{seat.id}")
            notice = Error(
                ErrorCode.MEDIA_LOST, "the server's media process for this call failed; publish again"
            )
            self._in_background(seat.send(notice), f"media-lost-{seat.id}")

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Only the type: an exception's text may hold words of the call.
            log.error("%s failed: %s", task.get_name(), type(task.exception()).__name__)


async def _tell_and_close(connection: Connection, why: Dismissal) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):  # already gone
        await connection.send(Error(why.code, why.message))
        await connection.close(why.close_code, why.code.value)
