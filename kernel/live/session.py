"""A websocket session that stays connected: subscribe, watch for silence, reconnect.

One task reads the socket and hands every message to the sink as a
:class:`~kernel.adapters.base.RawFrame` (bytes as received; text frames are not
decoded). Around it:

- after each connect, the subscription messages are sent again and
  ``on_open`` runs (a venue that needs a REST snapshot fetches it there), so
  books are resynced after every reconnect;
- ``on_close`` runs when a connection ends, so the feed marks its books
  invalid until they are resynced;
- a watchdog sends the venue's application ping after ``ping_after_s`` of
  silence (OKX closes idle connections after 30 s) and drops the connection
  after ``idle_timeout_s``;
- reconnects wait per :class:`~kernel.live.backoff.Backoff`; a connection only
  counts as healthy once a frame arrived, so a venue that accepts and drops at
  once trips the :class:`~kernel.live.circuit.CircuitBreaker` like one that
  refuses connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from kernel.adapters.base import RawFrame
from kernel.asyncutil import wait_set
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker

__all__ = ["SessionStats", "WebSocketSession"]

log = logging.getLogger(__name__)


class SessionStats:
    """Counters of one session, read by metrics and tests."""

    __slots__ = (
        "app_pings",
        "connect_failures",
        "connects",
        "disconnects",
        "frames",
        "idle_timeouts",
        "sink_errors",
        "subscribe_messages",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.frames = 0
        self.subscribe_messages = 0
        self.idle_timeouts = 0
        self.app_pings = 0
        self.sink_errors = 0

    def as_dict(self) -> dict[str, int]:
        """Return every counter by name."""
        return {name: getattr(self, name) for name in self.__slots__}


class WebSocketSession:
    """Keep one websocket connection to ``url`` alive until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        sink: Callable[[RawFrame], None],
        *,
        subscribe: Callable[[], Sequence[str | bytes]] = tuple,
        on_open: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[str], None] | None = None,
        app_ping: tuple[str, str] | None = None,
        ping_after_s: float = 20.0,
        idle_timeout_s: float = 30.0,
        open_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        max_frame_bytes: int | None = 16 * 1024 * 1024,
    ) -> None:
        if idle_timeout_s <= 0 or ping_after_s <= 0:
            raise ValueError("idle_timeout_s and ping_after_s must be greater than 0")
        self.url = url
        self.stats = SessionStats()
        self.backoff = backoff if backoff is not None else Backoff()
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._sink = sink
        self._subscribe = subscribe
        self._on_open = on_open
        self._on_close = on_close
        self._app_ping = app_ping
        self._pong = app_ping[1].encode() if app_ping else None
        self._ping_after_ns = int(ping_after_s * 1e9)
        self._idle_timeout_ns = int(idle_timeout_s * 1e9)
        self._open_timeout_s = open_timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._stopping = asyncio.Event()
        self._connection: ClientConnection | None = None
        self._last_frame_ns = 0
        self._pinged = False
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect and reconnect until :meth:`stop`; connection errors never escape."""
        while not self._stopping.is_set():
            if not self.breaker.allow():
                log.warning(
                    "circuit open for %s: next attempt in %.1fs", self.url, self.breaker.retry_in()
                )
                await self._sleep(self.breaker.retry_in())
                continue
            healthy = await self._connect_once()
            if healthy:
                self.breaker.record_success()
                self.backoff.reset()
            else:
                self.breaker.record_failure()
            if self._stopping.is_set():
                break
            await self._sleep(self.backoff.next_delay())

    def stop(self) -> None:
        """End the session: close the connection and return from :meth:`run`."""
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            # Closing ends the reader's recv(); run() then sees _stopping.
            asyncio.get_running_loop().create_task(connection.close())

    async def send(self, message: str | bytes) -> bool:
        """Send ``message`` on the live connection; return False when there is none."""
        connection = self._connection
        if connection is None or not self.connected.is_set():
            return False
        try:
            await connection.send(message)
        except WebSocketException:
            return False  # the reader sees the same failure and reconnects
        return True

    async def _sleep(self, seconds: float) -> None:
        await wait_set(self._stopping, seconds)

    async def _connect_once(self) -> bool:
        """Run one connection to its end; return whether it ever delivered a frame."""
        frames_before = self.stats.frames
        try:
            connection = await connect(
                self.url,
                open_timeout=self._open_timeout_s,
                close_timeout=2,
                max_size=self._max_frame_bytes,
                proxy=None,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.stats.connect_failures += 1
            log.warning("connect to %s failed: %s", self.url, exc)
            return False
        self.stats.connects += 1
        self._connection = connection
        reason = "connection ended"
        watchdog = asyncio.get_running_loop().create_task(self._watch(connection))
        try:
            for message in self._subscribe():
                await connection.send(message)
                self.stats.subscribe_messages += 1
            if self._on_open is not None:
                await self._on_open()
            self.connected.set()
            await self._read(connection)
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.clear()
            self._connection = None
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await connection.close()
            self.stats.disconnects += 1
            if self._stopping.is_set():
                reason = "session stopped"
            log.info("disconnected from %s: %s", self.url, reason)
            if self._on_close is not None:
                self._on_close(reason)
        return self.stats.frames > frames_before

    async def _read(self, connection: ClientConnection) -> None:
        sink = self._sink
        pong = self._pong
        stats = self.stats
        url = self.url
        self._last_frame_ns = time.monotonic_ns()
        self._pinged = False
        while True:
            # decode=False: text frames arrive as their UTF-8 bytes, undecoded.
            payload = await connection.recv(decode=False)
            if isinstance(payload, str):  # not with decode=False; keeps the type exact
                payload = payload.encode()
            self._last_frame_ns = time.monotonic_ns()
            self._pinged = False
            if payload == pong:
                continue
            stats.frames += 1
            try:
                sink(RawFrame(time.time_ns(), payload, url))
            except Exception:
                # Feeds count bad frames themselves; reaching here is a feed bug.
                stats.sink_errors += 1
                log.exception("the sink of %s raised on a frame", url)

    async def _watch(self, connection: ClientConnection) -> None:
        """Ping the venue after silence; drop the connection when silence lasts."""
        period = min(self._ping_after_ns, self._idle_timeout_ns) / 4e9
        while True:
            await asyncio.sleep(period)
            silent_ns = time.monotonic_ns() - self._last_frame_ns
            if silent_ns >= self._idle_timeout_ns:
                self.stats.idle_timeouts += 1
                log.warning("no frame from %s for %.1fs: reconnecting", self.url, silent_ns / 1e9)
                await connection.close(code=1001, reason="idle")
                return
            if self._app_ping is not None and not self._pinged and silent_ns >= self._ping_after_ns:
                self._pinged = True
                self.stats.app_pings += 1
                await connection.send(self._app_ping[0])
