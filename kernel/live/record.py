"""Record live market data: every frame a venue connection receives, in TKR1 files.

The recorder builds the venue's feed and live connection as the service does
(:func:`kernel.live.component.create_runner`, so every live venue can be
recorded) and puts itself in front of the feed: each frame, websocket message
or REST snapshot, is written with its receive time and source and then handed
to the feed, in the order received. Replaying the files through the same
feed therefore rebuilds the book the live feed had.

Files are named ``<venue>-<start, UTC>-<index>.tkr`` and rotate after
``rotate_bytes`` on disk or ``rotate_seconds``; the current block is flushed
every ``flush_seconds``, so a crash loses at most that much. Several files of
one recording replay in order as one stream (replay merges by receive time).
A reconnect is not in the recording: a replay sees the stream jump there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kernel.adapters.base import Feed, RawFrame
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.live.component import LIVE_VENUES, LiveRunner, create_runner
from kernel.recording import RecordingWriter
from kernel.replay import summarise

__all__ = ["LiveRecorder", "RecordingSummary"]

log = logging.getLogger(__name__)


class RecordingSummary:
    """What a recording holds: files, frames, bytes, and the live feed's books at the end."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.frames = 0
        self.payload_bytes = 0
        self.refused_frames = 0
        self.books: dict[str, dict[str, Any]] = {}
        self.feed_stats: dict[str, int] = {}

    def as_json(self) -> dict[str, Any]:
        """Return the summary as one JSON-ready object."""
        return {
            "files": [str(path) for path in self.files],
            "frames": self.frames,
            "payload_bytes": self.payload_bytes,
            "refused_frames": self.refused_frames,
            "feed": self.feed_stats,
            "books": self.books,
        }


class LiveRecorder:
    """Record ``venue``'s ``symbols`` into ``out_dir`` until :meth:`stop`."""

    def __init__(
        self,
        venue: str,
        symbols: Sequence[str],
        out_dir: str | Path,
        *,
        urls: dict[str, str] | None = None,
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
        flush_seconds: float = 1.0,
        codec: str = "zstd",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if venue not in LIVE_VENUES:
            raise ValueError(
                f"no live connection for venue {venue!r}; live venues: {', '.join(LIVE_VENUES)}"
            )
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError("rotate_bytes must be positive")
        if rotate_seconds is not None and rotate_seconds <= 0:
            raise ValueError("rotate_seconds must be positive")
        self.venue = venue
        self.symbols = list(symbols)
        self.out_dir = Path(out_dir)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.flush_seconds = flush_seconds
        self.codec = codec
        self.summary = RecordingSummary()
        self.bus = Bus()
        self.feed: Feed = create_feed(venue, self.bus)
        self._feed_frame = self.feed.on_frame
        # The live connection reads feed.on_frame when it is built: put the recorder there.
        setattr(self.feed, "on_frame", self._on_frame)  # noqa: B010
        self.runner: LiveRunner = create_runner(venue, self.feed, self.symbols, dict(urls or {}))
        self._clock = clock
        self._stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._writer: RecordingWriter | None = None
        self._opened_at = 0.0
        self._recording = False
        self._stopped = asyncio.Event()

    # -- frames --------------------------------------------------------------

    def _on_frame(self, frame: RawFrame) -> None:
        if not self._recording:
            return  # after stop: neither written nor applied, so both stay in step
        writer = self._writer
        assert writer is not None
        try:
            writer.write(frame)
        except (TypeError, ValueError) as error:
            self.summary.refused_frames += 1
            log.warning("frame from %s not recordable: %s", frame.source, error)
        else:
            self.summary.frames += 1
            self.summary.payload_bytes += len(frame.payload)
        self._feed_frame(frame)

    # -- files ---------------------------------------------------------------

    def _open_next(self) -> None:
        index = len(self.summary.files)
        path = self.out_dir / f"{self.venue}-{self._stamp}-{index:05d}.tkr"
        self._writer = RecordingWriter(path, codec=self.codec)
        self._opened_at = self._clock()
        self.summary.files.append(path)
        log.info("recording %s %s into %s", self.venue, ",".join(self.symbols), path)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _due_for_rotation(self, path: Path) -> bool:
        if (
            self.rotate_seconds is not None
            and self._clock() - self._opened_at >= self.rotate_seconds
        ):
            return True
        return self.rotate_bytes is not None and path.stat().st_size >= self.rotate_bytes

    async def _flush_and_rotate(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            writer = self._writer
            if writer is None:
                continue
            try:
                writer.flush()
            except OSError as error:  # frames stay buffered for the next attempt
                log.error("flushing %s failed: %s", self.summary.files[-1], error)
                continue
            if self._due_for_rotation(self.summary.files[-1]):
                self._close_writer()
                self._open_next()

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> RecordingSummary:
        """Record until :meth:`stop`; return what was recorded."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._open_next()
        self._recording = True
        connection = asyncio.create_task(self.runner.run(), name=f"record:{self.venue}")
        flusher = asyncio.create_task(self._flush_and_rotate())
        try:
            stopped = asyncio.create_task(self._stopped.wait())
            await asyncio.wait({connection, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            self._finish()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self.runner.stop()
            try:
                await asyncio.wait_for(connection, 10)
            except TimeoutError:
                connection.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connection
            self._close_writer()
        return self.summary

    def _finish(self) -> None:
        """Stop taking frames and note the live books as the recording leaves them."""
        if not self._recording:
            return
        self._recording = False
        self.summary.books = summarise(self.feed, self.feed.symbols)
        self.summary.feed_stats = self.feed.stats.as_dict()

    def stop(self) -> None:
        """End the recording: what was received so far is written and the files closed."""
        self._finish()  # before the connection closes and invalidates the live books
        self._stopped.set()


# -- command line ----------------------------------------------------------------


def add_record_command(commands: Any) -> None:
    """Add ``tradekernel record`` to the command line's subcommands."""
    record = commands.add_parser(
        "record",
        help="record a venue's live market data into TKR1 files",
        description="Connect to a venue's live market data and write every frame received "
        "(websocket messages and REST snapshots) into rotating TKR1 recordings, until "
        "SIGINT or SIGTERM (or --duration). The files replay with 'tradekernel replay'.",
    )
    record.add_argument("--venue", required=True, choices=sorted(LIVE_VENUES))
    record.add_argument(
        "--symbols", required=True, help="comma-separated venue symbols: BTCUSDT,ETHUSDT"
    )
    record.add_argument("--out", required=True, type=Path, metavar="DIR")
    rotation = record.add_mutually_exclusive_group()
    rotation.add_argument("--rotate-mb", type=float, metavar="N", help="new file after N MB")
    rotation.add_argument(
        "--rotate-minutes", type=float, metavar="M", help="new file every M minutes"
    )
    record.add_argument("--ws-url", help="websocket base URL instead of the venue's")
    record.add_argument("--rest-url", help="REST base URL instead of the venue's (Binance)")
    record.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    record.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_record_command(args: Any) -> int:
    """Run ``tradekernel record``; return the exit status."""
    import json  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import uvloop  # noqa: PLC0415

    symbols = [symbol.strip() for symbol in args.symbols.split(",") if symbol.strip()]
    urls = {
        name: url for name, url in (("ws_url", args.ws_url), ("rest_url", args.rest_url)) if url
    }
    for name, value in (("--rotate-mb", args.rotate_mb), ("--rotate-minutes", args.rotate_minutes)):
        if value is not None and value <= 0:
            print(f"tradekernel record: {name} must be positive", file=sys.stderr)
            return 2
    try:
        recorder = LiveRecorder(
            args.venue,
            symbols,
            args.out,
            urls=urls,
            rotate_bytes=int(args.rotate_mb * 1_000_000) if args.rotate_mb else None,
            rotate_seconds=args.rotate_minutes * 60 if args.rotate_minutes else None,
        )
    except (TypeError, ValueError) as error:
        print(f"tradekernel record: {error}", file=sys.stderr)
        return 2

    async def record() -> RecordingSummary:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, recorder.stop)
        if args.duration is not None:
            loop.call_later(args.duration, recorder.stop)
        return await recorder.run()

    summary = uvloop.run(record())
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        print(f"recorded {summary.frames:,} frames ({summary.payload_bytes:,} bytes) into:")
        for path in summary.files:
            print(f"  {path}")
        for symbol, book in summary.books.items():
            best = f"best bid {book['best_bid']}, best ask {book['best_ask']}"
            print(f"{symbol}: {book['state']}, {best}")
    return 0
