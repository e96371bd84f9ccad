"""Waiting for a condition instead of for a time: a test that sleeps a fixed time is slow where the
machine is quick and flaky where it is slow."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], object | Awaitable[object]], within: float = 10.0, what: str = "condition"
) -> None:
    """Returns once `condition()` (awaited, where it is a coroutine function) is true; fails the test if
    it is not within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        assert time.monotonic() < deadline, f"{what} not reached within {within} s"
        await asyncio.sleep(0.005)
