"""The sign-in limiter's bookkeeping, on a clock the test moves."""

from __future__ import annotations

import pytest

import server.signin_limits
from server.signin_limits import SignInLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_ends_when_the_oldest_counted_failure_expires() -> None:
    clock = Clock()
    limiter = SignInLimiter(per_email=2, per_address=0, window_s=60, clock=clock)
    limiter.failed("a@example.org", "10.0.0.1")
    clock.now += 20
    limiter.failed("a@example.org", "10.0.0.1")
    assert limiter.retry_after("a@example.org", "10.0.0.2") == 40  # the first failure expires at +60
    assert limiter.retry_after("b@example.org", "10.0.0.1") is None  # 0: no limit per address
    clock.now += 40
    assert limiter.retry_after("a@example.org", "10.0.0.1") is None


def test_expired_and_cleared_keys_are_forgotten_and_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    limiter = SignInLimiter(per_email=3, per_address=3, window_s=60, clock=clock)
    limiter.failed("a@example.org", "10.0.0.1")
    limiter.succeeded("a@example.org")
    assert list(limiter._failures) == [("address", "10.0.0.1")]
    clock.now += 61
    assert limiter.retry_after("a@example.org", "10.0.0.1") is None
    assert limiter._failures == {}

    monkeypatch.setattr(server.signin_limits, "_MAX_KEYS", 4)
    for i in range(5):
        limiter.failed(f"user{i}@example.org", "10.0.0.9")
    # The address failed most recently, so it stays; the oldest emails went.
    assert ("address", "10.0.0.9") in limiter._failures and len(limiter._failures) == 4
    assert ("email", "user4@example.org") in limiter._failures
    assert ("email", "user0@example.org") not in limiter._failures
