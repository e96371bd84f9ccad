"""Password hashing: argon2id in worker threads (never on the event loop), the same path for unknown
emails, old scrypt hashes still accepted and replaced, and a bounded queue."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from rest_app import PASSWORD, admin_client, api_only_app, cheap_passwords, error_code

from server.config import Config
from server.context import AppContext
from server.passwords import HashingBusy, PasswordWork
from server.store import MemberStatus


class BlockingHasher(PasswordHasher):
    """Real argon2id that records, for each check, the hash it checks against and the thread it runs
    on, and waits for `release` first (so the test can look at the server while a check is running)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.started = threading.Event()
        self.release = threading.Event()
        self.checked: list[tuple[str, str]] = []  # (hash, thread name)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.checked.append((str(hash), threading.current_thread().name))
        self.started.set()
        assert self.release.wait(timeout=60), "the test never released the hasher"
        return super().verify(hash, password)


async def test_a_sign_in_hashes_off_the_loop_and_an_unknown_email_takes_the_same_path(tmp_path: Path) -> None:
    hasher = BlockingHasher()
    app = api_only_app(Config(data_dir=tmp_path, media_workers=1), PasswordWork(hasher))
    async with TestServer(app) as server, TestClient(server) as client:
        admin = await admin_client(server)  # closing a TestClient closes its server: kept to the end
        loop_thread = threading.current_thread().name

        for email, password in (("admin@example.org", PASSWORD), ("nobody@example.org", "a guess at it")):
            hasher.started.clear()
            hasher.release.clear()
            sign_in = asyncio.create_task(
                client.post("/api/login", json={"email": email, "password": password})
            )
            assert await asyncio.to_thread(hasher.started.wait, 60)
            # The check is running (and blocked): the event loop still answers.
            assert not sign_in.done()
            health = await client.get("/healthz")
            assert health.status == 200 and await health.json() == {"status": "ok"}
            hasher.release.set()
            response = await sign_in
            assert response.status == (200 if email == "admin@example.org" else 401), email

        (real_hash, real_thread), (dummy_hash, dummy_thread) = hasher.checked
        assert real_thread != loop_thread and dummy_thread != loop_thread
        assert real_thread.startswith("password") and dummy_thread.startswith("password")
        # The unknown email was checked against an argon2id hash with the same parameters as a
        # member's, so it costs the same work.
        parameters = real_hash.split("$")[1:4]
        assert parameters[0] == "argon2id" and dummy_hash.split("$")[1:4] == parameters
        await admin.close()


async def test_the_production_hasher_is_argon2id_with_rfc_9106_parameters() -> None:
    work = PasswordWork()
    await work.start()
    stored = await work.hash("correct horse battery staple")
    profile = RFC_9106_LOW_MEMORY
    assert stored.startswith(
        f"$argon2id$v=19$m={profile.memory_cost},t={profile.time_cost},p={profile.parallelism}$"
    )
    assert (await work.verify(stored, "correct horse battery staple")).correct
    assert not (await work.verify(stored, "Correct horse battery staple")).correct
    assert not (await work.verify(None, "correct horse battery staple")).correct
    await work.close()


def scrypt_hash(password: str) -> str:
    """A hash as BabelCall stored them before argon2."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


async def test_old_scrypt_and_weaker_argon2_hashes_sign_in_and_are_replaced(tmp_path: Path) -> None:
    work = cheap_passwords()
    app = api_only_app(Config(data_dir=tmp_path, media_workers=1), work)
    async with TestServer(app) as server, TestClient(server) as client:
        store = server.app[AppContext.KEY].store
        await store.create_member(
            email="old@example.org",
            name="Old",
            organisation="",
            password_hash=scrypt_hash(PASSWORD),
            status=MemberStatus.APPROVED,
        )

        async def sign_in(password: str) -> int:
            response = await client.post(
                "/api/login", json={"email": "old@example.org", "password": password}
            )
            return response.status

        async def stored_hash() -> str:
            found = await store.credentials("old@example.org")
            assert found is not None
            return found[1]

        assert await sign_in("not it at all") == 401
        assert (await stored_hash()).startswith("scrypt$")
        assert await sign_in(PASSWORD) == 200
        renewed = await stored_hash()
        assert renewed.startswith("$argon2id$") and not work.hasher.check_needs_rehash(renewed)
        assert await sign_in(PASSWORD) == 200

        # Stronger parameters later: the next sign-in brings the hash up to them.
        work.hasher = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
        assert await sign_in(PASSWORD) == 200
        upgraded = await stored_hash()
        assert upgraded != renewed and not work.hasher.check_needs_rehash(upgraded)


async def test_a_flood_of_sign_ins_waits_in_a_bounded_queue_then_is_told_to_come_back(tmp_path: Path) -> None:
    hasher = BlockingHasher()
    work = PasswordWork(hasher, threads=1, max_waiting=2)
    await work.start()
    checks = [asyncio.create_task(work.verify(None, "guess")) for _ in range(3)]
    assert await asyncio.to_thread(hasher.started.wait, 60)
    with pytest.raises(HashingBusy):
        await work.verify(None, "one too many")
    hasher.release.set()
    assert [verdict.correct for verdict in await asyncio.gather(*checks)] == [False, False, False]
    assert not (await work.verify(None, "room again")).correct
    await work.close()

    # Over HTTP, a sign-in that finds the queue full is a 503 with Retry-After.
    hasher = BlockingHasher()
    app = api_only_app(
        Config(data_dir=tmp_path, media_workers=1), PasswordWork(hasher, threads=1, max_waiting=0)
    )
    async with TestServer(app) as server, TestClient(server) as client:
        waiting = asyncio.create_task(
            client.post("/api/login", json={"email": "a@example.org", "password": "x"})
        )
        assert await asyncio.to_thread(hasher.started.wait, 60)
        busy = await client.post("/api/login", json={"email": "b@example.org", "password": "x"})
        assert busy.status == 503 and await error_code(busy) == "server_busy" and busy.headers["Retry-After"]
        hasher.release.set()
        assert (await waiting).status == 401
