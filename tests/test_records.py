"""Consultation records in live calls: nothing is kept until everyone present has agreed, a late joiner
is asked before anything of theirs (or anyone's) is kept, a withdrawal pauses the record; what is kept
is the caption pipeline's own finals, sealed so that the database file holds no word, and no log
record carries one either.

The server is the real one, with real media workers and real WebRTC clients (aiortc) sending audio;
the recogniser is a stand-in that "says" what the test tells it over the audio it hears next, so the
test knows which words were spoken when (consent is decided by when words were said)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription
from conditions import wait_until
from rest_app import admin_client, member_client
from test_calls import _start, _tone

from asr import RecognizerStats, SpeechEvent, SpeechEventKind
from media import FileAudioTrack
from mt import TranslationEngine

SAMPLE_RATE = 16_000
TIMEOUT_S = 60.0


class _Voice:
    """One speaker's recognition stream: each `say` becomes a final covering the audio heard next."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.pushed = 0
        self._heard = asyncio.Condition()
        self._out: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self._seq = 0
        self.english_wanted = False
        self.glossary: tuple[str, ...] = ()
        self.allowed_languages: frozenset[str] | None = None
        self.on_tentative_final: Any = None

    async def push(self, samples: Any) -> None:
        async with self._heard:
            self.pushed += len(samples)
            self._heard.notify_all()

    async def hear(self, seconds: float) -> tuple[int, int]:
        """Wait until `seconds` more of this speaker's audio has arrived; the span, in samples."""
        start = self.pushed
        async with self._heard:
            await asyncio.wait_for(
                self._heard.wait_for(lambda: self.pushed >= start + seconds * SAMPLE_RATE), TIMEOUT_S
            )
        return start, self.pushed

    async def say(self, text: str, seconds: float = 0.5) -> None:
        """`text` is what the speaker says over the next `seconds` of their audio."""
        start, end = await self.hear(seconds)
        self._out.put_nowait(
            SpeechEvent(
                SpeechEventKind.FINAL,
                self._seq,
                text,
                len(text),
                self.language,
                start / SAMPLE_RATE,
                end / SAMPLE_RATE,
            )
        )
        self._seq += 1

    async def finish(self) -> None:
        self._out.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        while (transcript := await self._out.get()) is not None:
            yield transcript


class _Voices:
    """The recogniser: one voice per spoken language (each participant here speaks another)."""

    def __init__(self) -> None:
        self.voices: dict[str, _Voice] = {}
        self._opened = asyncio.Event()

    def open_stream(self, *, language: str | None, **_: Any) -> _Voice:
        assert language is not None
        voice = self.voices[language] = _Voice(language)
        return voice

    async def voice(self, language: str) -> _Voice:
        await wait_until(
            lambda: language in self.voices and self.voices[language].pushed,
            TIMEOUT_S,
            f"audio from the {language} speaker",
        )
        return self.voices[language]

    def stats(self) -> RecognizerStats:
        return RecognizerStats(len(self.voices), 0, 0, 0, 0.0, 0, 0.0, 0, 0)

    async def aclose(self) -> None:
        return None


class _Page:
    """A participant's page: its socket, and every message the server sent it, in order."""

    def __init__(self, client: TestClient, socket: Any) -> None:
        self.client = client
        self.socket = socket
        self.messages: list[dict[str, Any]] = []
        self.id = ""
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self._connections: list[RTCPeerConnection] = []

    @classmethod
    async def join(cls, client: TestClient, room_id: str, speaks: str) -> _Page:
        page = cls(client, await client.ws_connect(f"/ws/rooms/{room_id}"))
        await page.socket.send_json({"type": "join", "speaks": speaks, "captions": "en"})
        page.id = (await page.wait_for(lambda m: m["type"] == "joined"))["participant_id"]
        return page

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type != WSMsgType.TEXT:
                break
            async with self._arrived:
                self.messages.append(json.loads(message.data))
                self._arrived.notify_all()

    def mark(self) -> int:
        return len(self.messages)

    async def wait_for(self, wanted: Callable[[dict[str, Any]], bool], *, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages[after:] if wanted(m)), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), TIMEOUT_S)
        message = found()
        assert message is not None
        return message

    async def record_state(self, state: str, *, after: int) -> dict[str, Any]:
        return await self.wait_for(lambda m: m["type"] == "record_state" and m["state"] == state, after=after)

    async def caption(self, text: str) -> dict[str, Any]:
        return await self.wait_for(
            lambda m: m["type"] == "caption" and m["kind"] == "final" and m["text"] == text
        )

    async def consent(self, agree: bool) -> None:
        await self.socket.send_json({"type": "record_consent", "agree": agree})

    async def publish_microphone(self, tone: Path) -> None:
        pc = RTCPeerConnection()
        self._connections.append(pc)
        pc.addTransceiver(FileAudioTrack.from_path(tone), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        mark = self.mark()
        await self.socket.send_json({"type": "publish", "sdp": pc.localDescription.sdp})
        published = await self.wait_for(lambda m: m["type"] in ("published", "error"), after=mark)
        assert published["type"] == "published", published
        await pc.setRemoteDescription(RTCSessionDescription(sdp=published["sdp"], type="answer"))

    async def leave(self) -> None:
        await self.socket.close()
        await self._reader
        for pc in self._connections:
            await pc.close()


async def _start_record(host: TestClient, room_id: str) -> str:
    response = await host.post(f"/api/rooms/{room_id}/record")
    assert response.status == 201, await response.text()
    return str((await response.json())["record"]["id"])


async def _lines(client: TestClient, record_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/records/{record_id}")
    assert response.status == 200, await response.text()
    return list((await response.json())["lines"])


def _database_files(data_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in data_dir.glob("babelcall.sqlite3*")]


def _forms(word: str) -> list[bytes]:
    """How a word could sit in a file: UTF-8, or escaped as JSON escapes non-ASCII text."""
    return [word.encode(), json.dumps(word).strip('"').encode()]


@pytest.fixture
async def voices_server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, _Voices]]:
    voices = _Voices()
    server = await _start(tmp_path, voices, TranslationEngine([]))  # type: ignore[arg-type]
    yield server, voices
    await server.close()


async def test_nothing_is_kept_until_both_agree_and_a_withdrawal_pauses_the_record(
    voices_server: tuple[TestServer, _Voices], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, voices = voices_server
    host = await admin_client(server, "host@example.org")
    guest = await member_client(server, "guest@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    tone = _tone(tmp_path / "tone.wav", 120)
    host_page = await _Page.join(host, room["id"], "en")
    guest_page = await _Page.join(guest, room["id"], "ar")
    await host_page.publish_microphone(tone)
    await guest_page.publish_microphone(tone)
    doctor, patient = await voices.voice("en"), await voices.voice("ar")

    # The host starts the record: starting it is the host's agreement; the guest is asked.
    marks = host_page.mark(), guest_page.mark()
    record_id = await _start_record(host, room["id"])
    for page, mark in zip((host_page, guest_page), marks, strict=True):
        asking = await page.record_state("asking", after=mark)
        assert asking["record_id"] == record_id
        assert asking["consent"] == {host_page.id: "agreed", guest_page.id: "asked"}

    said = {
        "before": "Hemoglobin seven point two this morning",
        "doctor": "The fracture needs a cast for six weeks",
        "patient": "أشعر بألم شديد في ذراعي اليسرى",
        "paused": "Creatinine one hundred and ten yesterday",
        "again": "شكرا يا دكتور على الشرح",
    }
    # Said while the guest has not answered: captioned for everyone, kept nowhere.
    await doctor.say(said["before"])
    await guest_page.caption(said["before"])

    mark = host_page.mark()
    await guest_page.consent(True)
    recording = await host_page.record_state("recording", after=mark)
    assert recording["consent"] == {host_page.id: "agreed", guest_page.id: "agreed"}
    await doctor.hear(1.0)  # so that what is said next is said after the last agreement
    await doctor.say(said["doctor"])
    await patient.say(said["patient"])
    await host_page.caption(said["patient"])
    await guest_page.caption(said["doctor"])
    await patient.hear(1.0)

    # The guest withdraws: paused for everyone, and what is said meanwhile is not kept.
    mark = host_page.mark()
    await guest_page.consent(False)
    paused = await host_page.record_state("paused", after=mark)
    assert paused["consent"][guest_page.id] == "declined"
    await doctor.hear(1.0)
    await doctor.say(said["paused"])
    await guest_page.caption(said["paused"])
    await doctor.hear(1.0)

    mark = host_page.mark()
    await guest_page.consent(True)
    await host_page.record_state("recording", after=mark)
    await patient.hear(1.0)
    await patient.say(said["again"])
    await host_page.caption(said["again"])
    await patient.hear(1.0)

    marks = host_page.mark(), guest_page.mark()
    response = await host.post(f"/api/rooms/{room['id']}/record/stop")
    assert response.status == 200, await response.text()
    for page, mark in zip((host_page, guest_page), marks, strict=True):
        assert (await page.record_state("off", after=mark))["record_id"] is None

    lines = await _lines(guest, record_id)
    assert [(line["text"], line["speaker_name"], line["language"], line["kind"]) for line in lines] == [
        (said["doctor"], "host", "en", "final"),
        (said["patient"], "guest", "ar", "final"),
        (said["again"], "guest", "ar", "final"),
    ]
    assert all(line["start_at"] < line["end_at"] for line in lines)

    # The database file (and its write-ahead log) holds none of the words, kept or not.
    words = [word for text in said.values() for word in text.split() if len(word) > 3]
    for content in _database_files(tmp_path):
        leaked = [word for word in words for form in _forms(word) if form in content]
        assert not leaked, leaked
    for page in (host_page, guest_page):
        await page.leave()
    for client in (host, guest):
        await client.close()
    await server.close()
    assert _database_files(tmp_path)  # the check above did read the files
    for content in _database_files(tmp_path):
        assert not [word for word in words for form in _forms(word) if form in content]

    # Nor does any log record, at any level.
    records = [f"{r.getMessage()} {r.exc_text or ''}".casefold() for r in caplog.records]
    assert any(record_id in record for record in records)  # the record's life was logged...
    leaked = [
        word
        for word in words
        for record in records
        if re.search(rf"\b{re.escape(word.casefold())}\b", record)
    ]
    assert not leaked, leaked  # ...without its words


async def test_a_late_joiner_is_asked_and_nothing_is_kept_until_they_agree(
    voices_server: tuple[TestServer, _Voices], tmp_path: Path
) -> None:
    server, voices = voices_server
    admin = await admin_client(server, "admin@example.org")
    host = await member_client(server, "host@example.org", admin=admin)
    guest = await member_client(server, "guest@example.org", admin=admin)
    late = await member_client(server, "late@example.org", admin=admin)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    tone = _tone(tmp_path / "tone.wav", 120)
    host_page = await _Page.join(host, room["id"], "en")
    guest_page = await _Page.join(guest, room["id"], "ar")
    await host_page.publish_microphone(tone)
    doctor = await voices.voice("en")
    mark = host_page.mark()
    record_id = await _start_record(host, room["id"])
    await guest_page.consent(True)
    await host_page.record_state("recording", after=mark)
    await doctor.hear(1.0)
    said = {
        "kept": "Blood pressure one forty over ninety",
        "asking": "Paracetamol every six hours with water",
        "unasked": "我的头很痛已经三天了",
        "agreed": "我对青霉素过敏",
    }
    await doctor.say(said["kept"])
    await guest_page.caption(said["kept"])
    await doctor.hear(1.0)

    # Someone joins: everyone sees that they are asked, and the record keeps nothing meanwhile.
    marks = host_page.mark(), guest_page.mark()
    late_page = await _Page.join(late, room["id"], "zh")
    for page, mark in zip((host_page, guest_page), marks, strict=True):
        asking = await page.record_state("asking", after=mark)
        assert asking["consent"][late_page.id] == "asked"
    await late_page.record_state("asking", after=0)
    await late_page.publish_microphone(tone)
    newcomer = await voices.voice("zh")
    await doctor.hear(1.0)
    await doctor.say(said["asking"])
    await newcomer.say(said["unasked"])
    await late_page.caption(said["asking"])
    await host_page.caption(said["unasked"])
    await newcomer.hear(1.0)

    mark = host_page.mark()
    await late_page.consent(True)
    await host_page.record_state("recording", after=mark)
    await newcomer.hear(1.0)
    await newcomer.say(said["agreed"])
    await guest_page.caption(said["agreed"])
    await newcomer.hear(1.0)

    # An answer is the member's for the record: reconnecting, they are not asked again.
    await late_page.leave()
    late_page = await _Page.join(late, room["id"], "zh")
    again = await late_page.record_state("recording", after=0)
    assert again["consent"][late_page.id] == "agreed"

    # Everyone leaves: the record ends with the call, and keeps what was said with everyone's consent.
    for page in (host_page, guest_page, late_page):
        await page.leave()

    async def records() -> list[dict[str, Any]]:
        return list((await (await late.get("/api/records")).json())["records"])

    async def record_ended() -> bool:
        return (await records())[0]["ended_at"] is not None

    await wait_until(record_ended, TIMEOUT_S, "the record ended")  # the server notices the last page leave
    listed = await records()
    assert [(r["id"], r["ended_at"] is not None) for r in listed] == [(record_id, True)]
    lines = await _lines(late, record_id)
    assert [line["text"] for line in lines] == [said["kept"], said["agreed"]]

    # The audit log: ids, events and times, in order; no words.
    entries = (await (await admin.get(f"/api/records/{record_id}/audit")).json())["entries"]
    ids = {
        name: (await (await client.get("/api/me")).json())["member"]["id"]
        for name, client in (("host", host), ("guest", guest), ("late", late))
    }
    assert [(e["event"], e["actor"]) for e in entries] == [
        ("created", ids["host"]),
        ("consented", ids["host"]),
        ("consented", ids["guest"]),
        ("consented", ids["late"]),
        ("stopped", "server"),
        ("viewed", ids["late"]),
    ]
    assert all(e["detail"] == "" for e in entries)
    for client in (admin, host, guest, late):
        await client.close()
