"""Attempts counted per key (an email, a client address) within a sliding window, so passwords cannot
be guessed, nor applications sent, at speed.

`AttemptLimiter({"email": 5, "address": 50}, window_s=900)`: after 5 counted attempts for one email,
or 50 from one address, within `window_s`, further attempts for it are refused (even ones that would
succeed) until the oldest counted one is `window_s` old. The server keeps one for failed sign-ins
(`signin_failures_per_*`) and one for applications (`applications_per_address`). The counts live
in memory: a restart forgets them, which costs an attacker a restart they cannot cause.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

# Keys are dropped once their attempts expire; past this many at once, the oldest go first, so a flood
# of made-up emails cannot grow memory without bound.
_MAX_KEYS = 100_000


class AttemptLimiter:
    def __init__(
        self, limits: Mapping[str, int], window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = dict(limits)  # kind of key -> attempts allowed in the window (0: no limit)
        self._window_s = window_s
        self._clock = clock
        self._attempts: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, **keys: str) -> float | None:
        """Seconds until an attempt for these keys (kind=value) may be made, or None if it may now."""
        now = self._clock()
        waits = []
        for key in keys.items():
            limit = self._limits[key[0]]
            attempts = self._recent(key, now)
            if limit > 0 and len(attempts) >= limit:
                waits.append(attempts[len(attempts) - limit] + self._window_s - now)
        return max(waits) if waits else None

    def count(self, **keys: str) -> None:
        now = self._clock()
        for key in keys.items():
            attempts = self._recent(key, now)
            attempts.append(now)
            self._attempts.pop(key, None)
            self._attempts[key] = attempts  # most recently counted last: evicted last
        while len(self._attempts) > _MAX_KEYS:
            del self._attempts[next(iter(self._attempts))]

    def forget(self, **keys: str) -> None:
        for key in keys.items():
            self._attempts.pop(key, None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        """The key's attempts within the window; a key left with none is forgotten."""
        attempts = self._attempts.get(key)
        if attempts is None:
            return deque()
        while attempts and attempts[0] <= now - self._window_s:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
        return attempts
