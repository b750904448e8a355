"""One websocket client of the emulator: its subscriptions, its outgoing queue and its faults.

Frames reach a connection through a bounded queue. The replay waits while a
queue is full (so a test reading slowly sees every frame, in order), and a
client that reads nothing for ``slow_consumer_s`` is disconnected, as venues do
with slow consumers. A writer task sends the queue to the socket, passing each
market-data frame through the armed faults first. Control replies
(subscription acknowledgements, pongs) share the queue to keep their order but
are never faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

from aiohttp import WSMsgType, web

from kernel.emulator.faults import EmulatorStats, FaultPlan, FrameAction

__all__ = ["CONTROL", "StreamConnection"]

log = logging.getLogger(__name__)

CONTROL = ""
"""Stream key of control replies, which faults never touch."""

_ids = itertools.count(1)


class StreamConnection:
    """A websocket client and what it is subscribed to."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        faults: FaultPlan,
        stats: EmulatorStats,
        encode: Callable[[str, bytes], bytes] | None = None,
        queue_size: int = 512,
        slow_consumer_s: float = 10.0,
        user_data: bool = False,
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.request = request
        self.keys: set[str] = set()
        self.user_data = user_data
        """A private stream: its frames are order events, never faulted."""
        self.closed = False
        self._faults = faults
        self._stats = stats
        self._encode = encode
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._slow_consumer_s = slow_consumer_s
        self._held: tuple[str, bytes] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def push(self, key: str, payload: bytes) -> None:
        """Queue a frame, waiting while the queue is full; drop a client that stopped reading."""
        if self.closed:
            return
        try:
            self._queue.put_nowait((key, payload))
            return
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(self._queue.put((key, payload)), self._slow_consumer_s)
        except TimeoutError:
            self._stats.slow_consumer_disconnects += 1
            log.warning(
                "emulator: connection %d read nothing for %ss; closing",
                self.id,
                self._slow_consumer_s,
            )
            await self.close(abrupt=False, code=1008, reason="slow consumer")

    def push_control(self, payload: bytes) -> None:
        """Queue a control reply; a client whose queue is full gets disconnected instead."""
        if self.closed:
            return
        try:
            self._queue.put_nowait((CONTROL, payload))
        except asyncio.QueueFull:
            self._stats.slow_consumer_disconnects += 1
            asyncio.get_running_loop().create_task(
                self.close(abrupt=False, code=1008, reason="slow consumer")
            )

    async def close(self, *, abrupt: bool, code: int = 1001, reason: str = "") -> None:
        """Close the connection: drop the TCP connection, or send a close frame."""
        if self.closed:
            return
        self.closed = True
        self._release()
        if abrupt:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        else:
            try:
                # A client that stopped reading never sees the close frame: give up soon.
                await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 1.0)
            except Exception:
                transport = self.request.transport
                if transport is not None:
                    transport.abort()

    async def stop(self) -> None:
        """Stop the writer (the handler is done with the connection)."""
        self.closed = True
        self._release()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer

    def _release(self) -> None:
        """Empty the queue, so a replay waiting to queue a frame here goes on at once."""
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _send(self, key: str, payload: bytes) -> None:
        if self._encode is not None and key != CONTROL:
            payload = self._encode(key, payload)
        await self.ws.send_frame(payload, WSMsgType.TEXT)
        if key != CONTROL:
            self._stats.frames_sent += 1

    async def _write(self) -> None:
        stats = self._stats
        try:
            while not self.closed:
                key, payload = await self._queue.get()
                if key == CONTROL or self.user_data:
                    await self._send(key, payload)
                    continue
                action, rule = self._faults.frame_action(key)
                if action is FrameAction.DROP:
                    stats.frames_dropped += 1
                    continue
                if action is FrameAction.DISCONNECT:
                    stats.disconnects += 1
                    await self.close(
                        abrupt=rule is None or rule.abrupt, code=1001, reason="going away"
                    )
                    return
                if action is FrameAction.REORDER:
                    stats.frames_reordered += 1
                    self._held = (key, payload)
                    continue
                if action is FrameAction.DELAY and rule is not None:
                    stats.frames_delayed += 1
                    await asyncio.sleep(rule.seconds)
                elif action is FrameAction.MALFORM:
                    stats.frames_malformed += 1
                    if self._encode is not None:
                        payload = self._encode(key, payload)
                    payload = payload[: len(payload) // 2]
                    await self.ws.send_frame(payload, WSMsgType.TEXT)
                    stats.frames_sent += 1
                    continue
                await self._send(key, payload)
                if self._held is not None:
                    held, self._held = self._held, None
                    await self._send(*held)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            self._release()
