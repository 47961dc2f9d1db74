"""Waiting for a condition with a deadline, instead of sleeping and hoping."""

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(condition: Callable[[], object], timeout: float = 10.0,
                     what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.005)


async def eventually_async(probe: Callable[[], Awaitable[object]], expected: object,
                           timeout: float = 15.0) -> None:
    """Poll an async probe until it returns `expected`."""
    deadline = time.monotonic() + timeout
    while (value := await probe()) != expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r} after {timeout}s; waited for {expected!r}")
        await asyncio.sleep(0.05)
