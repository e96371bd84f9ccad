"""REST and signalling: who may see what, and how bad input is answered (no speech models needed)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, VideoStreamTrack
from conditions import wait_until
from rest_app import (
    PASSWORD,
    admin_client,
    api_only_app,
    cheap_passwords,
    error_code,
    member_client,
    new_client,
)

from media import enable_loopback_candidates
from protocol import PROTOCOL_VERSION
from server.config import Config
from server.context import AppContext
from server.signin_limits import AttemptLimiter


@pytest.fixture
async def app_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    server = TestServer(api_only_app(Config(data_dir=tmp_path, max_message_bytes=4_096, media_workers=1)))
    await server.start_server()
    yield server
    await server.close()


async def test_the_administrator_approves_applicants(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    me = await (await admin.get("/api/me")).json()
    assert me["member"]["is_admin"] and me["member"]["status"] == "approved"

    applicant = await member_client(app_server, "applicant@example.org")
    me = await (await applicant.get("/api/me")).json()
    assert me["member"]["status"] == "pending" and not me["member"]["is_admin"]

    # A pending member is signed in but may not use rooms or see applications.
    response = await applicant.post("/api/rooms", json={"kind": "consultation"})
    assert response.status == 403 and await error_code(response) == "not_approved"
    response = await applicant.get("/api/admin/members")
    assert response.status == 403

    pending = await (await admin.get("/api/admin/members?status=pending")).json()
    assert [m["email"] for m in pending["members"]] == ["applicant@example.org"]
    response = await admin.post(f"/api/admin/members/{pending['members'][0]['id']}/approve")
    assert (await response.json())["member"]["status"] == "approved"

    response = await applicant.post("/api/rooms", json={"kind": "review", "title": "Tumour board"})
    assert response.status == 201
    room = (await response.json())["room"]
    details = await (await admin.get(f"/api/rooms/{room['id']}")).json()
    assert details["room"]["title"] == "Tumour board" and details["room"]["participants"] == []

    # An approved (non-admin) member still cannot decide applications.
    response = await applicant.post(f"/api/admin/members/{me['member']['id']}/reject")
    assert response.status == 403 and await error_code(response) == "not_admin"
    for client in (admin, applicant):
        await client.close()


async def test_rejection_ends_sessions(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    member = await member_client(app_server, "member@example.org", admin=admin)
    member_id = (await (await member.get("/api/me")).json())["member"]["id"]
    assert (await admin.post(f"/api/admin/members/{member_id}/reject")).status == 200
    assert (await member.get("/api/rooms")).status == 401
    # Signing in again is refused exactly as a wrong password is: nobody without the password learns
    # that this application was rejected, and the right password reveals nothing more.
    answers = []
    for password in (PASSWORD, "not the password at all"):
        response = await member.post("/api/login", json={"email": "member@example.org", "password": password})
        answers.append((response.status, await response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and answers[0][1]["error"]["code"] == "bad_credentials"
    await admin.close()
    await member.close()


async def test_nothing_about_rooms_or_members_without_signing_in(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    room = (await (await admin.post("/api/rooms", json={})).json())["room"]
    stranger = await new_client(app_server)
    for path in ("/api/rooms", f"/api/rooms/{room['id']}", "/api/admin/members", "/api/me"):
        response = await stranger.get(path)
        assert response.status == 401, path
    response = await stranger.get(f"/ws/rooms/{room['id']}")
    assert response.status == 401
    assert (await stranger.delete(f"/api/rooms/{room['id']}/participants/anyone")).status == 401
    # A forged cookie is no better than none.
    stranger.session.cookie_jar.update_cookies({"babelcall_session": "forged"})
    assert (await stranger.get(f"/api/rooms/{room['id']}")).status == 401
    # Public endpoints reveal nothing about rooms or people.
    info = await (await stranger.get("/api/info")).json()
    assert len(info["languages"]) == 11 and set(info) == {
        "protocol",
        "languages",
        "translation_models",
    }
    await admin.close()
    await stranger.close()


async def test_bad_requests_get_clear_errors(app_server: TestServer) -> None:
    client = await new_client(app_server)
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "bad_json"),
        (b"[1, 2]", 400, "bad_json"),
        (json.dumps({"email": "x@example.org", "name": "X", "password": "short"}).encode(), 400, "bad_field"),
        (json.dumps({"email": "not-an-email", "name": "X", "password": PASSWORD}).encode(), 400, "bad_field"),
        (json.dumps({"email": "x@example.org", "password": PASSWORD}).encode(), 400, "missing_field"),
        (
            json.dumps({"email": "x@example.org", "name": "x" * 10_000, "password": PASSWORD}).encode(),
            400,
            "too_large",
        ),
    ]
    for body, status, code in cases:
        response = await client.post("/api/apply", data=body, headers={"Content-Type": "application/json"})
        assert response.status == status, body[:40]
        assert await error_code(response) == code, body[:40]
    # Text shown to other people must not be able to pass for something else; the error names the field.
    for field, value in (
        ("name", "Dr \u202eleroM"),
        ("name", "\u200b\u200b"),
        ("name", "   "),
        ("organisation", "Clinic\r\nAdministrator"),
        ("email", "a\x00@example.org"),
        ("name", "\x1b[2J"),
    ):
        response = await client.post(
            "/api/apply", json={"email": "y@example.org", "name": "Y", "password": PASSWORD, field: value}
        )
        assert response.status == 400 and await error_code(response) == "bad_field", (field, value)
        assert (await response.json())["error"]["message"].startswith(f"{field}: "), (field, value)
    await member_client(app_server, "dup@example.org")
    response = await client.post(
        "/api/apply", json={"email": "dup@example.org", "name": "D", "password": PASSWORD}
    )
    assert response.status == 409
    response = await client.post(
        "/api/login", json={"email": "dup@example.org", "password": "wrong password!"}
    )
    assert response.status == 401 and await error_code(response) == "bad_credentials"
    await client.close()


async def test_hostile_json_answers_bad_json_on_every_body_and_logs_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The numbers and nesting that made json.loads raise (a 500 with a traceback in the log)."""
    hostile = (
        b'{"email": ' + b"1" * 5_000 + b', "password": "a long enough password", "name": "X"}',
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 3_000 + b"1" + b"}" * 3_000,
    )
    async with TestServer(api_only_app(Config(data_dir=tmp_path, media_workers=1))) as server:
        admin = await admin_client(server)
        room = (await (await admin.post("/api/rooms", json={})).json())["room"]
        for method, path in (
            ("POST", "/api/apply"),
            ("POST", "/api/login"),
            ("POST", "/api/setup"),
            ("POST", "/api/rooms"),
            ("PUT", f"/api/rooms/{room['id']}/glossary"),
        ):
            for body in hostile:
                response = await admin.request(
                    method, path, data=body, headers={"Content-Type": "application/json"}
                )
                assert response.status == 400, (path, body[:20], await response.text())
                assert await error_code(response) == "bad_json", (path, body[:20])
        await admin.close()
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


async def _receive(socket: Any) -> dict[str, Any]:
    message = await socket.receive(timeout=10)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def test_signalling_answers_bad_messages_and_keeps_the_session(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    room = (await (await admin.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    assert (await admin.get("/ws/rooms/no-such-room")).status == 404

    socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    exchanges: list[tuple[str | dict[str, Any], str]] = [
        ("{oops", "bad_json"),
        ({"no": "type"}, "bad_message"),
        ({"type": "publish", "sdp": "v=0"}, "not_joined"),
        ({"type": "join", "speaks": "xx", "captions": "en"}, "unknown_language"),
        ({"type": "join", "speaks": "en", "captions": "klingon"}, "unknown_language"),
        ({"type": "join", "speaks": "en", "captions": "en", "pad": "x" * 5_000}, "too_large"),
    ]
    for message, code in exchanges:
        await socket.send_str(message if isinstance(message, str) else json.dumps(message))
        reply = await _receive(socket)
        assert reply == {"type": "error", "code": code, "message": reply["message"]}, message

    await socket.send_json({"type": "join", "speaks": "ar", "captions": "th"})
    joined = await _receive(socket)
    assert joined["type"] == "joined" and joined["protocol"] == PROTOCOL_VERSION
    assert joined["room"]["participants"][0]["speaks"] == "ar"

    for message, code in [
        ({"type": "publish", "sdp": "not sdp"}, "bad_sdp"),
        ({"type": "publish", "sdp": "v=0\r\nthis is not a session description\r\n"}, "negotiation_failed"),
        ({"type": "subscribe", "publisher_id": "nobody", "sdp": "v=0"}, "unknown_participant"),
        ({"type": "languages", "captions": "zz"}, "unknown_language"),
        ({"type": "dance"}, "unknown_type"),
    ]:
        await socket.send_json(message)
        reply = await _receive(socket)
        assert reply["type"] == "error" and reply["code"] == code, (message, reply)

    # Still in the call after all that: a languages change is acknowledged to everyone.
    await socket.send_json({"type": "languages", "captions": "vi"})
    update = await _receive(socket)
    assert update["type"] == "participant_updated" and update["participant"]["captions"] == "vi"

    # A one-to-one consultation takes two.
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    third = await member_client(app_server, "third@example.org", admin=admin)
    guest_socket = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await guest_socket.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    assert (await _receive(guest_socket))["type"] == "joined"
    assert (await _receive(socket))["type"] == "participant_joined"
    third_socket = await third.ws_connect(f"/ws/rooms/{room['id']}")
    await third_socket.send_json({"type": "join", "speaks": "es", "captions": "en"})
    assert (await _receive(third_socket))["code"] == "room_full"

    await guest_socket.close()
    left = await _receive(socket)
    assert left["type"] == "participant_left"
    for s in (socket, third_socket):
        await s.close()
    for client in (admin, guest, third):
        await client.close()


async def test_joining_again_replaces_the_members_earlier_connection(app_server: TestServer) -> None:
    # A guest whose network dropped comes back before the server noticed (its heartbeat takes up to
    # 40 s): the consultation's second seat is still taken by the dead connection.
    admin = await admin_client(app_server)
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    room = (await (await admin.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    host_socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    await host_socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    host_id = (await _receive(host_socket))["participant_id"]
    first = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await first.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    first_id = (await _receive(first))["participant_id"]
    assert (await _receive(host_socket))["type"] == "participant_joined"

    second = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await second.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    joined = await _receive(second)
    assert joined["type"] == "joined", joined
    assert {p["id"] for p in joined["room"]["participants"]} == {host_id, joined["participant_id"]}

    # The earlier connection is told why and closed with the code that tells clients not to reconnect.
    assert (await _receive(first))["code"] == "replaced"
    closing = await first.receive(timeout=10)
    assert closing.type == WSMsgType.CLOSE and closing.data == 4001
    assert (await _receive(host_socket)) == {"type": "participant_left", "participant_id": first_id}
    assert (await _receive(host_socket))["participant"]["id"] == joined["participant_id"]
    for socket in (host_socket, first, second):
        await socket.close()
    for client in (admin, guest):
        await client.close()


async def test_ending_a_membership_ends_the_members_calls_at_once(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    guest_id = (await (await guest.get("/api/me")).json())["member"]["id"]
    room = (await (await admin.post("/api/rooms", json={"kind": "review"})).json())["room"]
    host_socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    await host_socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(host_socket))["type"] == "joined"
    in_call = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await in_call.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    participant_id = (await _receive(in_call))["participant_id"]
    assert (await _receive(host_socket))["type"] == "participant_joined"
    not_joined_yet = await guest.ws_connect(f"/ws/rooms/{room['id']}")  # another tab, still in the lobby

    response = await admin.post(f"/api/admin/members/{guest_id}/reject")
    assert response.status == 200

    # Told why, and closed with the code that tells clients not to reconnect; the others see them leave.
    assert (await _receive(in_call))["code"] == "membership_ended"
    closing = await in_call.receive(timeout=10)
    assert closing.type == WSMsgType.CLOSE and closing.data == 4003
    assert await _receive(host_socket) == {"type": "participant_left", "participant_id": participant_id}
    # The tab that had not joined cannot join now, and nothing else of theirs is let in.
    await not_joined_yet.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    assert (await _receive(not_joined_yet))["code"] == "membership_ended"
    assert app_server.app[AppContext.KEY].calls.seats_of(guest_id) == []
    assert (await guest.get("/api/me")).status == 401
    assert (await guest.get(f"/api/rooms/{room['id']}")).status == 401
    for socket in (host_socket, not_joined_yet):
        await socket.close()
    for client in (admin, guest):
        await client.close()


async def test_the_host_removes_a_participant_who_stays_out_until_the_call_ends(
    app_server: TestServer,
) -> None:
    host = await admin_client(app_server, "host@example.org")
    expert = await member_client(app_server, "expert@example.org", admin=host)
    intruder = await member_client(app_server, "intruder@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    sockets = {}
    ids = {}
    for name, client in (("host", host), ("expert", expert), ("intruder", intruder)):
        sockets[name] = await client.ws_connect(f"/ws/rooms/{room['id']}")
        await sockets[name].send_json({"type": "join", "speaks": "en", "captions": "en"})
        ids[name] = (await _receive(sockets[name]))["participant_id"]
    assert (await _receive(sockets["host"]))["type"] == "participant_joined"  # the expert
    assert (await _receive(sockets["host"]))["type"] == "participant_joined"  # the intruder
    assert (await _receive(sockets["expert"]))["type"] == "participant_joined"

    seat = f"/api/rooms/{room['id']}/participants/{ids['intruder']}"
    response = await expert.delete(seat)
    assert response.status == 403 and await error_code(response) == "not_host"
    response = await host.delete(f"/api/rooms/{room['id']}/participants/{ids['host']}")
    assert response.status == 400
    response = await host.delete(seat)
    assert response.status == 200, await response.text()

    assert (await _receive(sockets["intruder"]))["code"] == "removed"
    closing = await sockets["intruder"].receive(timeout=10)
    assert closing.type == WSMsgType.CLOSE and closing.data == 4004
    for name in ("host", "expert"):
        assert await _receive(sockets[name]) == {
            "type": "participant_left",
            "participant_id": ids["intruder"],
        }
    # Joining again is refused, and the seat is gone.
    again = await intruder.ws_connect(f"/ws/rooms/{room['id']}")
    await again.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(again))["code"] == "removed"
    closing = await again.receive(timeout=10)  # refused for good: the socket does not stay open
    assert closing.type == WSMsgType.CLOSE and closing.data == 4004
    assert (await host.delete(seat)).status == 404

    # Everyone leaving does not end the call: only the host ends it, for everyone, which lifts removals.
    for name in ("host", "expert"):
        await sockets[name].close()
    calls = app_server.app[AppContext.KEY].calls
    await wait_until(lambda: calls.room(room["id"]) is None, what="the live room closed")
    still_out = await intruder.ws_connect(f"/ws/rooms/{room['id']}")
    await still_out.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(still_out))["code"] == "removed"
    response = await expert.post(f"/api/rooms/{room['id']}/end")
    assert response.status == 403 and await error_code(response) == "not_host"
    response = await host.post(f"/api/rooms/{room['id']}/end")
    assert response.status == 200 and (await response.json()) == {"ended": 0}
    later = await intruder.ws_connect(f"/ws/rooms/{room['id']}")
    await later.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(later))["type"] == "joined"
    await later.close()
    for client in (host, expert, intruder):
        await client.close()


async def test_a_removal_outlasts_a_restart(tmp_path: Path) -> None:
    """The host removes someone; the server restarts; the host rejoins; the removed member's page,
    which rejoins by itself, is refused."""
    config = Config(data_dir=tmp_path, max_message_bytes=4_096, media_workers=1)
    server = TestServer(api_only_app(config))
    await server.start_server()
    host = await admin_client(server, "host@example.org")
    guest = await member_client(server, "guest@example.org", admin=host)
    room = (await (await host.post("/api/rooms", json={"kind": "consultation"})).json())["room"]
    host_socket = await host.ws_connect(f"/ws/rooms/{room['id']}")
    await host_socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    await _receive(host_socket)
    guest_socket = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await guest_socket.send_json({"type": "join", "speaks": "fr", "captions": "fr"})
    guest_id = (await _receive(guest_socket))["participant_id"]
    response = await host.delete(f"/api/rooms/{room['id']}/participants/{guest_id}")
    assert response.status == 200
    cookies = {
        name: client.session.cookie_jar.filter_cookies(server.make_url("/"))
        for name, client in (("host", host), ("guest", guest))
    }
    for client in (host, guest):
        await client.close()
    await server.close()

    restarted = TestServer(api_only_app(config), port=server.port)
    await restarted.start_server()
    host, guest = await new_client(restarted), await new_client(restarted)
    host.session.cookie_jar.update_cookies(cookies["host"])
    guest.session.cookie_jar.update_cookies(cookies["guest"])
    host_socket = await host.ws_connect(f"/ws/rooms/{room['id']}")
    await host_socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(host_socket))["type"] == "joined"
    guest_socket = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await guest_socket.send_json({"type": "join", "speaks": "fr", "captions": "fr"})
    assert (await _receive(guest_socket))["code"] == "removed"
    for client in (host, guest):
        await client.close()
    await restarted.close()


async def test_a_socket_that_never_joins_leaves_no_room_open(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    room = (await (await admin.post("/api/rooms", json={"kind": "review"})).json())["room"]
    calls = app_server.app[AppContext.KEY].calls
    socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    await socket.send_json({"type": "publish", "sdp": "v=0"})
    assert (await _receive(socket))["code"] == "not_joined"
    # Connected but not in the call: no live room (nor a room in /metrics).
    assert calls.rooms == []
    metrics = await (await admin.get("/metrics")).text()
    assert "babelcall_active_rooms 0.0" in metrics
    await socket.close()
    await admin.close()


async def test_a_socket_that_joins_after_the_room_emptied_meets_those_who_come_next(
    app_server: TestServer,
) -> None:
    admin = await admin_client(app_server)
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    room = (await (await admin.post("/api/rooms", json={"kind": "review"})).json())["room"]
    early = await admin.ws_connect(f"/ws/rooms/{room['id']}")  # opened, not joined yet
    passing = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await passing.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    assert (await _receive(passing))["type"] == "joined"
    await passing.close()  # the room's last participant leaves: the live room closes
    calls = app_server.app[AppContext.KEY].calls
    await wait_until(lambda: calls.room(room["id"]) is None, what="the live room closed")

    await early.send_json({"type": "join", "speaks": "en", "captions": "en"})
    early_id = (await _receive(early))["participant_id"]
    later = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await later.send_json({"type": "join", "speaks": "fr", "captions": "en"})
    joined = await _receive(later)
    assert early_id in {p["id"] for p in joined["room"]["participants"]}
    assert (await _receive(early))["type"] == "participant_joined"
    for socket in (early, later):
        await socket.close()
    for client in (admin, guest):
        await client.close()


async def test_a_failed_media_worker_tells_its_participants_and_new_calls_still_connect(
    app_server: TestServer,
) -> None:
    """Camera only, so no recognition: the media worker is what is under test."""
    admin = await admin_client(app_server)
    room = (await (await admin.post("/api/rooms", json={"kind": "review"})).json())["room"]
    socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(socket))["type"] == "joined"

    async def publish_camera() -> tuple[RTCPeerConnection, dict[str, Any]]:
        pc = RTCPeerConnection()
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await socket.send_json({"type": "publish", "sdp": pc.localDescription.sdp})
        return pc, await _receive(socket)

    enable_loopback_candidates()
    first, published = await publish_camera()
    assert published["type"] == "published" and published["kinds"] == ["video"]
    hub = app_server.app[AppContext.KEY].hub
    (worker_pid,) = hub.worker_pids()
    os.kill(worker_pid, signal.SIGKILL)
    lost = await _receive(socket)
    assert lost["type"] == "error" and lost["code"] == "media_lost", lost
    await first.close()

    # Joining again reaches the replacement worker.
    await socket.close()
    socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
    await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    assert (await _receive(socket))["type"] == "joined"
    second, published = await publish_camera()
    assert published["type"] == "published", published
    assert hub.worker_pids() != [worker_pid]
    await second.close()
    await socket.close()
    await admin.close()


async def test_glossary_is_the_hosts_to_edit_and_every_members_to_read(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    host = await member_client(app_server, "host@example.org", admin=admin)
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    assert room["glossary"] == []
    terms = ["metformin", {"term": "paracetamol", "renderings": {"en": "acetaminophen", "fr": "paracétamol"}}]

    response = await guest.put(f"/api/rooms/{room['id']}/glossary", json={"terms": terms})
    assert response.status == 403 and await error_code(response) == "not_host"
    response = await host.put(f"/api/rooms/{room['id']}/glossary", json={"terms": terms})
    assert response.status == 200
    stored = await (await guest.get(f"/api/rooms/{room['id']}/glossary")).json()
    assert stored["terms"] == [
        {"term": "metformin", "renderings": {}},
        {"term": "paracetamol", "renderings": {"en": "acetaminophen", "fr": "paracétamol"}},
    ]
    for bad in ("metformin", [{"term": ""}], [{"term": "x", "renderings": {"xx": "y"}}], ["t"] * 201):
        response = await host.put(f"/api/rooms/{room['id']}/glossary", json={"terms": bad})
        assert response.status == 400, bad
    stranger = await new_client(app_server)
    assert (await stranger.get(f"/api/rooms/{room['id']}/glossary")).status == 401
    for client in (admin, host, guest, stranger):
        await client.close()


async def test_metrics_need_the_token_when_one_is_configured(tmp_path: Path) -> None:
    app = api_only_app(Config(data_dir=tmp_path, metrics_token="s3cret", media_workers=1))
    async with TestServer(app) as server, TestClient(server) as client:
        assert (await client.get("/metrics")).status == 401
        response = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert response.status == 200
        text = await response.text()
        for name in (
            "babelcall_active_rooms",
            "babelcall_asr",
            'babelcall_media{figure="workers"} 1.0',
            "babelcall_model_info",
            "babelcall_translation_pending",
        ):
            assert name in text
        # Work that blocks the loop (here on purpose) shows up as event-loop lag.
        time.sleep(0.3)  # noqa: ASYNC251

        async def a_late_probe() -> bool:
            text = await (await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).text()
            lag = {
                line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("babelcall_event_loop_lag_seconds_bucket")
            }
            return lag["+Inf"] - lag["0.1"] >= 1  # the probe due during the block woke 0.2-0.3 s late

        await wait_until(a_late_probe, what="event-loop lag over 0.1 s in /metrics")


async def test_repeated_failed_sign_ins_are_refused_for_a_while(tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path, media_workers=1, signin_failures_per_email=3, signin_failures_per_address=5
    )
    async with TestServer(api_only_app(config, cheap_passwords())) as server:
        # The server's own limiter, on a clock the test moves: a loaded machine cannot let the window
        # pass early, nor keep it open.
        now = [1000.0]
        context = server.app[AppContext.KEY]
        context.signin_limits = AttemptLimiter({"email": 3, "address": 5}, window_s=900, clock=lambda: now[0])
        admin = await admin_client(server)
        guesser = await new_client(server)

        async def sign_in(email: str, password: str) -> Any:
            return await guesser.post("/api/login", json={"email": email, "password": password})

        for _ in range(3):
            assert (await sign_in("admin@example.org", "not the password")).status == 401
        # Now even the right password is refused, with a clear error and when to come back.
        refused = await sign_in("admin@example.org", PASSWORD)
        assert refused.status == 429 and await error_code(refused) == "too_many_attempts"
        assert int(refused.headers["Retry-After"]) == 900
        assert (await admin.get("/api/me")).status == 200  # sessions already open are untouched

        # Two more failures on other emails reach this address's limit: nothing from it is tried.
        for email in ("a@example.org", "b@example.org"):
            assert (await sign_in(email, "whatever it is")).status == 401
        assert (await sign_in("c@example.org", "whatever it is")).status == 429

        now[0] += 901  # the window passes
        assert (await sign_in("admin@example.org", PASSWORD)).status == 200
        # A success clears the account's count: two more failures do not lock it.
        for _ in range(2):
            assert (await sign_in("admin@example.org", "not the password")).status == 401
        assert (await sign_in("admin@example.org", PASSWORD)).status == 200
        for client in (admin, guesser):
            await client.close()


async def test_an_administrators_removal_says_an_administrator_removed_you(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    host = await member_client(app_server, "host@example.org", admin=admin)
    guest = await member_client(app_server, "guest@example.org", admin=admin)
    room = (await (await host.post("/api/rooms", json={"kind": "review"})).json())["room"]
    socket = await guest.ws_connect(f"/ws/rooms/{room['id']}")
    await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
    guest_id = (await _receive(socket))["participant_id"]
    assert (await admin.delete(f"/api/rooms/{room['id']}/participants/{guest_id}")).status == 200
    told = await _receive(socket)
    assert told["code"] == "removed" and told["message"] == "an administrator removed you from this call"
    for client in (admin, host, guest):
        await client.close()
