"""Who may do what: every REST endpoint (and the signalling handshake) × every role, from one table.

Each row is an action and the outcome each role must get: "200", "201", "101" (WebSocket accepted),
"joined" (a signalling reply's type), or "<status> <error code>" / "error <code>" for a refusal.
`ALL_ROLES(...)` and `MEMBERS_ONLY(...)` build the usual rows. A signalling action is one more row:
its `perform` opens a socket as the role (`signal(...)` does this for one message) and returns the
reply's type, or "error <code>".

The roles, all in one room's world: nobody signed in; an applicant still pending; a rejected member
(holding the session cookie they had before the rejection); an approved member who is not in the
call; a participant in the call; the room's host; the administrator.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from rest_app import PASSWORD, admin_client, api_only_app, cheap_passwords, member_client, new_client

from server.config import Config

ROLES = ("anonymous", "applicant", "rejected", "member", "participant", "host", "administrator")
Outcome = str
Perform = Callable[["World", str], Awaitable[Outcome]]


@dataclass
class World:
    server: TestServer
    clients: dict[str, TestClient]
    emails: dict[str, str]
    room_id: str
    admin: TestClient
    sockets: list[Any] = field(default_factory=list)
    others: list[TestClient] = field(default_factory=list)  # clients beyond the roles', closed at the end
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def unique_email(self) -> str:
        return f"someone{next(self._serial)}@example.org"

    async def new_client(self) -> TestClient:
        client = await new_client(self.server)
        self.others.append(client)
        return client

    async def new_applicant_id(self) -> str:
        """A pending application to approve or reject."""
        response = await self.admin.post(
            "/api/apply", json={"name": "Applicant", "email": self.unique_email(), "password": PASSWORD}
        )
        assert response.status == 201
        return str((await response.json())["member"]["id"])

    async def new_participant_id(self) -> str:
        """Another approved member, in the call now, to be removed."""
        client = await member_client(self.server, self.unique_email(), admin=self.admin)
        self.others.append(client)
        return await self.join(client)

    async def join(self, client: TestClient) -> str:
        socket = await client.ws_connect(f"/ws/rooms/{self.room_id}")
        self.sockets.append(socket)
        await socket.send_json({"type": "join", "speaks": "en", "captions": "fr"})
        reply = await socket.receive_json(timeout=30)
        assert reply["type"] == "joined", reply
        return str(reply["participant_id"])

    async def spare_room(self) -> str:
        """Another room of the host's, for actions that would end or delete the shared one."""
        response = await self.clients["host"].post("/api/rooms", json={"kind": "review"})
        assert response.status == 201
        return str((await response.json())["room"]["id"])

    async def fill(self, path: str) -> str:
        if "{spare_room}" in path:
            path = path.replace("{spare_room}", await self.spare_room())
        if "{applicant}" in path:
            path = path.replace("{applicant}", await self.new_applicant_id())
        if "{participant}" in path:
            path = path.replace("{participant}", await self.new_participant_id())
        return path.replace("{room}", self.room_id)


async def outcome(response: Any) -> Outcome:
    if response.status < 400:
        return str(response.status)
    return f"{response.status} {(await response.json())['error']['code']}"


def rest(method: str, path: str, body: Callable[[World], Any] | None = None) -> Perform:
    async def perform(world: World, role: str) -> Outcome:
        payload = body(world) if body is not None else None
        return await outcome(await world.clients[role].request(method, await world.fill(path), json=payload))

    return perform


async def _new_session(world: World, role: str) -> tuple[Outcome, TestClient]:
    """The role signs in on a client of its own (so the role's usual session stays signed in)."""
    client = await world.new_client()
    email = world.emails.get(role, "nobody@example.org")
    return await outcome(await client.post("/api/login", json={"email": email, "password": PASSWORD})), client


async def sign_in(world: World, role: str) -> Outcome:
    return (await _new_session(world, role))[0]


async def sign_out(world: World, role: str) -> Outcome:
    _, client = await _new_session(world, role)
    return await outcome(await client.post("/api/logout"))


async def handshake(world: World, role: str) -> Outcome:
    path = f"/ws/rooms/{world.room_id}"
    try:
        socket = await world.clients[role].ws_connect(path)
    except WSServerHandshakeError:
        return await outcome(await world.clients[role].get(path))  # the same checks, as JSON
    await socket.close()
    return "101"


def signal(message: dict[str, Any]) -> Perform:
    """One signalling message on a new socket of the role's: the reply's type, or "error <code>"."""

    async def perform(world: World, role: str) -> Outcome:
        try:
            socket = await world.clients[role].ws_connect(f"/ws/rooms/{world.room_id}")
        except WSServerHandshakeError:
            return await outcome(await world.clients[role].get(f"/ws/rooms/{world.room_id}"))
        world.sockets.append(socket)
        await socket.send_json(message)
        reply = await socket.receive_json(timeout=30)
        return str(reply["type"]) if reply["type"] != "error" else f"error {reply['code']}"

    return perform


def signal_joined(message: dict[str, Any]) -> Perform:
    """Join on a new socket of the role's, then send `message`: the first reply that is not about
    someone joining, or "error <code>", or the handshake's refusal."""

    async def perform(world: World, role: str) -> Outcome:
        try:
            socket = await world.clients[role].ws_connect(f"/ws/rooms/{world.room_id}")
        except WSServerHandshakeError:
            return await outcome(await world.clients[role].get(f"/ws/rooms/{world.room_id}"))
        world.sockets.append(socket)
        await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
        assert (await socket.receive_json(timeout=30))["type"] == "joined"
        await socket.send_json(message)
        while (reply := await socket.receive_json(timeout=30))["type"] in {
            "participant_joined",
            "participant_left",
        }:
            pass
        await socket.close()
        return str(reply["type"]) if reply["type"] != "error" else f"error {reply['code']}"

    return perform


def ALL_ROLES(outcome: Outcome, **overrides: Outcome) -> dict[str, Outcome]:
    return {role: overrides.get(role, outcome) for role in ROLES}


def MEMBERS_ONLY(outcome: Outcome, **overrides: Outcome) -> dict[str, Outcome]:
    """Approved members get `outcome`; nobody else gets in."""
    refused = {
        "anonymous": "401 not_signed_in",
        "rejected": "401 not_signed_in",
        "applicant": "403 not_approved",
    }
    return ALL_ROLES(outcome, **{**refused, **overrides})


def ADMIN_ONLY(outcome: Outcome) -> dict[str, Outcome]:
    return MEMBERS_ONLY("403 not_admin", administrator=outcome)


def HOST_OR_ADMIN(outcome: Outcome) -> dict[str, Outcome]:
    return MEMBERS_ONLY("403 not_host", host=outcome, administrator=outcome)


@dataclass(frozen=True)
class Row:
    action: str
    perform: Perform
    expected: Mapping[str, Outcome]


TABLE = [
    Row("GET /healthz", rest("GET", "/healthz"), ALL_ROLES("200")),
    Row("GET /api/info", rest("GET", "/api/info"), ALL_ROLES("200")),
    Row("GET /metrics (loopback server)", rest("GET", "/metrics"), ALL_ROLES("200")),
    Row("GET / (the page)", rest("GET", "/"), ALL_ROLES("200")),
    Row("GET /setup (the page)", rest("GET", "/setup"), ALL_ROLES("200")),
    Row(
        "POST /api/apply",
        rest("POST", "/api/apply", lambda w: {"name": "N", "email": w.unique_email(), "password": PASSWORD}),
        ALL_ROLES("201"),
    ),
    # A rejected member's right password answers exactly as a wrong one.
    Row(
        "POST /api/login",
        sign_in,
        ALL_ROLES("200", anonymous="401 bad_credentials", rejected="401 bad_credentials"),
    ),
    Row("POST /api/logout", sign_out, ALL_ROLES("200")),
    Row(
        "POST /api/setup (an administrator exists)",
        rest(
            "POST",
            "/api/setup",
            lambda w: {"token": "t", "name": "N", "email": w.unique_email(), "password": PASSWORD},
        ),
        ALL_ROLES("403 bad_setup_token"),
    ),
    Row("GET /api/me", rest("GET", "/api/me"), MEMBERS_ONLY("200", applicant="200")),
    Row("GET /api/admin/members", rest("GET", "/api/admin/members"), ADMIN_ONLY("200")),
    Row(
        "POST approve an application",
        rest("POST", "/api/admin/members/{applicant}/approve"),
        ADMIN_ONLY("200"),
    ),
    Row(
        "POST reject an application", rest("POST", "/api/admin/members/{applicant}/reject"), ADMIN_ONLY("200")
    ),
    Row("POST /api/rooms", rest("POST", "/api/rooms", lambda w: {"kind": "review"}), MEMBERS_ONLY("201")),
    Row("GET /api/rooms", rest("GET", "/api/rooms"), MEMBERS_ONLY("200")),
    Row("GET /api/rooms/{id}", rest("GET", "/api/rooms/{room}"), MEMBERS_ONLY("200")),
    Row("GET /api/rooms/no-such-room", rest("GET", "/api/rooms/no-such-room"), MEMBERS_ONLY("404 no_room")),
    Row("GET the room's glossary", rest("GET", "/api/rooms/{room}/glossary"), MEMBERS_ONLY("200")),
    Row(
        "PUT the room's glossary",
        rest("PUT", "/api/rooms/{room}/glossary", lambda w: {"terms": ["metformin"]}),
        HOST_OR_ADMIN("200"),
    ),
    Row(
        "DELETE a participant from the call",
        rest("DELETE", "/api/rooms/{room}/participants/{participant}"),
        HOST_OR_ADMIN("200"),
    ),
    Row(
        "POST ask a participant to mute",
        rest("POST", "/api/rooms/{room}/participants/{participant}/mute"),
        HOST_OR_ADMIN("200"),
    ),
    Row("POST end a call for everyone", rest("POST", "/api/rooms/{spare_room}/end"), HOST_OR_ADMIN("200")),
    Row("DELETE a room", rest("DELETE", "/api/rooms/{spare_room}"), HOST_OR_ADMIN("200")),
    Row("GET /api/ice", rest("GET", "/api/ice"), MEMBERS_ONLY("200")),
    Row("GET /api/records", rest("GET", "/api/records"), MEMBERS_ONLY("200")),
    # Allowed, but there is nobody in that room's call to record.
    Row("POST start a record", rest("POST", "/api/rooms/{spare_room}/record"), HOST_OR_ADMIN("409 no_call")),
    Row("GET /ws/rooms/{id} (handshake)", handshake, MEMBERS_ONLY("101")),
    # Signalling: the handshake's checks are the only ones by role; in the call, everyone may do the
    # same. The participant's join takes its seat over (another tab), so these come last.
    Row(
        "publish before joining", signal({"type": "publish", "sdp": "v=0"}), MEMBERS_ONLY("error not_joined")
    ),
    Row("chat before joining", signal({"type": "chat", "text": "hello"}), MEMBERS_ONLY("error not_joined")),
    Row("join the call", signal({"type": "join", "speaks": "en", "captions": "en"}), MEMBERS_ONLY("joined")),
    Row(
        "change caption language",
        signal_joined({"type": "languages", "captions": "fr"}),
        MEMBERS_ONLY("participant_updated"),
    ),
    Row("chat", signal_joined({"type": "chat", "text": "hello"}), MEMBERS_ONLY("chat")),
    Row(
        "subscribe to nobody",
        signal_joined({"type": "subscribe", "publisher_id": "nobody", "sdp": "v=0"}),
        MEMBERS_ONLY("error unknown_participant"),
    ),
    Row(
        "answer a record that is not running",
        signal_joined({"type": "record_consent", "agree": True}),
        MEMBERS_ONLY("error no_record"),
    ),
]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = Config(
        data_dir=tmp_path,
        media_workers=1,
        signin_failures_per_email=0,
        signin_failures_per_address=0,
        applications_per_address=0,
        max_review_participants=100,  # rows seat new participants to remove or mute
    )
    async with TestServer(api_only_app(config, cheap_passwords())) as server:
        admin = await admin_client(server)
        emails = {role: f"{role}@example.org" for role in ROLES if role != "anonymous"}
        emails["administrator"] = "admin@example.org"
        clients = {"anonymous": await new_client(server), "administrator": admin}
        clients["applicant"] = await member_client(server, emails["applicant"])
        for role in ("member", "participant", "host", "rejected"):
            clients[role] = await member_client(server, emails[role], admin=admin)
        rejected_id = (await (await clients["rejected"].get("/api/me")).json())["member"]["id"]
        assert (await admin.post(f"/api/admin/members/{rejected_id}/reject")).status == 200
        room = await (await clients["host"].post("/api/rooms", json={"kind": "review"})).json()
        world = World(server, clients, emails, room["room"]["id"], admin)
        await world.join(clients["participant"])
        yield world
        for socket in world.sockets:
            await socket.close()
        for client in [*world.clients.values(), *world.others]:
            await client.close()


async def test_every_endpoint_answers_every_role_as_the_table_says(world: World) -> None:
    for row in TABLE:
        assert set(row.expected) == set(ROLES), row.action
    mismatches = []
    for row in TABLE:
        for role in ROLES:
            got = await row.perform(world, role)
            if got != row.expected[role]:
                mismatches.append(f"{row.action} as {role}: expected {row.expected[role]}, got {got}")
    assert not mismatches, "\n".join(mismatches)
