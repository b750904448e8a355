"""The emulator: one venue's replayed market behind a loopback HTTP and websocket server.

aiohttp serves REST and websockets on one port, as the venues' own clients
expect to reach them (one base URL per venue in tests), and its server is
what the kernel's tests already have installed through ccxt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Literal, cast

from aiohttp import web

from kernel.adapters.base import RawFrame
from kernel.emulator.binance import BinanceMarket, BinanceServer, server_time_ms
from kernel.emulator.faults import EmulatorStats, FaultPlan
from kernel.emulator.market import ReplayMarket, read_frames
from kernel.emulator.matching import OrderEngine
from kernel.emulator.okx import OkxMarket, OkxServer

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "DEFAULT_PASSPHRASE", "VENUES", "Emulator"]

VENUES = ("binance", "binance-usdm", "okx")
DEFAULT_API_KEY = "emulator-api-key"
DEFAULT_API_SECRET = "emulator-api-secret"
DEFAULT_PASSPHRASE = "emulator-passphrase"
DEFAULT_BALANCES: Mapping[str, Mapping[str, str]] = {
    "binance": {"BTC": "10", "ETH": "100", "USDT": "1000000"},
    "binance-usdm": {"USDT": "1000000"},
    "okx": {"BTC": "10", "USDT": "1000000", "USD": "1000000", "UNI": "10000"},
}

Venue = Literal["binance", "binance-usdm", "okx"]


def _frames_of(
    data: Sequence[str | os.PathLike[str]] | Iterable[RawFrame],
) -> Iterator[RawFrame]:
    """Return the frames of recording files, or the frames themselves."""
    if isinstance(data, list | tuple) and all(isinstance(i, str | os.PathLike) for i in data):
        return read_frames(cast("Sequence[str | os.PathLike[str]]", data))
    return iter(cast("Iterable[RawFrame]", data))


def _paths_of(data: Sequence[str | os.PathLike[str]] | Iterable[RawFrame]) -> list[str]:
    """Return the recording files in ``data`` (none when it holds frames)."""
    if isinstance(data, list | tuple) and all(isinstance(i, str | os.PathLike) for i in data):
        return [os.fspath(i) for i in data]
    return []


class Emulator:
    """A venue emulator on 127.0.0.1 (see ``docs/emulator.md``).

    ``data`` is a list of recording files (merged by receive time) or frames.
    ``speed`` paces the replay at that multiple of recorded time; None plays
    as fast as the slowest subscriber reads. The replay starts with the first
    market-data subscription (or :meth:`start_replay`). ``weight_limit``
    overrides Binance's request weight allowed per minute. ``passes`` plays the
    recording files that many times (None: until stopped), restarting the
    market in between: connections are closed and the books start afresh.
    """

    def __init__(
        self,
        venue: Venue,
        data: Sequence[str | os.PathLike[str]] | Iterable[RawFrame],
        *,
        speed: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        passphrase: str = DEFAULT_PASSPHRASE,
        balances: Mapping[str, str] | None = None,
        slow_consumer_s: float = 10.0,
        weight_limit: int | None = None,
        passes: int | None = 1,
    ) -> None:
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")
        self.venue = venue
        self.host = host
        self.port = port
        self.stats = EmulatorStats()
        self.faults = FaultPlan(self.stats)
        frames = _frames_of(data)
        paths = _paths_of(data)
        reopen = (lambda: read_frames(paths)) if paths else None
        wallet = dict(balances if balances is not None else DEFAULT_BALANCES[venue])
        self.market: ReplayMarket
        self.engine: OrderEngine
        self._front: BinanceServer | OkxServer
        if venue in ("binance", "binance-usdm"):
            binance_market = BinanceMarket(
                frames,
                stats=self.stats,
                speed=speed,
                market="usdm" if venue == "binance-usdm" else "spot",
                passes=passes,
                reopen=reopen,
            )
            front = BinanceServer(
                binance_market,
                faults=self.faults,
                stats=self.stats,
                api_key=api_key,
                api_secret=api_secret,
                balances=wallet,
                clock_ms=self.clock_ms,
                slow_consumer_s=slow_consumer_s,
                weight_limit=weight_limit,
            )
            self.market, self.engine, self._front = binance_market, front.engine, front
        else:
            okx_market = OkxMarket(
                frames,
                stats=self.stats,
                speed=speed,
                clock_ms=self.clock_ms,
                passes=passes,
                reopen=reopen,
            )
            okx_front = OkxServer(
                okx_market,
                faults=self.faults,
                stats=self.stats,
                api_key=api_key,
                api_secret=api_secret,
                passphrase=passphrase,
                balances=wallet,
                clock_ms=self.clock_ms,
                slow_consumer_s=slow_consumer_s,
            )
            self.market, self.engine, self._front = okx_market, okx_front.engine, okx_front
        self._app = web.Application()
        self._front.routes(self._app)
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Bind the server; with port 0 the system picks a free port (see :attr:`port`)."""
        runner = web.AppRunner(self._app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = site._server  # the bound asyncio server: read back the port it got
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or ()
            for sock in sockets:
                self.port = sock.getsockname()[1]
                break

    async def stop(self) -> None:
        """Stop the replay, close every connection and the server."""
        await self.market.close()
        await self._front.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests use --------------------------------------------------------

    def clock_ms(self) -> int:
        """Return the emulator's clock in milliseconds (wall clock plus the armed offset)."""
        return server_time_ms(self.faults.offset_ms)

    def start_replay(self) -> None:
        """Start the replay without waiting for a subscriber."""
        self.market.start()

    def pause(self) -> None:
        """Hold the replay (books, snapshots and matching stay where they are)."""
        self.market.pause()

    def resume(self) -> None:
        """Continue the replay."""
        self.market.resume()

    @property
    def http_url(self) -> str:
        """Return the REST base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Return the websocket base URL."""
        return f"ws://{self.host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """Return what the emulator serves, by name."""
        if self.venue == "binance":
            return {
                "rest": f"{self.http_url}/api/v3",
                "combined streams": f"{self.ws_url}/stream?streams=<stream>/<stream>",
                "raw streams": f"{self.ws_url}/ws/<stream>",
                "user data": f"{self.ws_url}/ws/<listenKey>",
            }
        if self.venue == "binance-usdm":
            return {
                "rest": f"{self.http_url}/fapi/v1",
                "combined streams": f"{self.ws_url}/stream?streams=<stream>/<stream>",
                "raw streams": f"{self.ws_url}/ws/<stream>",
            }
        return {
            "rest": f"{self.http_url}/api/v5",
            "public websocket": f"{self.ws_url}/ws/v5/public",
        }
