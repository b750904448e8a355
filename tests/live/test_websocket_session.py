"""A websocket session against a real server on loopback: reconnects, resubscribes, gives up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from kernel.adapters.base import RawFrame
from kernel.live import Backoff, CircuitBreaker, CircuitState, WebSocketSession

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def venue(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(0))


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def stop(session: WebSocketSession, task: asyncio.Task[None]) -> None:
    session.stop()
    await asyncio.wait_for(task, 5)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_frames_arrive_as_received_bytes_after_the_subscription() -> None:
    received: list[RawFrame] = []
    subscriptions: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        subscriptions.append(str(await ws.recv()))
        await ws.send('{"e":"depthUpdate","u":1}')
        await ws.send(b"\x00binary")
        await ws.wait_closed()

    async def main() -> None:
        async with venue(handler) as url:
            session = WebSocketSession(
                url, received.append, subscribe=lambda: ['{"method":"SUBSCRIBE"}']
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: len(received) == 2)
            await stop(session, task)
            assert [f.payload for f in received] == [b'{"e":"depthUpdate","u":1}', b"\x00binary"]
            assert all(f.source == url and f.recv_ns > 0 for f in received)
            assert subscriptions == ['{"method":"SUBSCRIBE"}']
            assert session.stats.connects == 1

    run(main())


def test_every_reconnect_resubscribes_once_and_reports_the_drop() -> None:
    subscriptions: list[str] = []
    opened: list[int] = []
    closed: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        subscriptions.append(str(await ws.recv()))
        await ws.send("frame")
        await ws.close()  # the venue drops every connection after one frame

    async def main() -> WebSocketSession:
        async with venue(handler) as url:

            async def on_open() -> None:
                opened.append(1)

            session = WebSocketSession(
                url,
                lambda frame: None,
                subscribe=lambda: ["sub"],
                on_open=on_open,
                on_close=closed.append,
                backoff=fast_backoff(),
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: session.stats.connects >= 20)
            await stop(session, task)
            return session

    session = run(main())
    assert session.stats.connects == session.stats.disconnects == len(subscriptions)
    assert len(opened) == len(closed) == session.stats.connects
    assert set(subscriptions) == {"sub"}
    assert session.breaker.state is CircuitState.CLOSED  # each connection delivered a frame


def test_a_reconnect_storm_ends_connected_with_no_leaked_tasks() -> None:
    drops_left = 30
    live_subscriptions = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal drops_left, live_subscriptions
        await ws.recv()
        live_subscriptions += 1
        try:
            await ws.send("hello")
            if drops_left > 0:
                drops_left -= 1
                return  # returning closes the connection
            while True:
                await ws.send("tick")
                await asyncio.sleep(0.01)
        finally:
            live_subscriptions -= 1

    async def main() -> None:
        tasks_before = len(asyncio.all_tasks())
        async with venue(handler) as url:
            session = WebSocketSession(
                url, lambda frame: None, subscribe=lambda: ["sub"], backoff=fast_backoff()
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: drops_left == 0 and session.connected.is_set(), 20)
            frames = session.stats.frames
            await wait_until(lambda: session.stats.frames > frames + 5)
            assert live_subscriptions == 1  # one connection, subscribed once
            assert session.stats.connects == 31
            await stop(session, task)
            await wait_until(lambda: live_subscriptions == 0)
        assert len(asyncio.all_tasks()) == tasks_before

    run(main())


def test_silence_earns_an_application_ping_then_a_reconnect() -> None:
    heard: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        # Never answers: a stuck venue.
        heard.extend([str(message) async for message in ws])

    async def main() -> WebSocketSession:
        async with venue(handler) as url:
            session = WebSocketSession(
                url,
                lambda frame: None,
                app_ping=("ping", "pong"),
                ping_after_s=0.05,
                idle_timeout_s=0.2,
                backoff=fast_backoff(),
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: session.stats.idle_timeouts >= 2)
            await stop(session, task)
            return session

    session = run(main())
    assert heard.count("ping") >= 2
    assert session.stats.connects >= 2
    assert session.stats.frames == 0


def test_pongs_are_not_frames() -> None:
    received: list[RawFrame] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "ping":
                await ws.send("pong")
                await ws.send("data")

    async def main() -> None:
        async with venue(handler) as url:
            session = WebSocketSession(
                url, received.append, app_ping=("ping", "pong"), ping_after_s=0.02
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: len(received) >= 2)
            await stop(session, task)
        assert {f.payload for f in received} == {b"data"}

    run(main())


def test_a_venue_that_refuses_connections_trips_the_circuit() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> WebSocketSession:
        session = WebSocketSession(
            f"ws://127.0.0.1:{port}/ws",
            lambda frame: None,
            backoff=fast_backoff(),
            breaker=CircuitBreaker(failure_threshold=3, reset_after_s=30.0),
        )
        task = asyncio.create_task(session.run())
        await wait_until(lambda: session.breaker.state is CircuitState.OPEN)
        failures = session.stats.connect_failures
        await asyncio.sleep(0.3)  # while open, no attempt is made
        assert session.stats.connect_failures == failures == 3
        await stop(session, task)
        return session

    session = run(main())
    assert session.breaker.trips == 1


def test_a_venue_that_accepts_and_drops_at_once_also_trips_the_circuit() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close()

    async def main() -> WebSocketSession:
        async with venue(handler) as url:
            session = WebSocketSession(
                url,
                lambda frame: None,
                backoff=fast_backoff(),
                breaker=CircuitBreaker(failure_threshold=4, reset_after_s=30.0),
            )
            task = asyncio.create_task(session.run())
            await wait_until(lambda: session.breaker.state is CircuitState.OPEN)
            await stop(session, task)
            return session

    session = run(main())
    assert session.stats.connects == 4
    assert session.stats.connect_failures == 0


def test_a_sink_that_raises_is_counted_and_the_session_goes_on() -> None:
    good: list[bytes] = []

    def sink(frame: RawFrame) -> None:
        if frame.payload == b"bad":
            raise RuntimeError("feed bug")
        good.append(frame.payload)

    async def handler(ws: ServerConnection) -> None:
        for message in ("a", "bad", "b"):
            await ws.send(message)
        await ws.wait_closed()

    async def main() -> WebSocketSession:
        async with venue(handler) as url:
            session = WebSocketSession(url, sink)
            task = asyncio.create_task(session.run())
            await wait_until(lambda: len(good) == 2)
            await stop(session, task)
            return session

    session = run(main())
    assert good == [b"a", b"b"]
    assert session.stats.sink_errors == 1
    assert session.stats.connects == 1
