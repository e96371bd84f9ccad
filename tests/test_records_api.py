"""Consultation records at rest: who may start, stop, read, export and delete one (the access matrix);
the audit log; settled captions replacing the finals they name; retention with a controlled clock;
the record key; `babelcall records`.

The server is the real one without speech models: lines reach the record through the caption
pipeline's hook (`RecordKeeper.offer`), with caption events built here as the pipeline builds them
(tests/test_records.py drives the same hook from real calls)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import srt
from aiohttp.test_utils import TestClient, TestServer
from rest_app import PASSWORD, admin_client, api_only_app, member_client, new_client
from test_records import _Page

from protocol import CaptionEvent, TranslationPath
from protocol.captions import CaptionKind
from protocol.errors import ErrorCode, ProtocolError
from protocol.signalling import (
    ConsentAnswer,
    RecordConsent,
    RecordState,
    RecordStatus,
    parse_client_message,
    parse_server_message,
)
from server.cli import main
from server.config import Config
from server.context import AppContext
from server.records import DAY_S, RecordKeyError, load_record_cipher
from server.store import Store


class _Clock:
    """The records' clock, moved forward by the test instead of waiting."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


async def _server(data_dir: Path, clock: _Clock | None = None) -> TestServer:
    config = Config(data_dir=data_dir, max_message_bytes=65_536, media_workers=1)
    app = api_only_app(config, clock=clock or _Clock())  # type: ignore[arg-type]
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    running = await _server(tmp_path)
    yield running
    await running.close()


def _said(
    server: TestServer,
    page: _Page,
    room_id: str,
    text: str,
    language: str,
    *,
    utterance: str,
    kind: CaptionKind = CaptionKind.FINAL,
    replaces: tuple[str, ...] = (),
    span: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """The caption pipeline's hook, as it is called for a final or a settled caption: said over `span`
    (seconds since the room opened), by default just now; the span."""
    context = server.app[AppContext.KEY]
    room = context.calls.room(room_id)
    assert room is not None
    seat = room.seats[page.id]
    now = time.time() - room.opened_at
    start_s, end_s = span or (now, now + 0.5)
    caption = CaptionEvent(
        room=room_id,
        speaker_id=seat.id,
        speaker_name=seat.name,
        utterance_id=utterance,
        kind=kind,
        source_language=language,
        caption_language=language,
        text=text,
        stable_chars=len(text),
        path=TranslationPath.ORIGINAL,
        note=None,
        start_s=start_s,
        end_s=end_s,
        sent_at=time.time(),
        replaces=replaces,
    )
    context.records.offer(room, seat, caption)
    return start_s, end_s


async def _recording(pages: list[_Page], mark: list[int]) -> None:
    for page, after in zip(pages, mark, strict=True):
        await page.record_state("recording", after=after)


async def _start(client: TestClient, room_id: str) -> str:
    response = await client.post(f"/api/rooms/{room_id}/record")
    assert response.status == 201, await response.text()
    return str((await response.json())["record"]["id"])


async def _code(response: Any) -> str:
    return str((await response.json())["error"]["code"])


async def _id(client: TestClient) -> str:
    return str((await (await client.get("/api/me")).json())["member"]["id"])


async def test_who_may_start_stop_read_export_and_delete_a_record_and_the_audit_log(
    server: TestServer,
) -> None:
    admin = await admin_client(server, "admin@example.org")
    host = await member_client(server, "host@example.org", admin=admin)
    participant = await member_client(server, "participant@example.org", admin=admin)
    other = await member_client(server, "other@example.org", admin=admin)
    anonymous = await new_client(server)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    start, stop = f"/api/rooms/{room['id']}/record", f"/api/rooms/{room['id']}/record/stop"

    # Nobody in the call: nothing to record.
    response = await host.post(start)
    assert response.status == 409 and await _code(response) == "no_call"
    host_page = await _Page.join(host, room["id"], "en")
    participant_page = await _Page.join(participant, room["id"], "fr")

    for client, status, code in (
        (anonymous, 401, "not_signed_in"),
        (other, 403, "not_host"),
        (participant, 403, "not_host"),
    ):
        response = await client.post(start)
        assert (response.status, await _code(response)) == (status, code)
    marks = [host_page.mark(), participant_page.mark()]
    first = await _start(host, room["id"])
    for client in (host, admin):  # allowed, but one record at a time
        response = await client.post(start)
        assert (response.status, await _code(response)) == (409, "record_running")
    await participant_page.consent(True)
    await _recording([host_page, participant_page], marks)
    _said(server, host_page, room["id"], "Bonjour, the scan is clear", "en", utterance="h-1")
    _said(server, participant_page, room["id"], "Merci docteur", "fr", utterance="p-1")

    for client, status, code in (
        (anonymous, 401, "not_signed_in"),
        (other, 403, "not_host"),
        (participant, 403, "not_host"),
    ):
        response = await client.post(stop)
        assert (response.status, await _code(response)) == (status, code)
    assert (await host.post(stop)).status == 200
    response = await admin.post(stop)
    assert (response.status, await _code(response)) == (404, "no_record")

    # An administrator may start one too; from outside the call, it is not their agreement.
    marks = [host_page.mark(), participant_page.mark()]
    second = await _start(admin, room["id"])
    asking = await host_page.record_state("asking", after=marks[0])
    assert set(asking["consent"].values()) == {"asked"}
    await host_page.consent(True)
    await participant_page.consent(True)
    await _recording([host_page, participant_page], marks)
    _said(server, participant_page, room["id"], "Une dernière question", "fr", utterance="p-2")
    assert (await admin.post(stop)).status == 200

    # Listing: the records one was in (or hosts); administrators see every one; no words.
    expected_lists = {
        "other": [],
        "participant": [second, first],
        "host": [second, first],
        "admin": [second, first],
    }
    for name, client in (("other", other), ("participant", participant), ("host", host), ("admin", admin)):
        listed = (await (await client.get("/api/records")).json())["records"]
        assert [r["id"] for r in listed] == expected_lists[name], name
    assert (await anonymous.get("/api/records")).status == 401
    listed = (await (await participant.get("/api/records")).json())["records"]
    assert [(r["lines"], r["may_read"], r["may_delete"]) for r in listed] == [
        (1, True, False),
        (2, True, False),
    ]
    assert listed[1]["expires_at"] == pytest.approx(listed[1]["started_at"] + 30 * DAY_S)

    # Reading and exporting: those who were in the call, and administrators.
    for path in (f"/api/records/{first}", f"/api/records/{first}/export?format=json"):
        for client, status, code in (
            (anonymous, 401, "not_signed_in"),
            (other, 403, "not_participant"),
            (participant, 200, None),
            (host, 200, None),
            (admin, 200, None),
        ):
            response = await client.get(path)
            assert response.status == status, (path, status)
            if code is not None:
                assert await _code(response) == code
    read = await (await participant.get(f"/api/records/{first}")).json()
    assert [line["text"] for line in read["lines"]] == ["Bonjour, the scan is clear", "Merci docteur"]
    for query, code in (
        ("format=pdf", "bad_field"),
        ("format=vtt&language=xx", "unknown_language"),
        ("format=html", "missing_field"),
    ):
        response = await participant.get(f"/api/records/{first}/export?{query}")
        assert (response.status, await _code(response)) == (400, code), query
    response = await host.get("/api/records/no-such-record")
    assert (response.status, await _code(response)) == (404, "no_record")

    # The audit log: administrators only.
    for client, status in ((anonymous, 401), (other, 403), (participant, 403), (host, 403), (admin, 200)):
        assert (await client.get(f"/api/records/{first}/audit")).status == status

    # Deleting: the room's host, or an administrator.
    for client, status, code in (
        (anonymous, 401, "not_signed_in"),
        (other, 403, "not_host"),
        (participant, 403, "not_host"),
    ):
        response = await client.delete(f"/api/records/{first}")
        assert (response.status, await _code(response)) == (status, code)
    assert (await host.delete(f"/api/records/{first}")).status == 200
    assert (await admin.delete(f"/api/records/{second}")).status == 200
    for record_id in (first, second):
        response = await admin.get(f"/api/records/{record_id}")
        assert (response.status, await _code(response)) == (404, "no_record")

    # Every access is in the audit log, which outlives the record: who, what, when; no words.
    ids = {
        name: await _id(client)
        for name, client in (("host", host), ("participant", participant), ("admin", admin))
    }
    entries = (await (await admin.get(f"/api/records/{first}/audit")).json())["entries"]
    assert [(e["event"], e["actor"], e["detail"]) for e in entries] == [
        ("created", ids["host"], ""),
        ("consented", ids["host"], ""),
        ("consented", ids["participant"], ""),
        ("stopped", ids["host"], ""),
        ("viewed", ids["participant"], ""),
        ("viewed", ids["host"], ""),
        ("viewed", ids["admin"], ""),
        ("exported", ids["participant"], "json original"),
        ("exported", ids["host"], "json original"),
        ("exported", ids["admin"], "json original"),
        ("viewed", ids["participant"], ""),
        ("deleted", ids["host"], ""),
    ]
    assert all(isinstance(e["at"], float) and e["record_id"] == first for e in entries)
    entries = (await (await admin.get(f"/api/records/{second}/audit")).json())["entries"]
    assert [(e["event"], e["actor"]) for e in entries][:3] == [
        ("created", ids["admin"]),
        ("consented", ids["host"]),
        ("consented", ids["participant"]),
    ]
    assert entries[-1]["event"] == "deleted" and entries[-1]["actor"] == ids["admin"]
    for page in (host_page, participant_page):
        await page.leave()
    for client in (admin, host, participant, other, anonymous):
        await client.close()


async def test_settled_captions_replace_the_finals_they_name_only_where_all_were_kept(
    server: TestServer,
) -> None:
    host = await admin_client(server, "host@example.org")
    guest = await member_client(server, "guest@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    host_page = await _Page.join(host, room["id"], "en")
    guest_page = await _Page.join(guest, room["id"], "zh")
    marks = [host_page.mark(), guest_page.mark()]
    record_id = await _start(host, room["id"])
    await guest_page.consent(True)
    await _recording([host_page, guest_page], marks)

    spans: dict[str, tuple[float, float]] = {}

    def say(text: str, utterance: str) -> None:
        spans[utterance] = _said(server, host_page, room["id"], text, "en", utterance=utterance)

    def settle(text: str, replaces: tuple[str, ...]) -> None:
        """As the second pass makes them: its own id and span are those of the finals it replaces."""
        span = (spans[replaces[0]][0], spans[replaces[-1]][1])
        _said(
            server,
            host_page,
            room["id"],
            text,
            "en",
            utterance=replaces[0],
            kind=CaptionKind.SETTLED,
            replaces=replaces,
            span=span,
        )

    say("Hemoglobin", "u1")
    say("seven point two", "u2")
    say("the knee is swollen", "u3")
    say("um", "u4")
    # Two finals heard as one sentence become one settled line; a settled empty text removes its line.
    settle("Hemoglobin 7.2.", ("u1", "u2"))
    settle("", ("u4",))
    # Said while the guest had withdrawn: the final is not kept, so neither is a settled text that
    # covers it, even together with a line that was kept.
    mark = host_page.mark()
    await guest_page.consent(False)
    await host_page.record_state("paused", after=mark)
    say("the patient refused", "u5")
    settle("The knee is swollen; the patient refused.", ("u3", "u5"))
    settle("The patient refused.", ("u5",))

    lines = (await (await guest.get(f"/api/records/{record_id}")).json())["lines"]
    assert [(line["utterance_id"], line["text"], line["kind"]) for line in lines] == [
        ("u1", "Hemoglobin 7.2.", "settled"),
        ("u3", "the knee is swollen", "final"),
    ]
    for page in (host_page, guest_page):
        await page.leave()
    for client in (host, guest):
        await client.close()


def _sealed(data_dir: Path) -> list[bytes]:
    """Every sealed line in the database, read as another process would."""
    with sqlite3.connect(data_dir / "babelcall.sqlite3") as db:
        return [bytes(row[0]) for row in db.execute("SELECT sealed FROM record_lines")]


def _in_files(data_dir: Path, needles: list[bytes]) -> list[bytes]:
    contents = [path.read_bytes() for path in data_dir.glob("babelcall.sqlite3*")]
    return [needle for needle in needles if any(needle in content for content in contents)]


async def _sign_in(server: TestServer, email: str) -> TestClient:
    client = await new_client(server)
    assert (await client.post("/api/login", json={"email": email, "password": PASSWORD})).status == 200
    return client


async def test_records_are_deleted_when_retention_ends_and_leave_nothing_behind(tmp_path: Path) -> None:
    clock = _Clock()
    server = await _server(tmp_path, clock)
    keeper = server.app[AppContext.KEY].records
    host = await admin_client(server, "host@example.org")
    guest = await member_client(server, "guest@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    host_page = await _Page.join(host, room["id"], "en")
    guest_page = await _Page.join(guest, room["id"], "ar")

    async def record(lines: int) -> tuple[str, list[bytes]]:
        """A record of `lines` lines, stopped; its id and each line's authentication tag (unique to it)."""
        before = {blob[-16:] for blob in _sealed(tmp_path)}
        marks = [host_page.mark(), guest_page.mark()]
        record_id = await _start(host, room["id"])
        await guest_page.consent(True)
        await _recording([host_page, guest_page], marks)
        for n in range(lines):
            _said(
                server,
                guest_page,
                room["id"],
                f"سطر رقم {n} من الاستشارة",
                "ar",
                utterance=f"{record_id}-{n}",
            )
        assert (await host.post(f"/api/rooms/{room['id']}/record/stop")).status == 200
        await keeper.flush()
        return record_id, [blob[-16:] for blob in _sealed(tmp_path) if blob[-16:] not in before]

    expiring, expiring_tags = await record(20)
    clock.offset_s = 2 * DAY_S
    kept, kept_tags = await record(20)  # its lines share the database pages of the first one's
    assert len(expiring_tags) == len(kept_tags) == 20
    assert (
        _in_files(tmp_path, expiring_tags + kept_tags) == expiring_tags + kept_tags
    )  # the search finds them

    clock.offset_s = 30 * DAY_S - 60
    assert await keeper.purge_expired() == 0
    assert (await host.get(f"/api/records/{expiring}")).status == 200
    clock.offset_s = 30 * DAY_S + 60
    assert await keeper.purge_expired() == 1
    assert (await host.get(f"/api/records/{expiring}")).status == 404
    assert (await host.get(f"/api/records/{kept}")).status == 200
    # Gone from the database's pages (not left in their free space) and from its write-ahead log.
    assert _in_files(tmp_path, expiring_tags) == []
    assert _in_files(tmp_path, kept_tags) == kept_tags
    entries = (await (await host.get(f"/api/records/{expiring}/audit")).json())["entries"]
    assert (entries[-1]["event"], entries[-1]["actor"]) == ("deleted", "retention")

    # At start-up too: a record whose time ran out while the server was down is gone when it is back.
    for page in (host_page, guest_page):
        await page.leave()
    for client in (host, guest):
        await client.close()
    await server.close()
    clock.offset_s = 33 * DAY_S
    server = await _server(tmp_path, clock)
    admin = await _sign_in(server, "host@example.org")
    assert (await admin.get(f"/api/records/{kept}")).status == 404
    assert _sealed(tmp_path) == []
    entries = (await (await admin.get(f"/api/records/{kept}/audit")).json())["entries"]
    host_id, guest_id = await _id(admin), entries[2]["actor"]
    assert guest_id != host_id
    assert [(e["event"], e["actor"]) for e in entries] == [
        ("created", host_id),
        ("consented", host_id),
        ("consented", guest_id),
        ("stopped", host_id),
        ("viewed", host_id),
        ("deleted", "retention"),
    ]
    await admin.close()
    await server.close()


async def test_the_record_key_lives_in_its_own_file_and_must_match_the_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "data" / "babelcall.sqlite3")
    await store.open()
    key_file = tmp_path / "keys" / "record.key"
    cipher = await load_record_cipher(key_file, store)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    sealed = cipher.seal(b"Tension 14/9", b"context")
    again = await load_record_cipher(key_file, store)  # the same key, read back
    assert again.open(sealed, b"context") == b"Tension 14/9"

    original = key_file.read_bytes()
    key_file.write_bytes(os.urandom(32))
    with pytest.raises(RecordKeyError, match="not the key"):
        await load_record_cipher(key_file, store)
    key_file.write_bytes(original[:16])
    with pytest.raises(RecordKeyError, match="16 bytes"):
        await load_record_cipher(key_file, store)
    key_file.unlink()
    with pytest.raises(RecordKeyError, match="missing"):
        await load_record_cipher(key_file, store)
    assert not key_file.exists()  # a lost key is never silently replaced by a new one
    await store.close()

    # The server refuses to start without it.
    config = Config(data_dir=tmp_path / "data", record_key_file=key_file, media_workers=1)
    app = api_only_app(config)
    with pytest.raises(RecordKeyError):
        await TestServer(app).start_server()


def test_babelcall_records_lists_exports_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def one_record() -> str:
        server = await _server(tmp_path)
        host = await admin_client(server, "host@example.org")
        guest = await member_client(server, "guest@example.org", admin=host)
        room = (
            await (await host.post("/api/rooms", json={"kind": "consultation", "title": "Ward 3"})).json()
        )["room"]
        host_page = await _Page.join(host, room["id"], "en")
        guest_page = await _Page.join(guest, room["id"], "zh")
        marks = [host_page.mark(), guest_page.mark()]
        record_id = await _start(host, room["id"])
        await guest_page.consent(True)
        await _recording([host_page, guest_page], marks)
        _said(server, host_page, room["id"], "Take it --> twice a day", "en", utterance="h-1")
        _said(server, guest_page, room["id"], "我明白了", "zh", utterance="g-1")
        for page in (host_page, guest_page):
            await page.leave()
        for client in (host, guest):
            await client.close()
        await server.close()
        return record_id

    record_id = asyncio.run(one_record())
    monkeypatch.setenv("BABELCALL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BABELCALL_CONFIG", raising=False)
    assert main(["records", "list", "--json"]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["id"], listed["room_title"], listed["lines"]) == (record_id, "Ward 3", 2)

    output = tmp_path / "export.srt"
    assert (
        main(["records", "export", record_id, "--format", "srt", "--language", "ar", "--output", str(output)])
        == 0
    )
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    subtitles = list(srt.parse(output.read_text(encoding="utf-8")))
    assert [s.content for s in subtitles] == [
        "host: Take it → twice a day\n[not translated: no model for en→ar]",
        "guest: 我明白了\n[not translated: no model for zh→ar]",
    ]
    assert subtitles[0].start < subtitles[0].end and subtitles[0].start <= subtitles[1].start
    assert (
        main(["records", "export", record_id, "--format", "html"]) == 2
    )  # the bilingual one needs a language
    assert main(["records", "export", "no-such-record", "--format", "txt"]) == 1

    assert main(["records", "delete", record_id]) == 0
    capsys.readouterr()
    assert main(["records", "list"]) == 0
    assert capsys.readouterr().out == ""
    with sqlite3.connect(tmp_path / "babelcall.sqlite3") as db:
        trail = db.execute(
            "SELECT event, actor, detail FROM record_audit WHERE record_id = ? ORDER BY id", (record_id,)
        )
        assert list(trail)[-2:] == [("exported", "cli", "srt ar"), ("deleted", "cli", "")]


def test_record_messages_survive_the_wire_and_bad_answers_are_refused() -> None:
    assert parse_client_message(
        '{"type": "record_consent", "agree": false}', max_bytes=1024
    ) == RecordConsent(False)
    for bad in ('{"type": "record_consent"}', '{"type": "record_consent", "agree": "yes"}'):
        with pytest.raises(ProtocolError) as refused:
            parse_client_message(bad, max_bytes=1024)
        assert refused.value.code is ErrorCode.BAD_MESSAGE
    state = RecordState(
        RecordStatus.PAUSED, "r" * 32, "host", 1_800_000_000.0, {"a" * 32: ConsentAnswer.DECLINED}
    )
    assert parse_server_message(json.loads(json.dumps(state.to_dict()))) == state
    assert parse_server_message({"type": "record_state", "state": "off"}) == RecordState(RecordStatus.OFF)


async def test_an_answer_without_a_record_is_refused_and_the_call_goes_on(server: TestServer) -> None:
    host = await admin_client(server, "host@example.org")
    room = (await (await host.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    page = await _Page.join(host, room["id"], "en")
    mark = page.mark()
    await page.consent(True)
    refused = await page.wait_for(lambda m: m["type"] == "error", after=mark)
    assert refused["code"] == "no_record"
    await page.socket.send_json({"type": "languages", "captions": "fr"})
    await page.wait_for(lambda m: m["type"] == "participant_updated", after=mark)
    await page.leave()
    await host.close()
