"""A seat's life in a call: removal takes effect at once even while the person speaks, a media worker's
death is survived by publishing again on the same socket, and nothing leaks when everyone has left.

The server is the real one, with real media workers and real WebRTC clients (aiortc); the recogniser
is a stand-in that turns every audio chunk it hears into a partial caption, because what is under test
is how a seat's media and captions start and stop, not recognition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from conditions import wait_until
from mt_models import build_marian_pair, build_multilingual, replace_calls
from rest_app import admin_client, cheap_passwords, member_client
from test_api import _receive

from asr import RecognizerStats, SpeechEvent, SpeechEventKind
from media import FileAudioTrack, enable_loopback_candidates
from mt import TranslationEngine
from server.app import create_app
from server.config import Config
from server.context import AppContext

# What the stand-in "hears": never a word anyone said; the privacy of words is tested elsewhere.
HEARD = "audio heard"


class _EchoStream:
    """A recognition stream that makes a partial of every pushed chunk and, when finished, a final;
    `finish()` may be held back by the test, as a slow decode of the last utterance would be."""

    def __init__(self, recognizer: _EchoRecognizer, language: str) -> None:
        self._recognizer = recognizer
        self._language = language
        self._out: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self.pushed = 0
        self.finished = False
        self.english_wanted = False
        self.glossary: tuple[str, ...] = ()
        self.allowed_languages: frozenset[str] | None = None
        self.on_tentative_final: Any = None

    async def push(self, samples: np.ndarray) -> None:
        self.pushed += len(samples)
        self._recognizer.heard.set()
        self._out.put_nowait(self._transcript(final=False))

    async def finish(self) -> None:
        if self.finished:
            return
        await self._recognizer.release_finals.wait()
        if not self.finished:
            self.finished = True
            self._out.put_nowait(self._transcript(final=True))
            self._out.put_nowait(None)

    def _transcript(self, *, final: bool) -> SpeechEvent:
        text = self._recognizer.text
        kind = SpeechEventKind.FINAL if final else SpeechEventKind.PARTIAL
        return SpeechEvent(kind, 0, text, len(text), self._language, 0.0, self.pushed / 16_000)

    async def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        while (transcript := await self._out.get()) is not None:
            yield transcript


class _EchoRecognizer:
    def __init__(self, text: str = HEARD) -> None:
        self.text = text
        self.streams: list[_EchoStream] = []
        self.heard = asyncio.Event()
        self.release_finals = asyncio.Event()
        self.release_finals.set()

    def open_stream(self, *, language: str | None, **_: Any) -> _EchoStream:
        stream = _EchoStream(self, language or "en")
        self.streams.append(stream)
        return stream

    def stats(self) -> RecognizerStats:
        active = sum(not stream.finished for stream in self.streams)
        return RecognizerStats(active, 0, 0, 0, 0.0, 0, 0.0, 0, 0)

    async def aclose(self) -> None:
        return None


async def _start(tmp_path: Path, recognizer: _EchoRecognizer, engine: TranslationEngine) -> TestServer:
    config = Config(data_dir=tmp_path, max_message_bytes=65_536, media_workers=1)
    app: web.Application = create_app(
        config,
        recognizer=recognizer,  # type: ignore[arg-type]
        engine=engine,
        passwords=cheap_passwords(),
    )
    server = TestServer(app)
    await server.start_server()
    enable_loopback_candidates()
    return server


@pytest.fixture
async def echo_server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, _EchoRecognizer]]:
    recognizer = _EchoRecognizer()
    server = await _start(tmp_path, recognizer, TranslationEngine([]))
    yield server, recognizer
    await server.close()


def _tone(path: Path, seconds: float) -> Path:
    """A long 16-bit WAV of a quiet tone: audio that keeps flowing for as long as the test needs."""
    from media.file_source import write_wav

    rate = 48_000
    t = np.arange(int(seconds * rate)) / rate
    return write_wav(path, (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), rate)


async def _publish(socket: Any, *tracks: Any) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    await socket.send_json({"type": "publish", "sdp": pc.localDescription.sdp})
    published = await _next_of(socket, "published")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=published["sdp"], type="answer"))
    return pc


async def _next_of(socket: Any, kind: str) -> dict[str, Any]:
    """The next message of type `kind`, skipping others (captions, participant updates)."""
    while True:
        message = await _receive(socket)
        if message["type"] == kind or (message["type"] == "error" and kind != "error"):
            assert message["type"] == kind, message
            return message


async def _join(client: Any, room_id: str) -> tuple[Any, str]:
    socket = await client.ws_connect(f"/ws/rooms/{room_id}")
    await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    joined = await _next_of(socket, "joined")
    return socket, str(joined["participant_id"])


async def test_a_removed_speaker_gets_nothing_after_the_removal_is_acknowledged(
    echo_server: tuple[TestServer, _EchoRecognizer], tmp_path: Path
) -> None:
    server, recognizer = echo_server
    host = await admin_client(server, "host@example.org")
    speaker = await member_client(server, "speaker@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    host_socket, _ = await _join(host, room["id"])
    camera = await _publish(host_socket, VideoStreamTrack())
    speaker_socket, speaker_id = await _join(speaker, room["id"])

    # The speaker speaks (captions of their own words come back to them) and watches the host's camera.
    microphone = await _publish(speaker_socket, FileAudioTrack.from_path(_tone(tmp_path / "tone.wav", 120)))
    watching = RTCPeerConnection()
    watching.addTransceiver("video", direction="recvonly")
    frames: list[float] = []
    video_flowing = asyncio.Event()
    video_ended = asyncio.Event()
    receivers: list[asyncio.Task[None]] = []

    @watching.on("track")
    def on_track(track: Any) -> None:
        async def count() -> None:
            try:
                while True:
                    await track.recv()
                    frames.append(asyncio.get_running_loop().time())
                    if len(frames) >= 5:
                        video_flowing.set()
            except MediaStreamError:
                video_ended.set()

        receivers.append(asyncio.ensure_future(count()))

    await watching.setLocalDescription(await watching.createOffer())
    publisher_id = next(
        p["id"]
        for p in (await (await host.get(f"/api/rooms/{room['id']}")).json())["room"]["participants"]
        if p["id"] != speaker_id
    )
    await speaker_socket.send_json(
        {"type": "subscribe", "publisher_id": publisher_id, "sdp": watching.localDescription.sdp}
    )
    subscribed = await _next_of(speaker_socket, "subscribed")
    await watching.setRemoteDescription(RTCSessionDescription(sdp=subscribed["sdp"], type="answer"))
    await _next_of(speaker_socket, "caption")
    await asyncio.wait_for(video_flowing.wait(), 20)

    # Their last utterance takes long to decode: removal must not wait for it.
    recognizer.release_finals.clear()
    # (Before seats had one owner, this waited for that decode: up to 30 s.)
    response = await asyncio.wait_for(host.delete(f"/api/rooms/{room['id']}/participants/{speaker_id}"), 20)
    assert response.status == 200
    acknowledged = asyncio.get_running_loop().time()
    acknowledged_at = time.time()

    unread: list[dict[str, Any]] = []
    while (message := await speaker_socket.receive(timeout=10)).type == WSMsgType.TEXT:
        unread.append(dict(json.loads(message.data)))
    assert message.type == WSMsgType.CLOSE and message.data == 4004
    # Captions still unread were sent before the removal; after it, only the reason for it.
    assert unread[-1]["type"] == "error" and unread[-1]["code"] == "removed", unread
    assert all(m["type"] == "caption" and m["sent_at"] < acknowledged_at for m in unread[:-1]), unread
    # Their media connections were closed before the acknowledgement: the host's video stops.
    await asyncio.wait_for(video_ended.wait(), 20)
    late = [t for t in frames if t > acknowledged + 0.5]
    assert late == [], f"{len(late)} video frames reached the removed participant after removal"

    # What they already said still reaches the others, once decoded.
    recognizer.release_finals.set()
    final = await _next_of(host_socket, "caption")
    while final["kind"] != "final":
        final = await _next_of(host_socket, "caption")
    assert final["speaker_id"] == speaker_id
    for pc in (camera, microphone, watching):
        await pc.close()
    await host_socket.close()
    for client in (host, speaker):
        await client.close()


async def test_publishing_again_after_media_lost_brings_captions_back_and_leaks_nothing(
    echo_server: tuple[TestServer, _EchoRecognizer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server, recognizer = echo_server
    context = server.app[AppContext.KEY]
    member = await admin_client(server, "doctor@example.org")
    room = (await (await member.post("/api/rooms", json={"kind": "review"})).json())["room"]
    socket, _ = await _join(member, room["id"])
    tone = _tone(tmp_path / "tone.wav", 120)
    first = await _publish(socket, FileAudioTrack.from_path(tone))
    await _next_of(socket, "caption")
    (lost_stream,) = recognizer.streams

    (worker_pid,) = context.hub.worker_pids()
    os.kill(worker_pid, signal.SIGKILL)
    lost = await _next_of(socket, "error")
    assert lost["code"] == "media_lost"
    # The utterance the worker's death interrupted still gets its final.
    final = await _next_of(socket, "caption")
    while final["kind"] != "final":
        final = await _next_of(socket, "caption")
    assert lost_stream.finished
    await first.close()

    # Publishing again on the same socket reaches the replacement worker, and captions come back.
    await wait_until(context.hub.worker_pids, what="a replacement media worker")
    second = await _publish(socket, FileAudioTrack.from_path(tone))
    caption = await _next_of(socket, "caption")
    assert caption["kind"] == "partial"
    assert len(recognizer.streams) == 2 and recognizer.streams[1].pushed > 0

    await socket.send_json({"type": "leave"})
    while (message := await socket.receive(timeout=10)).type == WSMsgType.TEXT:
        assert json.loads(message.data)["type"] == "caption"  # sent before the leave was read
    assert message.type == WSMsgType.CLOSE
    await second.close()
    await wait_until(
        lambda: context.live_figures().speakers == 0 and context.recognizer.stats().active_streams == 0,
        what="no speakers and no recognition streams left",
    )
    figures = context.live_figures()
    assert (figures.rooms, figures.participants, figures.speakers) == (0, 0, 0)
    assert context.recognizer.stats().active_streams == 0
    assert context.hub.figures().participants == 0
    await member.close()
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "destroyed but it is pending" in m or "already running" in m], messages


async def test_no_log_record_carries_a_spoken_word_even_when_things_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whole calls, failures included: a translation model that fails quoting its input, a glossary
    term recognition writes with a Turkish dotless i, a listener who vanishes mid-sentence, a speaker
    whose media process dies mid-sentence, and a page sending the words back in bad messages. Not one
    log record, at any level, may carry a word that was said."""
    said = "Kolunda kırık var, hemoglobin yedi virgül iki."
    words = ["kolunda", "kırık", "hemoglobin", "yedi", "virgül"]
    models = tmp_path / "models"
    build_multilingual(models / "nllb-tiny", languages=["tr", "fr", "en"])
    build_marian_pair(models / "opus-mt-tr-ja", "tr", "ja", seed=3)
    engine = TranslationEngine.from_directory(models)
    japanese = next(m for m in engine.models if m.pair == ("tr", "ja"))

    def broken(texts: list[str], source: str, target: str) -> list[str]:
        raise KeyError(texts[0])  # as a lookup of the caption's words would

    replace_calls(monkeypatch, japanese, broken)
    caplog.set_level(logging.DEBUG)
    recognizer = _EchoRecognizer(said)
    server = await _start(tmp_path / "data", recognizer, engine)
    context = server.app[AppContext.KEY]
    host = await admin_client(server, "host@example.org")
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    response = await host.put(f"/api/rooms/{room['id']}/glossary", json={"terms": ["KIRIK"]})
    assert response.status == 200
    readers = {}
    for language in ("fr", "ja", "en"):
        client = await member_client(server, f"reader-{language}@example.org", admin=host)
        socket = await client.ws_connect(f"/ws/rooms/{room['id']}")
        await socket.send_json({"type": "join", "speaks": "fr", "captions": language})
        await _next_of(socket, "joined")
        readers[language] = (client, socket)
    speaker_socket = await host.ws_connect(f"/ws/rooms/{room['id']}")
    await speaker_socket.send_json({"type": "join", "speaks": "tr", "captions": "tr"})
    await _next_of(speaker_socket, "joined")
    microphone = await _publish(speaker_socket, FileAudioTrack.from_path(_tone(tmp_path / "tone.wav", 60)))
    await _next_of(readers["fr"][1], "caption")

    # The page sends the words back where they do not belong.
    for bad in (
        {"type": said},
        {"type": "join", "speaks": said, "captions": "fr"},
        {"type": "languages", "captions": said},
        {"type": "subscribe", "publisher_id": said, "sdp": "v=0 " + said},
    ):
        await speaker_socket.send_json(bad)
    # A listener vanishes mid-sentence, without closing anything.
    vanished, socket = readers.pop("en")
    socket._response.connection.transport.abort()  # type: ignore[union-attr]
    # The speaker's media process dies mid-sentence; the utterance it cut is still captioned.
    (worker_pid,) = context.hub.worker_pids()
    os.kill(worker_pid, signal.SIGKILL)
    final = await _next_of(readers["fr"][1], "caption")
    while final["kind"] != "final":
        final = await _next_of(readers["fr"][1], "caption")
    japanese_final = await _next_of(readers["ja"][1], "caption")
    while japanese_final["kind"] != "final":
        japanese_final = await _next_of(readers["ja"][1], "caption")
    assert japanese_final["path"] == "untranslated"  # the failure happened, and cost only Japanese

    await microphone.close()
    for client, socket in readers.values():
        await socket.close()
        await client.close()
    await speaker_socket.close()
    for client in (vanished, host):
        await client.close()
    await server.close()

    records = [
        f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.stack_info or ''}".casefold()
        for record in caplog.records
    ]
    assert any("failed" in record for record in records)  # failures were logged...
    leaked = {word for word in words for record in records if word in record}
    assert not leaked, [r for r in records if any(w in r for w in leaked)]  # ...without the words


async def test_a_shared_screen_reaches_the_others_and_stops_when_sharing_stops(
    echo_server: tuple[TestServer, _EchoRecognizer],
) -> None:
    server, recognizer = echo_server
    host = await admin_client(server, "host@example.org")
    expert = await member_client(server, "expert@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    host_socket, host_id = await _join(host, room["id"])
    expert_socket, _ = await _join(expert, room["id"])
    camera = await _publish(host_socket, VideoStreamTrack())

    # The host shares a screen: a publication of its own, announced to the others, never captioned.
    screen = RTCPeerConnection()
    screen.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await screen.setLocalDescription(await screen.createOffer())
    await host_socket.send_json({"type": "publish", "source": "screen", "sdp": screen.localDescription.sdp})
    published = await _next_of(host_socket, "published")
    assert published["source"] == "screen" and published["kinds"] == ["video"]
    await screen.setRemoteDescription(RTCSessionDescription(sdp=published["sdp"], type="answer"))
    announced = await _next_of(expert_socket, "participant_published")
    while not announced["participant"]["sharing_screen"]:
        announced = await _next_of(expert_socket, "participant_published")
    assert announced["participant"]["id"] == host_id

    watching = RTCPeerConnection()
    watching.addTransceiver("video", direction="recvonly")
    frames = 0
    seen = asyncio.Event()
    ended = asyncio.Event()
    receivers: list[asyncio.Task[None]] = []

    @watching.on("track")
    def on_track(track: Any) -> None:
        async def count() -> None:
            nonlocal frames
            try:
                while True:
                    await track.recv()
                    frames += 1
                    if frames >= 5:
                        seen.set()
            except MediaStreamError:
                ended.set()

        receivers.append(asyncio.ensure_future(count()))

    await watching.setLocalDescription(await watching.createOffer())
    await expert_socket.send_json(
        {
            "type": "subscribe",
            "publisher_id": host_id,
            "source": "screen",
            "sdp": watching.localDescription.sdp,
        }
    )
    subscribed = await _next_of(expert_socket, "subscribed")
    assert subscribed["source"] == "screen"
    await watching.setRemoteDescription(RTCSessionDescription(sdp=subscribed["sdp"], type="answer"))
    await asyncio.wait_for(seen.wait(), 20)

    await host_socket.send_json({"type": "unpublish", "source": "screen"})
    updated = await _next_of(expert_socket, "participant_updated")
    assert updated["participant"]["sharing_screen"] is False
    await asyncio.wait_for(ended.wait(), 20)  # the relayed screen ends with the sharing
    assert recognizer.streams == []  # neither the camera (video only) nor the screen was captioned
    for pc in (camera, screen, watching):
        await pc.close()
    for socket in (host_socket, expert_socket):
        await socket.close()
    for client in (host, expert):
        await client.close()


async def test_chat_is_translated_for_each_reader_with_the_glossary_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    build_marian_pair(models / "opus-mt-en-fr", "en", "fr")
    engine = TranslationEngine.from_directory(models)
    server = await _start(tmp_path / "data", _EchoRecognizer(), engine)
    host = await admin_client(server, "host@example.org")
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    response = await host.put(f"/api/rooms/{room['id']}/glossary", json={"terms": ["Metoprolol"]})
    assert response.status == 200
    sockets = {}
    for language in ("en", "fr", "th"):
        client = (
            host if language == "en" else await member_client(server, f"{language}@example.org", admin=host)
        )
        socket = await client.ws_connect(f"/ws/rooms/{room['id']}")
        await socket.send_json({"type": "join", "speaks": language, "captions": language})
        await _next_of(socket, "joined")
        sockets[language] = (client, socket)
    caplog.set_level(logging.DEBUG)
    typed = "Give metoprolol twenty-five milligrams twice daily."
    await sockets["en"][1].send_json({"type": "chat", "text": typed})

    received = {language: await _next_of(socket, "chat") for language, (_, socket) in sockets.items()}
    assert received["en"]["text"] == typed and received["en"]["path"] == "original"
    french = received["fr"]
    assert french["path"] == "machine" and french["language"] == "fr" and french["original"] == typed
    assert "Metoprolol" in french["text"]  # the glossary term survives (restored however the model does)
    thai = received["th"]  # no model for en→th: the words as typed, marked
    assert thai["path"] == "untranslated" and thai["text"] == typed and thai["language"] == "en"
    assert thai["note"] == "not translated: no model for en→th"
    assert thai["note_code"] == "no_model" and thai["target_language"] == "th"
    assert len({m["id"] for m in received.values()}) == 1
    # Bad chat gets an error and the session goes on.
    await sockets["fr"][1].send_json({"type": "chat", "text": "x" * 3_000})
    assert (await _next_of(sockets["fr"][1], "error"))["code"] == "too_large"
    assert not [r for r in caplog.records if "metoprolol" in r.getMessage().casefold()]
    for _, socket in sockets.values():
        await socket.close()
    for client, _ in sockets.values():
        await client.close()
    await server.close()


async def test_the_host_asks_to_mute_lists_live_rooms_and_deletes_one(
    echo_server: tuple[TestServer, _EchoRecognizer],
) -> None:
    server, _ = echo_server
    host = await admin_client(server, "host@example.org")
    guest = await member_client(server, "guest@example.org", admin=host)
    live_room = (
        await (await host.post("/api/rooms", json={"kind": "review", "title": "Tumour board"})).json()
    )["room"]
    quiet_room = (
        await (await host.post("/api/rooms", json={"kind": "consultation", "title": "Follow-up"})).json()
    )["room"]
    guest_socket, guest_id = await _join(guest, live_room["id"])
    listed = {r["title"]: r for r in (await (await host.get("/api/rooms")).json())["rooms"]}
    assert (listed["Tumour board"]["live"], listed["Tumour board"]["participants"]) == (True, 1)
    assert (listed["Follow-up"]["live"], listed["Follow-up"]["participants"]) == (False, 0)

    mute = f"/api/rooms/{live_room['id']}/participants/{guest_id}/mute"
    assert (await guest.post(mute)).status == 403
    assert (await host.post(mute)).status == 200
    assert (await _next_of(guest_socket, "mute_requested"))["by_name"] == "host"

    assert (await guest.delete(f"/api/rooms/{live_room['id']}")).status == 403
    assert (await host.delete(f"/api/rooms/{live_room['id']}")).status == 200
    ended = await _next_of(guest_socket, "error")
    assert ended["code"] == "call_ended"
    assert (await guest_socket.receive(timeout=10)).data == 4005
    assert (await host.get(f"/api/rooms/{live_room['id']}")).status == 404
    assert [r["id"] for r in (await (await host.get("/api/rooms")).json())["rooms"]] == [quiet_room["id"]]
    for client in (host, guest):
        await client.close()
