"""Cross-site protection (Origin, JSON bodies), the security headers on every response, errors that
are all JSON with a code, and /metrics on a server reachable from other machines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient, TestServer
from rest_app import (
    PASSWORD,
    admin_client,
    api_only_app,
    cheap_passwords,
    error_code,
    member_client,
    new_client,
)

from server.config import Config, ConfigError
from server.context import AppContext
from server.security import normalise_origin

EVIL = "https://evil.example"


@pytest.fixture
async def app_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    config = Config(data_dir=tmp_path, media_workers=1, allowed_origins=("https://babelcall.example.org",))
    async with TestServer(api_only_app(config, cheap_passwords())) as server:
        yield server


def own_origin(server: TestServer) -> str:
    return f"http://{server.host}:{server.port}"


async def test_cross_site_requests_are_refused_before_they_act(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    applicant = await member_client(app_server, "applicant@example.org")
    applicant_id = (await (await applicant.get("/api/me")).json())["member"]["id"]

    # What a page on another site (another port, a sibling subdomain) makes the administrator's
    # browser send, cookie included: each is refused, and nothing happens.
    attacks: list[tuple[str, str, dict[str, str], Any]] = [
        ("POST", f"/api/admin/members/{applicant_id}/approve", {"Origin": EVIL}, None),
        ("POST", f"/api/admin/members/{applicant_id}/approve", {"Origin": "null"}, None),
        ("POST", f"/api/admin/members/{applicant_id}/reject", {"Origin": "http://127.0.0.1:1"}, None),
        ("POST", "/api/rooms", {"Origin": EVIL, "Content-Type": "application/json"}, b"{}"),
        ("POST", "/api/login", {"Origin": EVIL, "Content-Type": "application/json"}, b"{}"),
        ("POST", "/api/apply", {"Origin": "null", "Content-Type": "application/json"}, b"{}"),
        ("POST", "/api/logout", {"Origin": EVIL}, None),
    ]
    for method, path, headers, body in attacks:
        response = await admin.request(method, path, headers=headers, data=body)
        assert response.status == 403, (path, headers)
        assert await error_code(response) == "bad_origin", (path, headers)
    me = await (await applicant.get("/api/me")).json()
    assert me["member"]["status"] == "pending"
    assert (await (await admin.get("/api/rooms")).json())["rooms"] == []
    assert (await admin.get("/api/me")).status == 200  # not logged out

    # A text/plain (or form) post cannot act even from this server's own origin, body or no body.
    for content_type, body in (
        ("text/plain", b'{"kind": "review"}'),
        ("text/plain", b""),
        ("application/x-www-form-urlencoded", b"kind=review"),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/json; charset=latin-1", b"{}"),
    ):
        for path in ("/api/rooms", f"/api/admin/members/{applicant_id}/approve"):
            response = await admin.post(path, data=body, headers={"Content-Type": content_type})
            assert response.status == 415, (path, content_type)
            assert await error_code(response) == "unsupported_media_type"
    assert (await (await admin.get("/api/rooms")).json())["rooms"] == []
    assert (await (await applicant.get("/api/me")).json())["member"]["status"] == "pending"

    # The server's own pages (their origin, however written) and the configured proxy origin may act.
    for origin in (
        own_origin(app_server),
        own_origin(app_server).upper() + "/",
        "https://babelcall.example.org",
    ):
        response = await admin.post("/api/rooms", json={"kind": "review"}, headers={"Origin": origin})
        assert response.status == 201, origin
    response = await admin.post(
        f"/api/admin/members/{applicant_id}/approve", headers={"Origin": own_origin(app_server)}
    )
    assert response.status == 200
    for client in (admin, applicant):
        await client.close()


async def test_the_websocket_handshake_checks_the_origin(app_server: TestServer) -> None:
    admin = await admin_client(app_server)
    room = (await (await admin.post("/api/rooms", json={})).json())["room"]
    path = f"/ws/rooms/{room['id']}"
    for origin in (EVIL, "null", "http://localhost:1", "file://"):
        with pytest.raises(WSServerHandshakeError) as refused:
            await admin.ws_connect(path, origin=origin)
        assert refused.value.status == 403, origin
    for origin in (own_origin(app_server), "https://babelcall.example.org", None):
        socket = await admin.ws_connect(path, origin=origin)
        await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
        assert (await socket.receive_json(timeout=10))["type"] == "joined", origin
        await socket.close()
    await admin.close()


def test_allowed_origins_are_origins() -> None:
    config = Config(allowed_origins=("HTTPS://BabelCall.Example.org:443/", "http://[::1]:8080"))
    assert config.allowed_origins == ("https://babelcall.example.org", "http://[::1]:8080")
    for bad in ("babelcall.example.org", "https://babelcall.example.org/app", "null", "ftp://x.org"):
        with pytest.raises(ConfigError, match="allowed_origins"):
            Config(allowed_origins=(bad,))
    assert normalise_origin("http://user@x.org") is None


SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


def assert_secured(response: Any, *, private: bool) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, (response.url, response.status, name)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    if private:
        assert response.headers.get("Cache-Control") == "no-store", (response.url, response.status)


async def test_every_response_carries_the_security_headers_and_errors_are_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = api_only_app(Config(data_dir=tmp_path, media_workers=1), cheap_passwords())

    async def failing(request: web.Request) -> web.Response:
        raise ValueError("Patient Jane Doe, 42, metastatic")  # user data in an exception's text

    app.router.add_get("/api/failing", failing)
    async with TestServer(app) as server, TestClient(server) as stranger:
        admin = await admin_client(server)
        pending = await member_client(server, "pending@example.org")
        room = (await (await admin.post("/api/rooms", json={})).json())["room"]
        checks: list[tuple[TestClient, str, str, int, str | None]] = [
            (stranger, "GET", "/", 200, None),
            (stranger, "GET", "/static/js/main.js", 200, None),
            (stranger, "GET", "/api/info", 200, None),
            (admin, "GET", "/api/me", 200, None),
            (stranger, "GET", "/api/me", 401, "not_signed_in"),
            (stranger, "GET", "/api/rooms", 401, "not_signed_in"),  # membership check (context)
            (pending, "GET", "/api/rooms", 403, "not_approved"),
            (pending, "GET", "/api/admin/members", 403, "not_approved"),
            (stranger, "GET", f"/ws/rooms/{room['id']}", 401, "not_signed_in"),  # WebSocket handshake
            (pending, "GET", f"/ws/rooms/{room['id']}", 403, "not_approved"),
            (admin, "GET", "/ws/rooms/no-such-room", 404, "no_room"),
            (stranger, "GET", "/no/such/page", 404, "not_found"),  # the router's own 404
            (stranger, "GET", "/static/no-such-file.js", 404, None),  # aiohttp's file response: empty
            (stranger, "DELETE", "/api/info", 405, "method_not_allowed"),  # and its 405
            (stranger, "POST", "/api/login", 400, "bad_json"),
            (stranger, "GET", "/api/failing", 500, "internal_error"),
        ]
        for client, method, path, status, code in checks:
            response = await client.request(method, path)
            assert response.status == status, (method, path, await response.text())
            assert_secured(response, private=status >= 400 or path.startswith(("/api/", "/ws/")))
            if code is not None:
                body = await response.json()
                assert body["error"]["code"] == code, (path, body)
        response = await stranger.get("/api/failing")
        assert await response.json() == {"error": {"code": "internal_error", "message": "the server failed"}}
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP, no proxy said otherwise
        # A successful WebSocket handshake carries them too.
        socket = await admin.ws_connect(f"/ws/rooms/{room['id']}")
        for name in SECURITY_HEADERS:
            assert name in socket._response.headers
        await socket.close()
        for client in (admin, pending):
            await client.close()
    # The failure is logged by type and place, never with the exception's text or a traceback.
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(failures) == 2 and not any(record.exc_info for record in failures)  # asked twice above
    logged = failures[0].getMessage()
    assert "ValueError" in logged and "test_security.py" in logged and "failing" in logged
    assert "Jane" not in "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "settings", [{"cookie_secure": True}, {"tls_cert": Path("cert.pem"), "tls_key": Path("key.pem")}]
)
async def test_hsts_when_the_server_is_reached_over_https(tmp_path: Path, settings: dict[str, Any]) -> None:
    """TLS itself is tested end to end in test_tls.py; here, the header for both ways of serving HTTPS."""
    config = Config(data_dir=tmp_path, media_workers=1, **settings)
    async with TestServer(api_only_app(config, cheap_passwords())) as server, TestClient(server) as client:
        for path in ("/", "/api/info", "/api/me", "/nowhere"):
            response = await client.get(path)
            assert response.headers["Strict-Transport-Security"].startswith("max-age="), path


async def test_metrics_beyond_loopback_need_the_token_or_an_explicit_opt_in(tmp_path: Path) -> None:
    for number, (settings, status) in enumerate(
        (
            ({"host": "0.0.0.0"}, 401),
            ({"host": "192.0.2.10"}, 401),
            ({"host": "babelcall.example.org"}, 401),
            ({"host": "0.0.0.0", "metrics_public": True}, 200),
            ({"host": "127.0.0.1"}, 200),
            ({"host": "::1"}, 200),
            ({"host": "localhost"}, 200),
        )
    ):
        config = Config(data_dir=tmp_path / str(number), media_workers=1, **settings)
        app = api_only_app(config, cheap_passwords())
        async with TestServer(app) as server, TestClient(server) as client:
            response = await client.get("/metrics")
            assert response.status == status, settings
            if status == 401:
                assert await error_code(response) == "not_authorised"
                assert "metrics_token" in (await response.json())["error"]["message"]


async def test_applications_are_limited_per_address(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, media_workers=1, applications_per_address=2)
    async with TestServer(api_only_app(config, cheap_passwords())) as server:
        client = await new_client(server)
        # Bad input is not counted: it costs no hash, and a careless applicant may correct it.
        for _ in range(3):
            response = await client.post("/api/apply", json={"name": "N", "email": "x", "password": PASSWORD})
            assert response.status == 400
        for i in range(2):
            response = await client.post(
                "/api/apply", json={"name": "N", "email": f"n{i}@example.org", "password": PASSWORD}
            )
            assert response.status == 201
        refused = await client.post(
            "/api/apply", json={"name": "N", "email": "n9@example.org", "password": PASSWORD}
        )
        assert refused.status == 429 and await error_code(refused) == "too_many_attempts"
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
        members = [m.email for m in await server.app[AppContext.KEY].store.members()]
        assert "n9@example.org" not in members
        await client.close()
