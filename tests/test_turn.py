"""Short-lived TURN credentials: their format, coturn's verdict on them, the settings, and who gets them."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aioice import stun, turn
from conftest import require_turn_server
from harness import free_port
from rest_app import admin_client, api_only_app
from turn_network import TurnServer, start_turn_server

from protocol import IceServer, IceServerError, ice_servers_from_json
from server.config import Config, ConfigError, load_config
from server.turn import ice_servers_for, turn_password, turn_username

SECRET = "north-wing relay secret"
PASSWORD = "a long enough password"
TURN_URLS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:443?transport=tcp")


def test_the_password_is_the_base64_hmac_sha1_of_the_username() -> None:
    # Computed independently: printf '%s' '1700000000:4f2a9c1d0b7e6a35' |
    #   openssl dgst -sha1 -hmac 'north-wing relay secret' -binary | base64
    username = turn_username("4f2a9c1d0b7e6a35", 1_700_000_000)
    assert username == "1700000000:4f2a9c1d0b7e6a35"
    assert turn_password(SECRET, username) == "HaTyznD/JaWWamULuFH9mCsIKX8="
    assert len(base64.b64decode(turn_password("another secret", username))) == 20
    assert turn_password("another secret", username) != turn_password(SECRET, username)


def test_members_get_stun_then_turn_with_credentials_expiring_after_the_lifetime() -> None:
    config = Config(
        ice_servers=("stun:stun.example.org:3478",),
        turn_urls=TURN_URLS,
        turn_secret=SECRET,
        turn_credential_ttl_s=3_600,
    )
    stun_entry, turn_entry = ice_servers_for(config, "4f2a9c1d0b7e6a35", now=1_700_000_000.7)
    assert stun_entry == IceServer(("stun:stun.example.org:3478",))
    assert turn_entry.urls == TURN_URLS
    assert turn_entry.username == "1700003600:4f2a9c1d0b7e6a35"
    assert turn_entry.credential == turn_password(SECRET, "1700003600:4f2a9c1d0b7e6a35")
    other = ice_servers_for(config, "0123456789abcdef", now=1_700_000_000)[1]
    assert other.username == "1700003600:0123456789abcdef" and other.credential != turn_entry.credential

    assert ice_servers_for(Config(ice_servers=("stun:stun.example.org:3478",)), "x") == [stun_entry]
    assert ice_servers_for(Config(), "x") == []


def test_the_response_shape_round_trips_and_bad_shapes_are_refused() -> None:
    servers = [IceServer(("stun:a:3478",)), IceServer(TURN_URLS, "1:m", "c2VjcmV0")]
    body = {"ice_servers": [server.to_dict() for server in servers]}
    assert body["ice_servers"][0] == {"urls": ["stun:a:3478"]}
    assert ice_servers_from_json(body) == servers
    # A single URL string is allowed, as in the browser's RTCIceServer.
    assert ice_servers_from_json({"ice_servers": [{"urls": "stun:a:3478"}]}) == servers[:1]
    for bad in (
        [],
        {"ice_servers": "stun:a"},
        {"ice_servers": [{"urls": []}]},
        {"ice_servers": [{"urls": [3478]}]},
        {"ice_servers": [{"urls": ["turn:a"], "username": 7}]},
        {"ice_servers": ["turn:a"]},
    ):
        with pytest.raises(IceServerError):
            ice_servers_from_json(bad)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BABELCALL_ICE_SERVERS": "turn:turn.example.org:3478"}, "TURN servers go in turn_urls"),
        ({"BABELCALL_TURN_URLS": "https://turn.example.org", "BABELCALL_TURN_SECRET": "s"}, "bad turn_urls"),
        (
            {"BABELCALL_TURN_URLS": "turns:t.example.org:443?transport=udp", "BABELCALL_TURN_SECRET": "s"},
            "bad",
        ),
        ({"BABELCALL_TURN_URLS": "turn:turn.example.org:3478"}, "turn_urls need turn_secret"),
        ({"BABELCALL_TURN_SECRET": "s"}, "turn_urls is empty"),
        (
            {
                "BABELCALL_TURN_URLS": "turn:t:3478",
                "BABELCALL_TURN_SECRET": "s",
                "BABELCALL_TURN_CREDENTIAL_TTL_S": "0",
            },
            "turn_credential_ttl_s must be a positive",
        ),
    ],
)
def test_bad_turn_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=environ)


def test_turn_settings_load_and_the_secret_is_never_printed(tmp_path: Path) -> None:
    config = load_config(
        environ={
            "BABELCALL_DATA_DIR": str(tmp_path),
            "BABELCALL_TURN_URLS": ",".join(TURN_URLS),
            "BABELCALL_TURN_SECRET": SECRET,
        }
    )
    assert config.turn_urls == TURN_URLS and config.turn_secret == SECRET
    assert config.turn_credential_ttl_s == 43_200
    described = config.describe()
    assert "turn_secret = (set)" in described and SECRET not in described


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TurnServer, int]]:
    require_turn_server()
    port = free_port()
    server = start_turn_server(
        tmp_path_factory.mktemp("coturn"),
        SECRET,
        listening_ip="127.0.0.1",
        relay_ip="127.0.0.1",
        udp_port=port,
    )
    yield server, port
    server.stop()


async def _allocate(port: int, server: IceServer) -> tuple[str, int]:
    """Ask coturn for a relay with `server`'s credentials; its relayed address, or TransactionFailed."""
    transport, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", port), server.username, server.credential
        ),
        30,
    )
    relayed: tuple[str, int] = transport.get_extra_info("sockname")
    transport.close()
    return relayed


async def test_coturn_relays_with_fresh_credentials_and_refuses_expired_or_forged_ones(
    coturn: tuple[TurnServer, int],
) -> None:
    turn_server, port = coturn
    config = Config(turn_urls=(f"turn:127.0.0.1:{port}",), turn_secret=SECRET, turn_credential_ttl_s=600)
    fresh = ice_servers_for(config, "4f2a9c1d0b7e6a35")[0]
    assert (await _allocate(port, fresh))[0] == "127.0.0.1"

    expired = ice_servers_for(config, "4f2a9c1d0b7e6a35", now=time.time() - 3 * 3600)[0]
    forged = ice_servers_for(Config(turn_urls=config.turn_urls, turn_secret="guessed"), "4f2a9c1d0b7e6a35")[0]
    for refused in (expired, forged):
        with pytest.raises(stun.TransactionFailed) as failure:
            await _allocate(port, refused)
        assert failure.value.response.attributes["ERROR-CODE"][0] == 401
    log = turn_server.log()
    assert f"user <{fresh.username}>: incoming packet ALLOCATE processed, success" in log
    assert f"user <{expired.username}>: incoming packet ALLOCATE processed, success" not in log


@pytest.fixture
async def app_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    config = Config(
        data_dir=tmp_path,
        media_workers=1,
        ice_servers=("stun:stun.example.org:3478",),
        turn_urls=TURN_URLS,
        turn_secret=SECRET,
    )
    server = TestServer(api_only_app(config))
    await server.start_server()
    yield server
    await server.close()


async def _signed_in(server: TestServer, email: str) -> tuple[TestClient, str]:
    client = TestClient(server)
    await client.start_server()
    response = await client.post("/api/apply", json={"name": "Dr Test", "email": email, "password": PASSWORD})
    assert response.status == 201, await response.text()
    member_id = str((await response.json())["member"]["id"])
    response = await client.post("/api/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return client, member_id


async def test_only_approved_members_get_credentials(app_server: TestServer) -> None:
    admin = await admin_client(app_server, "admin@example.org")
    admin_id = (await (await admin.get("/api/me")).json())["member"]["id"]
    applicant, applicant_id = await _signed_in(app_server, "applicant@example.org")
    stranger = TestClient(app_server)
    await stranger.start_server()
    try:
        response = await stranger.get("/api/ice")
        assert response.status == 401 and (await response.json())["error"]["code"] == "not_signed_in"
        response = await applicant.get("/api/ice")
        assert response.status == 403 and (await response.json())["error"]["code"] == "not_approved"
        info = await (await stranger.get("/api/info")).json()
        assert "ice_servers" not in info and SECRET not in str(info)

        response = await admin.get("/api/ice")
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
        stun_entry, turn_entry = ice_servers_from_json(await response.json())
        assert stun_entry == IceServer(("stun:stun.example.org:3478",))
        assert turn_entry.urls == TURN_URLS and turn_entry.username is not None
        expires_at, member_id = turn_entry.username.split(":")
        assert member_id == admin_id
        assert abs(int(expires_at) - (time.time() + 43_200)) < 600
        assert turn_entry.credential == turn_password(SECRET, turn_entry.username)

        # Approved, the applicant gets credentials of its own.
        assert (await admin.post(f"/api/admin/members/{applicant_id}/approve")).status == 200
        response = await applicant.get("/api/ice")
        turn_entry = ice_servers_from_json(await response.json())[1]
        assert turn_entry.username is not None and turn_entry.username.endswith(f":{applicant_id}")
    finally:
        for client in (admin, applicant, stranger):
            await client.close()
