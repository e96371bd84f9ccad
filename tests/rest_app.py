"""The real server application without speech or translation models, and the account steps REST tests
share: the administrator made with the setup link, members who apply and are approved."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from asr import RecognizerStats
from mt import TranslationEngine
from server.app import create_app
from server.config import Config
from server.context import AppContext
from server.passwords import PasswordWork

PASSWORD = "a long enough password"


class UnusedRecognizer:
    """These tests never publish audio; anything touching recognition is a bug in the test."""

    def open_stream(self, **_: Any) -> None:
        raise AssertionError("no recognition expected in API tests")

    async def aclose(self) -> None:
        return None

    def stats(self) -> RecognizerStats:
        return RecognizerStats(0, 0, 0, 0, 0.0, 0, 0.0, 0, 0)


def cheap_passwords() -> PasswordWork:
    """Real argon2id at the lowest cost, for tests that sign in thousands of times: what they test is
    not the hash's strength (tests/test_passwords.py checks the production parameters)."""
    return PasswordWork(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def api_only_app(
    config: Config,
    passwords: PasswordWork | None = None,
    *,
    engine: TranslationEngine | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The real server with no speech model (these tests never publish audio), and no translation model
    unless `engine` is given."""
    return create_app(
        config,
        recognizer=UnusedRecognizer(),  # type: ignore[arg-type]
        engine=engine or TranslationEngine([]),
        passwords=passwords,
        clock=clock,
    )


async def new_client(server: TestServer) -> TestClient:
    client = TestClient(server)
    await client.start_server()
    return client


async def admin_client(server: TestServer, email: str = "admin@example.org") -> TestClient:
    """The server's administrator, made with the one-time setup link the server printed, signed in."""
    client = await new_client(server)
    token = server.app[AppContext.KEY].setup_token
    response = await client.post(
        "/api/setup",
        json={"token": token, "name": email.split("@")[0], "email": email, "password": PASSWORD},
    )
    assert response.status == 201, await response.text()
    return client


async def member_client(server: TestServer, email: str, admin: TestClient | None = None) -> TestClient:
    """Apply and sign in: approved by `admin` if given, else still pending."""
    client = await new_client(server)
    response = await client.post(
        "/api/apply", json={"name": email.split("@")[0], "email": email, "password": PASSWORD}
    )
    assert response.status == 201, await response.text()
    member = (await response.json())["member"]
    if admin is not None:
        response = await admin.post(f"/api/admin/members/{member['id']}/approve")
        assert response.status == 200
    response = await client.post("/api/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200
    return client


async def error_code(response: Any) -> str:
    return str((await response.json())["error"]["code"])
