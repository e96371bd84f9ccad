"""A scriptable participant over aiohttp + aiortc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import FileAudioTrack, PatternVideoTrack, enable_loopback_candidates, use_fast_audio_level
from protocol import PROTOCOL_VERSION, CaptionEvent, IceServerError, ice_servers_from_json
from protocol.signalling import (
    Error,
    Join,
    Joined,
    Leave,
    ParticipantPublished,
    ParticipantState,
    Publish,
    Published,
    ServerMessage,
    Subscribe,
    Subscribed,
    parse_server_message,
)

log = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 30.0


class JoinError(RuntimeError):
    """The participant could not sign in, join, or publish; the message says why."""


@dataclass
class JoinReport:
    participant_id: str
    room_opened_at: float = 0.0  # server clock: caption start_s/end_s count from here
    playback_started_at: float | None = None
    playback_ended_at: float | None = None
    audio_max_lateness_s: float = 0.0  # how far behind real time the audio was sent, at worst
    # With receive_media: seconds of the other participants' audio received (summed over them), and
    # video frames received.
    audio_received_s: float = 0.0
    video_frames_received: int = 0
    captions: list[CaptionEvent] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # local wall clock when captions[i] arrived


def _split_room_url(room_url: str) -> tuple[str, str]:
    parts = urlsplit(room_url)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in {"http", "https"} or len(segments) != 2 or segments[0] != "r":
        raise JoinError(f"not a room link: {room_url!r} (expected http://HOST:PORT/r/ROOM_ID)")
    return f"{parts.scheme}://{parts.netloc}", segments[1]


async def join_room(
    room_url: str,
    *,
    email: str,
    password: str,
    audio: Path | None,
    speaks: str,
    captions: str,
    linger_s: float = 5.0,
    on_caption: Callable[[str], None] | None = None,
    ice_loopback: bool = True,
    leave: asyncio.Event | None = None,
    receive_media: bool = False,
    video: bool = False,
) -> JoinReport:
    """Sign in, join, publish `audio` as the microphone in real time, collect captions until the file
    has played and `linger_s` has passed, then leave. `on_caption` gets each caption's JSON line.

    With `audio=None` the participant only listens: it stays `linger_s` seconds, or until `leave` is set.
    With `receive_media` it also subscribes to everyone who publishes, as a browser does, and counts
    (then drops) what it receives. With `video` (and `audio`) it also sends a camera: a moving test
    pattern (media.PatternVideoTrack).
    """
    base_url, room_id = _split_room_url(room_url)
    if ice_loopback:
        enable_loopback_candidates()
    use_fast_audio_level()
    track: FileAudioTrack | None = None
    if audio is not None:
        try:
            track = FileAudioTrack.from_path(audio)
        except (OSError, ValueError) as error:  # PyAV raises OSError subclasses for unreadable files
            raise JoinError(f"cannot read audio {audio}: {error}") from error

    # unsafe=True: accept the session cookie from servers addressed by IP (127.0.0.1), as in a LAN or test.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        try:
            async with http.post(
                f"{base_url}/api/login", json={"email": email, "password": password}
            ) as response:
                if response.status != 200:
                    raise JoinError(f"sign-in failed: {await _error_text(response)}")
        except aiohttp.ClientConnectorCertificateError as error:
            raise JoinError(
                f"{base_url} presented a certificate this machine does not trust "
                f"({error.certificate_error}); for a private CA, point SSL_CERT_FILE at its PEM file"
            ) from error
        except aiohttp.ClientConnectionError as error:
            raise JoinError(f"cannot reach {base_url}: {error}") from error
        configuration = await _peer_configuration(http, base_url)
        ws_url = base_url.replace("http", "ws", 1) + f"/ws/rooms/{room_id}"
        try:
            socket = await http.ws_connect(ws_url, heartbeat=20.0)
        except aiohttp.WSServerHandshakeError as error:
            raise JoinError(f"cannot join room {room_id}: HTTP {error.status}") from error
        async with socket:
            camera = PatternVideoTrack() if video and track is not None else None
            return await _take_part(
                socket,
                configuration,
                track,
                camera,
                speaks,
                captions,
                linger_s,
                on_caption,
                leave,
                receive_media,
            )


async def _peer_configuration(http: aiohttp.ClientSession, base_url: str) -> RTCConfiguration:
    """The STUN and TURN servers the server hands this member. Fetched on every join: TURN
    credentials expire (docs/protocol.md, `GET /api/ice`). aiortc uses the first TURN URL only."""
    async with http.get(f"{base_url}/api/ice") as response:
        if response.status != 200:
            raise JoinError(f"cannot get the ICE servers: {await _error_text(response)}")
        try:
            servers = ice_servers_from_json(await response.json())
        except (aiohttp.ContentTypeError, json.JSONDecodeError, IceServerError) as error:
            raise JoinError(f"the server's ICE servers are unusable: {error}") from error
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(server.urls), username=server.username, credential=server.credential)
            for server in servers
        ]
    )


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        return str((await response.json())["error"]["message"])
    except (aiohttp.ContentTypeError, KeyError, TypeError, json.JSONDecodeError):
        return f"HTTP {response.status}"


async def _take_part(
    socket: aiohttp.ClientWebSocketResponse,
    configuration: RTCConfiguration,
    track: FileAudioTrack | None,
    camera: PatternVideoTrack | None,
    speaks: str,
    captions: str,
    linger_s: float,
    on_caption: Callable[[str], None] | None,
    leave: asyncio.Event | None,
    receive_media: bool,
) -> JoinReport:
    replies: asyncio.Queue[Joined | Published | Error] = asyncio.Queue()
    report = JoinReport(participant_id="")
    subscriptions = _Subscriptions(socket, report, configuration) if receive_media else None

    async def read_messages() -> None:
        async for msg in socket:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = parse_server_message(json.loads(msg.data))
            if isinstance(message, CaptionEvent):
                report.captions.append(message)
                report.arrivals.append(time.time())
                if on_caption is not None:
                    on_caption(message.to_json())
            elif isinstance(message, Joined | Published | Error):
                await replies.put(message)
            if subscriptions is not None and message is not None:
                subscriptions.handle(message)

    async def reply(expected: type[Joined] | type[Published]) -> Any:
        try:
            message = await asyncio.wait_for(replies.get(), _REPLY_TIMEOUT_S)
        except TimeoutError as error:
            raise JoinError(
                f"no {expected.type!r} from the server within {_REPLY_TIMEOUT_S:.0f} s"
            ) from error
        if isinstance(message, Error):
            raise JoinError(f"{message.code.value}: {message.message}")
        if not isinstance(message, expected):
            raise JoinError(f"expected {expected.type!r} from the server, got {message.type!r}")
        return message

    reader = asyncio.create_task(read_messages())
    pc = RTCPeerConnection(configuration)
    try:
        await socket.send_json(Join(speaks=speaks, captions=captions).to_dict())
        joined: Joined = await reply(Joined)
        if joined.protocol != PROTOCOL_VERSION:
            raise JoinError(f"server speaks protocol {joined.protocol}, this client {PROTOCOL_VERSION}")
        report.participant_id = joined.participant_id
        report.room_opened_at = joined.room.opened_at

        if track is not None:
            pc.addTransceiver(track, direction="sendonly")
            if camera is not None:
                pc.addTransceiver(camera, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers all candidates here
            await socket.send_json(Publish(sdp=pc.localDescription.sdp).to_dict())
            published: Published = await reply(Published)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=published.sdp, type="answer"))
            try:
                await asyncio.wait_for(track.finished.wait(), track.duration_s + _REPLY_TIMEOUT_S)
            except TimeoutError as error:
                raise JoinError("the audio never reached the server (no media connection)") from error
            report.playback_started_at = track.playback_started_at
            report.playback_ended_at = track.playback_ended_at
            report.audio_max_lateness_s = track.max_lateness_s
        if leave is not None:
            await leave.wait()
        await asyncio.sleep(linger_s)
        await socket.send_json(Leave().to_dict())
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await pc.close()
        if subscriptions is not None:
            await subscriptions.close()
    spoken_s = track.duration_s if track is not None else 0.0
    log.info("left after %.1f s of audio; %d captions received", spoken_s, len(report.captions))
    return report


class _Subscriptions:
    """One receive-only peer connection per other publishing participant, as the browser client has."""

    def __init__(
        self, socket: aiohttp.ClientWebSocketResponse, report: JoinReport, configuration: RTCConfiguration
    ) -> None:
        self._socket = socket
        self._report = report
        self._configuration = configuration
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._connections: list[RTCPeerConnection] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._self_id = ""

    def handle(self, message: ServerMessage) -> None:
        if isinstance(message, Joined):
            self._self_id = message.participant_id
            for participant in message.room.participants:
                self._subscribe_to(participant)
        elif isinstance(message, ParticipantPublished):
            self._subscribe_to(message.participant)
        elif isinstance(message, Subscribed):
            answer = self._answers.get(message.publisher_id)
            if answer is not None and not answer.done():
                answer.set_result(message.sdp)

    def _subscribe_to(self, participant: ParticipantState) -> None:
        if participant.id != self._self_id and participant.publishing and participant.id not in self._answers:
            self._answers[participant.id] = asyncio.get_running_loop().create_future()
            self._start(self._subscribe(participant.id, list(participant.publishing)))

    async def _subscribe(self, publisher_id: str, kinds: list[str]) -> None:
        pc = RTCPeerConnection(self._configuration)
        self._connections.append(pc)
        for kind in kinds:
            pc.addTransceiver(kind, direction="recvonly")
        pc.on("track", lambda track: self._start(self._receive(track)))
        await pc.setLocalDescription(await pc.createOffer())
        await self._socket.send_json(
            Subscribe(publisher_id=publisher_id, sdp=pc.localDescription.sdp).to_dict()
        )
        try:
            sdp = await asyncio.wait_for(self._answers[publisher_id], _REPLY_TIMEOUT_S)
        except TimeoutError:
            log.warning("no answer to the subscription to %s", publisher_id)
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _receive(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self._report.audio_received_s += frame.samples / frame.sample_rate
                else:
                    self._report.video_frames_received += 1

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("receiving media failed: %r", task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in self._connections), return_exceptions=True)
