"""The WebSocket signalling protocol (version `protocol.PROTOCOL_VERSION`; docs/protocol.md).

A client joins a room, publishes its camera and microphone with one SDP offer, and subscribes to each
other participant with one receive-only offer. Captions arrive on the same socket. Messages are parsed
and validated by `protocol.signalling`; a bad one gets an "error" reply and the session carries on.
What a seat is and how it ends is server/calls.py's business; this module only speaks the protocol.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from media import MediaUnavailableError, NegotiationError
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.privacy import describe_exception
from protocol.signalling import (
    Chat,
    ClientMessage,
    Error,
    Join,
    Languages,
    Leave,
    Publish,
    RecordConsent,
    ServerMessage,
    Subscribe,
    Unpublish,
    parse_client_message,
)
from server.calls import Calls, Refused
from server.chat import ChatRelay
from server.context import AppContext
from server.errors import ApiError
from server.rooms import Seat
from server.store import Member, RoomRecord

log = logging.getLogger(__name__)

HEARTBEAT_S = 20.0


class _Socket:
    """The server's side of one page's WebSocket: what a seat sends through."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket

    async def send(self, message: ServerMessage) -> None:
        if not self._socket.closed:
            await self._socket.send_json(message.to_dict())

    async def close(self, code: CloseCode, reason: str = "") -> None:
        await self._socket.close(code=code, message=reason.encode())


class _Session:
    """One member's connection to one room: before `join` it has no seat, and no room is open."""

    def __init__(
        self, calls: Calls, chat: ChatRelay, record: RoomRecord, member: Member, socket: _Socket
    ) -> None:
        self._calls = calls
        self._chat = chat
        self._record = record
        self._member = member
        self._socket = socket
        self.seat: Seat | None = None

    async def receive(self, raw: str, max_bytes: int) -> None:
        """Handle one text frame, answering an error where the message cannot be used."""
        try:
            await self._handle(parse_client_message(raw, max_bytes=max_bytes))
        except Refused as refused:
            # Refused for good: say why, then close as if the server had dismissed a seat.
            await self._socket.send(Error(refused.code, refused.message))
            await self._socket.close(refused.dismissal.close_code, refused.code.value)
        except ProtocolError as error:
            await self._socket.send(Error(error.code, error.message))
        except NegotiationError as error:
            await self._socket.send(Error(ErrorCode.NEGOTIATION_FAILED, str(error)))
        except MediaUnavailableError as error:
            await self._socket.send(Error(ErrorCode.MEDIA_UNAVAILABLE, str(error)))
        except Exception as error:
            # A bug must cost one message, not the participant's call; its text may hold words of the call.
            log.error("message handling failed in room %s: %s", self._record.id, describe_exception(error))
            await self._socket.send(Error(ErrorCode.INTERNAL_ERROR, "the server failed"))

    async def _handle(self, message: ClientMessage) -> None:
        if isinstance(message, Join):
            if self.seat is not None and not self.seat.vacated:
                raise ProtocolError(ErrorCode.ALREADY_JOINED, "already in this room")
            self.seat = await self._calls.take_seat(self._record, self._member, message, self._socket)
            return
        seat = self.seat
        if seat is None or seat.vacated:
            raise ProtocolError(ErrorCode.NOT_JOINED, 'send "join" first')
        if isinstance(message, Publish):
            await self._calls.publish(seat, message.sdp, message.source)
        elif isinstance(message, Unpublish):
            await self._calls.stop_sharing(seat)
        elif isinstance(message, Subscribe):
            await self._calls.subscribe(seat, message.publisher_id, message.sdp, message.source)
        elif isinstance(message, Languages):
            await self._calls.change_languages(seat, message)
        elif isinstance(message, RecordConsent):
            await self._calls.record_consent(seat, message.agree)
        elif isinstance(message, Chat):
            await self._chat.send(seat, message.text)
        elif isinstance(message, Leave):
            await self._calls.vacate(seat)
            await self._socket.close(CloseCode.LEFT)

    async def end(self) -> None:
        """The socket is gone: its seat, if it still has one, is vacated."""
        if self.seat is not None:
            await self._calls.vacate(self.seat)


async def room_socket(request: web.Request) -> web.StreamResponse:
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    record = await context.store.room(request.match_info["room_id"])
    if record is None:
        raise ApiError(404, ErrorCode.NO_ROOM, "no such room")
    limit = context.config.max_message_bytes
    # aiohttp closes the socket on frames over max_msg_size; allow some room above our own limit so an
    # oversized message gets a polite error instead of a dropped call.
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4 * limit)
    await socket.prepare(request)
    connection = _Socket(socket)
    session = _Session(context.calls, context.chat, record, member, connection)
    try:
        async for frame in socket:
            if frame.type == WSMsgType.TEXT:
                await session.receive(frame.data, limit)
            elif frame.type == WSMsgType.BINARY:
                await connection.send(Error(ErrorCode.BAD_MESSAGE, "binary frames are not used"))
            elif frame.type == WSMsgType.ERROR:
                log.info("socket error in room %s: %s", record.id, type(socket.exception()).__name__)
    finally:
        await asyncio.shield(session.end())
    return socket
