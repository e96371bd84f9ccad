"""The attempt limiter's bookkeeping (failed sign-ins, applications), on a clock the test moves."""

from __future__ import annotations

import pytest

import server.signin_limits
from server.signin_limits import AttemptLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_ends_when_the_oldest_counted_failure_expires() -> None:
    clock = Clock()
    limiter = AttemptLimiter({"email": 2, "address": 0}, window_s=60, clock=clock)
    limiter.count(email="a@example.org", address="10.0.0.1")
    clock.now += 20
    limiter.count(email="a@example.org", address="10.0.0.1")
    assert (
        limiter.retry_after(email="a@example.org", address="10.0.0.2") == 40
    )  # the first failure expires at +60
    assert limiter.retry_after(email="b@example.org", address="10.0.0.1") is None  # 0: no limit per address
    clock.now += 40
    assert limiter.retry_after(email="a@example.org", address="10.0.0.1") is None


def test_expired_and_cleared_keys_are_forgotten_and_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    limiter = AttemptLimiter({"email": 3, "address": 3}, window_s=60, clock=clock)
    limiter.count(email="a@example.org", address="10.0.0.1")
    limiter.forget(email="a@example.org")
    assert list(limiter._attempts) == [("address", "10.0.0.1")]
    clock.now += 61
    assert limiter.retry_after(email="a@example.org", address="10.0.0.1") is None
    assert limiter._attempts == {}

    monkeypatch.setattr(server.signin_limits, "_MAX_KEYS", 4)
    for i in range(5):
        limiter.count(email=f"user{i}@example.org", address="10.0.0.9")
    # The address was counted most recently, so it stays; the oldest emails went.
    assert ("address", "10.0.0.9") in limiter._attempts and len(limiter._attempts) == 4
    assert ("email", "user4@example.org") in limiter._attempts
    assert ("email", "user0@example.org") not in limiter._attempts
