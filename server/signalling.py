"""The WebSocket signalling protocol (version `protocol.PROTOCOL_VERSION`; docs/protocol.md).

A client joins a room, publishes its camera and microphone with one SDP offer, and subscribes to each
other participant with one receive-only offer. Captions arrive on the same socket. Every message is
one JSON object with a "type"; a bad message gets an "error" reply and the session carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from media import MediaHub, MediaUnavailableError, NegotiationError
from protocol import PROTOCOL_VERSION, UnknownLanguageError, language
from protocol.errors import ErrorCode
from server.captioning import SpeakerPipeline
from server.context import AppContext
from server.errors import ApiError
from server.rooms import (
    AUTO_LANGUAGE,
    MEMBERSHIP_ENDED,
    REMOVED,
    REPLACED,
    Dismissal,
    LiveRoom,
    Participant,
    RoomFullError,
)
from server.store import Member, MemberStatus

log = logging.getLogger(__name__)

_MAX_SDP_CHARS = 32_768


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Session:
    """One member's connection to one room."""

    context: AppContext
    room: LiveRoom
    member: Member
    socket: web.WebSocketResponse
    participant: Participant | None = None
    pipeline: SpeakerPipeline | None = None
    _ending: asyncio.Task[None] | None = None  # closing this socket after the server dismissed it

    async def send(self, message: dict[str, Any]) -> None:
        if not self.socket.closed:
            await self.socket.send_json(message)

    @property
    def hub(self) -> MediaHub:
        return self.context.hub

    async def handle(self, raw: str) -> None:
        if len(raw.encode()) > self.context.config.max_message_bytes:
            raise ProtocolError("too_large", f"message over {self.context.config.max_message_bytes} bytes")
        try:
            message = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ProtocolError("bad_json", f"not JSON: {error.msg}") from error
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ProtocolError("bad_message", 'a message is a JSON object with a string "type"')
        kind = message["type"]
        if kind == "join":
            await self._join(message)
        elif self.participant is None:
            raise ProtocolError("not_joined", 'send "join" first')
        elif kind == "publish":
            await self._publish(message)
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "languages":
            await self._change_languages(message)
        elif kind == "leave":
            await self.socket.close()
        else:
            raise ProtocolError("unknown_type", f"unknown message type {kind!r}")

    async def _join(self, message: dict[str, Any]) -> None:
        if self.participant is not None:
            raise ProtocolError("already_joined", "already in this room")
        speaks = _language_field(message, "speaks", allow_auto=True)
        captions = _language_field(message, "captions")
        current = await self.context.store.member(self.member.id)
        if current is None or current.status is not MemberStatus.APPROVED:
            # Ended while this socket was open: the check at connect time no longer holds.
            raise ProtocolError(MEMBERSHIP_ENDED.code, MEMBERSHIP_ENDED.message)
        # The room as it is now: it closes when its last participant leaves, which may have happened
        # since this socket opened.
        self.room = self.context.rooms.open(self.room.record)
        if self.member.id in self.room.removed_members:
            raise ProtocolError(REMOVED.code, REMOVED.message)
        previous = self.room.participant_of(self.member.id)
        if previous is not None and previous.dismiss is not None:
            # The same member again: a reconnect the server has not noticed the drop of yet (its
            # heartbeat takes up to 40 s), or another tab. The newer connection takes the seat.
            await previous.dismiss(REPLACED)
            self.room = self.context.rooms.open(self.room.record)  # again: that may have been its last one
        participant = Participant(
            secrets.token_hex(4), self.member, speaks, captions, self.send, dismiss=self._dismiss
        )
        try:
            self.room.add(participant)
        except RoomFullError as error:
            raise ProtocolError("room_full", str(error)) from error
        self.participant = participant
        log.info("participant %s joined room %s (%s→%s)", participant.id, self.room.id, speaks, captions)
        await self.send(
            {
                "type": "joined",
                "protocol": PROTOCOL_VERSION,
                "participant_id": participant.id,
                "room": self.room.public(),
            }
        )
        await self.room.broadcast(
            {"type": "participant_joined", "participant": participant.public()}, exclude=participant.id
        )
        self.context.room_changed(self.room)

    async def _publish(self, message: dict[str, Any]) -> None:
        assert self.participant is not None
        answer, kinds = await self.hub.publish(self.room.id, self.participant.id, _sdp_field(message))
        self.participant.publishing = kinds
        await self.send({"type": "published", "sdp": answer, "kinds": kinds})
        if "audio" in kinds:
            self.pipeline = self.context.start_speech(self.room, self.participant)
        await self.room.broadcast(
            {"type": "participant_published", "participant": self.participant.public()},
            exclude=self.participant.id,
        )

    async def _subscribe(self, message: dict[str, Any]) -> None:
        assert self.participant is not None
        publisher_id = message.get("publisher_id")
        if not isinstance(publisher_id, str) or publisher_id not in self.room.participants:
            raise ProtocolError("unknown_participant", f"no participant {publisher_id!r} in this room")
        if publisher_id == self.participant.id:
            raise ProtocolError("bad_message", "cannot subscribe to yourself")
        answer = await self.hub.subscribe(
            self.room.id, self.participant.id, publisher_id, _sdp_field(message)
        )
        await self.send({"type": "subscribed", "publisher_id": publisher_id, "sdp": answer})

    async def _change_languages(self, message: dict[str, Any]) -> None:
        assert self.participant is not None
        if "speaks" in message and message["speaks"] != self.participant.speaks:
            raise ProtocolError("bad_message", "to change the spoken language, leave and join again")
        self.participant.captions = _language_field(message, "captions")
        await self.room.broadcast({"type": "participant_updated", "participant": self.participant.public()})
        self.context.room_changed(self.room)

    async def _dismiss(self, why: Dismissal) -> None:
        await self.close()
        # A replaced connection is often dead (that is why its member is back): neither telling it
        # nor waiting for its closing handshake may hold up the new one, or the administrator.
        self._ending = asyncio.create_task(self._end_dismissed(why))

    async def _end_dismissed(self, why: Dismissal) -> None:
        try:
            await self.send({"type": "error", "code": why.code, "message": why.message})
            await self.socket.close(code=why.close_code, message=why.code.encode())
        except (ConnectionError, RuntimeError) as error:  # already gone
            log.info(
                "dismissed (%s) connection in room %s was already gone: %s",
                why.code,
                self.room.id,
                type(error).__name__,
            )

    async def close(self) -> None:
        """Leave the room. Speech already heard is still recognised and delivered to the others."""
        participant, pipeline = self.participant, self.pipeline
        if participant is None:
            self.context.rooms.discard_if_empty(self.room)  # opened for a socket that never joined
            return
        self.participant = self.pipeline = None  # once, whether the socket ended or was replaced
        if pipeline is not None:
            await pipeline.finish()
            self.context.pipelines.pop(participant.id, None)
        self.room.participants.pop(participant.id, None)
        await self.hub.remove(participant.id)
        await self.room.broadcast({"type": "participant_left", "participant_id": participant.id})
        self.context.room_changed(self.room)
        self.context.rooms.discard_if_empty(self.room)
        log.info("participant %s left room %s", participant.id, self.room.id)


def _language_field(message: dict[str, Any], name: str, *, allow_auto: bool = False) -> str:
    if allow_auto and message.get(name) == AUTO_LANGUAGE:
        return AUTO_LANGUAGE
    try:
        return language(message.get(name)).code
    except UnknownLanguageError as error:
        raise ProtocolError("unknown_language", f"{name}: {error}") from error


def _sdp_field(message: dict[str, Any]) -> str:
    sdp = message.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ProtocolError("bad_sdp", '"sdp" must be an SDP offer starting with "v=0"')
    if len(sdp) > _MAX_SDP_CHARS:
        raise ProtocolError("bad_sdp", f"SDP longer than {_MAX_SDP_CHARS} characters")
    return sdp


async def room_socket(request: web.Request) -> web.StreamResponse:
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    record = await context.store.room(request.match_info["room_id"])
    if record is None:
        raise ApiError(404, ErrorCode.NO_ROOM, "no such room")
    # aiohttp closes the socket on frames over max_msg_size; allow some room above our own limit so an
    # oversized message gets a polite error instead of a dropped call.
    socket = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4 * context.config.max_message_bytes)
    await socket.prepare(request)
    session = _Session(context, context.rooms.open(record), member, socket)
    try:
        async for msg in socket:
            if msg.type == WSMsgType.TEXT:
                try:
                    await session.handle(msg.data)
                except ProtocolError as error:
                    await session.send({"type": "error", "code": error.code, "message": error.message})
                except NegotiationError as error:
                    await session.send({"type": "error", "code": "negotiation_failed", "message": str(error)})
                except MediaUnavailableError as error:
                    await session.send({"type": "error", "code": "media_unavailable", "message": str(error)})
                except Exception:
                    # A bug must cost one message, not the participant's call.
                    log.exception("message handling failed in room %s", record.id)
                    await session.send(
                        {"type": "error", "code": "internal_error", "message": "the server failed"}
                    )
            elif msg.type == WSMsgType.BINARY:
                await session.send(
                    {"type": "error", "code": "bad_message", "message": "binary frames are not used"}
                )
            elif msg.type == WSMsgType.ERROR:
                log.info("socket error in room %s: %s", record.id, type(socket.exception()).__name__)
    finally:
        await asyncio.shield(session.close())
    return socket
