"""Live rooms and the seats in them: who is in each call, in which languages, and how to reach them.

A `Seat` is one member's time in one call, from `join` until it is vacated. It is the one owner of
everything that time holds: the connection to the member's page, the media the member publishes, and
the pipeline that turns their speech into captions (server/calls.py opens and vacates seats).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from protocol import Glossary
from protocol.errors import CloseCode, ErrorCode
from protocol.signalling import (
    AUTO_LANGUAGE,
    ChineseScript,
    MediaSource,
    ParticipantState,
    RoomState,
    ServerMessage,
)
from server.store import Member, RoomRecord

log = logging.getLogger(__name__)


class Connection(Protocol):
    """How the server reaches a member's page (the signalling WebSocket)."""

    async def send(self, message: ServerMessage) -> None: ...

    async def close(self, code: CloseCode, reason: str = "") -> None: ...


class CaptionPipeline(Protocol):
    """The seat's speech on its way to captions (server/captioning.py)."""

    def room_changed(self) -> None: ...

    async def finish(self) -> None: ...


@dataclass(frozen=True)
class Dismissal:
    """Why the server ends a seat itself (docs/protocol.md): the error sent, then the close code.
    Clients do not reconnect after these close codes."""

    code: ErrorCode
    message: str
    close_code: CloseCode


REPLACED = Dismissal(ErrorCode.REPLACED, "you joined this room from another connection", CloseCode.REPLACED)
MEMBERSHIP_ENDED = Dismissal(
    ErrorCode.MEMBERSHIP_ENDED, "an administrator ended your membership", CloseCode.MEMBERSHIP_ENDED
)
REMOVED_BY_HOST = Dismissal(ErrorCode.REMOVED, "the host removed you from this call", CloseCode.REMOVED)
REMOVED_BY_ADMIN = Dismissal(
    ErrorCode.REMOVED, "an administrator removed you from this call", CloseCode.REMOVED
)
CALL_ENDED = Dismissal(ErrorCode.CALL_ENDED, "the call was ended for everyone", CloseCode.CALL_ENDED)
SERVER_RESTARTING = Dismissal(
    ErrorCode.SERVER_RESTARTING,
    "the server is restarting; the page joins again when it is back",
    CloseCode.SERVER_RESTARTING,
)


@dataclass(eq=False)
class Seat:
    id: str  # 128 random bits, hex; unique within the room (and in practice everywhere)
    room: LiveRoom
    member: Member
    speaks: str  # a language code, or AUTO_LANGUAGE
    captions: str
    chinese_script: ChineseScript
    connection: Connection
    publishing: tuple[str, ...] = ()  # media kinds of the camera publication: "audio", "video"
    sharing_screen: bool = False
    pipeline: CaptionPipeline | None = None  # while the published microphone is being captioned
    vacated: bool = False  # set the moment the seat is left: nothing more is sent to it

    @property
    def name(self) -> str:
        return self.member.name

    def media_id(self, source: MediaSource) -> str:
        """The id the media workers know a publication by: the seat's for its camera, a derived one
        for its shared screen (a publication of its own, with its own connections)."""
        return self.id if source is MediaSource.CAMERA else f"{self.id}:{source.value}"

    def state(self) -> ParticipantState:
        return ParticipantState(
            self.id, self.name, self.speaks, self.captions, self.publishing, self.sharing_screen
        )

    async def send(self, message: ServerMessage) -> None:
        """Send to this seat's page; a vacated seat gets nothing, and a page that vanished costs the
        sender nothing (the seat is vacated when its socket's handler ends)."""
        if self.vacated:
            return
        try:
            await self.connection.send(message)
        except (ConnectionError, RuntimeError) as error:
            log.info("message not delivered to participant %s: %s", self.id, type(error).__name__)


@dataclass(eq=False)
class LiveRoom:
    """A room with someone in it. Opened by its first seat, closed when its last is vacated."""

    record: RoomRecord
    capacity: int
    opened_at: float = field(default_factory=time.time)
    seats: dict[str, Seat] = field(default_factory=dict)
    glossary: Glossary = field(init=False)

    def __post_init__(self) -> None:
        self.glossary = self.record.glossary

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def full(self) -> bool:
        return len(self.seats) >= self.capacity

    def caption_languages(self) -> set[str]:
        return {seat.captions for seat in self.seats.values()}

    def languages(self) -> frozenset[str]:
        """Every language someone here speaks or reads: what detection may choose from."""
        spoken = {seat.speaks for seat in self.seats.values() if seat.speaks != AUTO_LANGUAGE}
        return frozenset(spoken | self.caption_languages())

    def seat_of(self, member_id: str) -> Seat | None:
        return next((seat for seat in self.seats.values() if seat.member.id == member_id), None)

    def state(self) -> RoomState:
        record = self.record
        return RoomState(
            id=record.id,
            title=record.title,
            kind=record.kind.value,
            created_by=record.created_by,
            created_at=record.created_at,
            opened_at=self.opened_at,
            glossary=tuple(self.glossary.to_list()),
            participants=tuple(seat.state() for seat in self.seats.values()),
        )

    async def broadcast(self, message: ServerMessage, *, exclude: Seat | None = None) -> None:
        await asyncio.gather(
            *(seat.send(message) for seat in list(self.seats.values()) if seat is not exclude)
        )
