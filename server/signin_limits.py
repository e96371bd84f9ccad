"""Failed sign-ins, counted per account and per client address, so passwords cannot be guessed at speed.

After `per_email` failures for one email, or `per_address` from one address, within `window_s`,
sign-ins for it are refused (even with the right password) until the oldest failure is `window_s`
old. A successful sign-in clears its email's count. The counts live in memory: a restart forgets
them, which costs an attacker a restart they cannot cause.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Keys are dropped once their failures expire; past this many at once, the oldest go first, so a flood
# of made-up emails cannot grow memory without bound.
_MAX_KEYS = 100_000


class SignInLimiter:
    def __init__(
        self,
        per_email: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"email": per_email, "address": per_address}
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, email: str, address: str) -> float | None:
        """Seconds until this sign-in may be tried, or None if it may be tried now."""
        now = self._clock()
        waits = []
        for key in (("email", email), ("address", address)):
            limit = self._limits[key[0]]
            failures = self._recent(key, now)
            if limit > 0 and len(failures) >= limit:
                waits.append(failures[len(failures) - limit] + self._window_s - now)
        return max(waits) if waits else None

    def failed(self, email: str, address: str) -> None:
        now = self._clock()
        for key in (("email", email), ("address", address)):
            failures = self._recent(key, now)
            failures.append(now)
            self._failures.pop(key, None)
            self._failures[key] = failures  # most recently failed last: evicted last
        while len(self._failures) > _MAX_KEYS:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, email: str) -> None:
        self._failures.pop(("email", email), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        """The key's failures within the window; a key left with none is forgotten."""
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self._window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures
