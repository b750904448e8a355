"""Small asyncio helpers the kernel's long-running tasks share."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["wait_set"]


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; return whether it is set.

    The loops that sleep between attempts use it to stop at once when asked.
    It is built on ``asyncio.timeout``, not ``wait_for``: on Python 3.11
    ``wait_for`` can swallow a cancel that lands just as the event is set, and
    a task stopped by that cancel would never end.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
