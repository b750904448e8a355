"""What the live venue tests share: a loopback server, bounded waits, a leak check."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection, serve

from kernel.bus.bus import Bus
from kernel.live import Backoff
from tradekernel_sdk.types import BookState, BookStatus


class MarketData(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def loopback(
    handler: Callable[[ServerConnection], Awaitable[None]], path: str = "/ws"
) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1, a free port; yield the URL to connect to."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}{path}"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(7))


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(market_data: MarketData) -> AsyncIterator[None]:
    """Run ``market_data`` for the block, then stop it within a bounded time."""
    task = asyncio.create_task(market_data.run())
    try:
        yield
    finally:
        market_data.stop()
        await asyncio.wait_for(task, 5)


async def no_tasks_left(timeout: float = 2.0) -> None:
    """Wait until the test's own task is the only one left on the loop."""
    current = asyncio.current_task()
    await wait_until(lambda: asyncio.all_tasks() == {current}, timeout)


class StatusLog:
    """Every BookStatus a feed publishes, in order."""

    def __init__(self, bus: Bus, venue: str) -> None:
        self.events: list[BookStatus] = []
        bus.subscribe(f"data.status.{venue}.>", self._on_status)

    def _on_status(self, status: Any) -> None:
        self.events.append(status)

    def invalid(self, symbol: str) -> list[str]:
        """Return the reasons ``symbol``'s book was declared invalid."""
        return [
            e.reason for e in self.events if e.symbol == symbol and e.state is BookState.INVALID
        ]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]
