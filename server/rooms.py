"""Live rooms: who is in each call, which languages they speak and read, and how to reach them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import Glossary
from server.store import Member, RoomKind, RoomRecord

AUTO_LANGUAGE = "auto"  # a participant who lets recognition detect the language of each utterance

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class RoomFullError(Exception):
    pass


@dataclass(frozen=True)
class Dismissal:
    """Why the server ends a participant's connection itself (docs/protocol.md). Clients do not
    reconnect after `close_code`: a replaced connection would take the seat back from the newer one,
    and a removed participant or a member whose membership ended would be refused anyway."""

    code: str  # the "error" message's code, sent before the socket closes
    message: str
    close_code: int  # the WebSocket close code


REPLACED = Dismissal("replaced", "you joined this room from another connection", 4001)
MEMBERSHIP_ENDED = Dismissal("membership_ended", "an administrator ended your membership", 4003)
REMOVED = Dismissal("removed", "the host removed you from this call", 4004)


@dataclass
class Participant:
    id: str
    member: Member
    speaks: str
    captions: str
    send: Send
    publishing: list[str] = field(default_factory=list)
    # Ends this participant's connection: when its member joins the room again from another one, the
    # host removes them, or their membership ends.
    dismiss: Callable[[Dismissal], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        return self.member.name

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "speaks": self.speaks,
            "captions": self.captions,
            "publishing": list(self.publishing),
        }


@dataclass
class LiveRoom:
    record: RoomRecord
    capacity: int
    opened_at: float = field(default_factory=time.time)
    participants: dict[str, Participant] = field(default_factory=dict)
    glossary: Glossary = field(init=False)
    # Members the host removed: kept out until the call ends (the room closes when its last
    # participant leaves, and this set with it).
    removed_members: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.glossary = self.record.glossary

    @property
    def id(self) -> str:
        return self.record.id

    def caption_languages(self) -> set[str]:
        return {p.captions for p in self.participants.values()}

    def languages(self) -> frozenset[str]:
        """Every language someone here speaks or reads: what detection may choose from."""
        spoken = {p.speaks for p in self.participants.values() if p.speaks != AUTO_LANGUAGE}
        return frozenset(spoken | self.caption_languages())

    def participant_of(self, member_id: str) -> Participant | None:
        return next((p for p in self.participants.values() if p.member.id == member_id), None)

    def add(self, participant: Participant) -> None:
        if len(self.participants) >= self.capacity:
            raise RoomFullError(f"this {self.record.kind.value} is full ({self.capacity} participants)")
        self.participants[participant.id] = participant

    def public(self) -> dict[str, Any]:
        return {
            **self.record.public(),
            "glossary": self.glossary.to_list(),
            "opened_at": self.opened_at,
            "participants": [p.public() for p in self.participants.values()],
        }

    async def broadcast(self, message: dict[str, Any], *, exclude: str | None = None) -> None:
        targets = [p for pid, p in self.participants.items() if pid != exclude]
        results = await asyncio.gather(*(p.send(message) for p in targets), return_exceptions=True)
        for participant, result in zip(targets, results, strict=True):
            if isinstance(result, Exception):
                log.info("could not reach participant %s: %s", participant.id, type(result).__name__)


class RoomRegistry:
    """The rooms that have someone in them. A room is opened by its first participant and closed
    when the last one leaves."""

    def __init__(self, max_review_participants: int) -> None:
        self._rooms: dict[str, LiveRoom] = {}
        self._max_review = max_review_participants

    def get(self, room_id: str) -> LiveRoom | None:
        return self._rooms.get(room_id)

    def open(self, record: RoomRecord) -> LiveRoom:
        room = self._rooms.get(record.id)
        if room is None:
            capacity = 2 if record.kind is RoomKind.CONSULTATION else self._max_review
            room = self._rooms[record.id] = LiveRoom(record, capacity)
        return room

    def discard_if_empty(self, room: LiveRoom) -> None:
        if not room.participants and self._rooms.get(room.id) is room:
            del self._rooms[room.id]

    @property
    def rooms(self) -> list[LiveRoom]:
        return list(self._rooms.values())

    def participants_of(self, member_id: str) -> list[Participant]:
        """The member's seats in every live room."""
        seats = (room.participant_of(member_id) for room in self._rooms.values())
        return [seat for seat in seats if seat is not None]
