"""Password hashing: argon2id, off the event loop, in a few dedicated threads, the same work for every
sign-in.

Each hash or check takes ~0.1 s of CPU and 64 MiB (argon2-cffi's defaults, RFC 9106's low-memory
profile), so it never runs on the event loop, which carries every speaker's audio: `PasswordWork`
runs them in `threads` worker threads, and refuses (`HashingBusy`) once `max_waiting` more are
queued, so a flood of sign-ins costs a bounded amount of memory and leaves the other cores free.

A sign-in for an email nobody has is checked against a dummy hash with the same parameters,
computed once, so it costs what a real one costs and the answer's timing does not reveal who has an
account. Hashes from before argon2 (scrypt) are still verified, and replaced at the member's next
successful sign-in, as are argon2 hashes made with other parameters.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

_LEGACY_SCRYPT = "scrypt$"


class HashingBusy(Exception):
    """Too many password hashes are waiting for a thread: try again shortly."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    stale: bool = False  # correct, but hashed with an older scheme or parameters: hash again


def _verify_scrypt(stored: str, password: str) -> bool:
    """The scheme before argon2: scrypt$n$r$p$salt$digest (hex)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), maxmem=2**26
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


class PasswordWork:
    def __init__(
        self, hasher: PasswordHasher | None = None, *, threads: int = 2, max_waiting: int = 64
    ) -> None:
        self.hasher = hasher or PasswordHasher()  # argon2id
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password")
        self._capacity = threads + max_waiting
        self._in_flight = 0
        self._dummy_hash: str | None = None

    async def start(self) -> None:
        """Compute the dummy hash that unknown emails are checked against (once, in a worker)."""
        self._dummy_hash = await self._run(self.hasher.hash, secrets.token_urlsafe(16))

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> Verdict:
        """Whether `password` matches `stored`; None (no such account) checks against the dummy hash,
        with the same work, and is never correct."""
        if stored is None:
            assert self._dummy_hash is not None, "PasswordWork.start() was not awaited"
            await self._run(self._verify, self._dummy_hash, password)
            return Verdict(False)
        return await self._run(self._verify, stored, password)

    def _verify(self, stored: str, password: str) -> Verdict:
        if stored.startswith(_LEGACY_SCRYPT):
            return Verdict(True, stale=True) if _verify_scrypt(stored, password) else Verdict(False)
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return Verdict(False)
        return Verdict(True, stale=self.hasher.check_needs_rehash(stored))

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_flight >= self._capacity:
            raise HashingBusy
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1
