"""tradekernel record against the exchange emulator: what it writes replays as the live book."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.cli import main
from kernel.emulator import Emulator
from kernel.live.record import LiveRecorder
from kernel.recording import RecordingReader, merge_frames, open_reader
from kernel.replay import replay
from tradekernel_sdk.types import BookState

DATA = Path(__file__).resolve().parents[2] / "kernel" / "data"
BINANCE_BTC = DATA / "binance_spot" / "btcusdt_20240808_head12000.gz"
OKX = [DATA / "okx_v5" / "OKX.0.gz", DATA / "okx_v5" / "OKX.ws.1.0.gz"]
SPEED = 5


async def until(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 18))


def frames_in(paths: list[Path]) -> list[Any]:
    return [frame for path in paths for frame in RecordingReader(path, strict=True)]


async def replayed(venue: str, paths: list[Path]) -> tuple[Any, Any]:
    feed = create_feed(venue, Bus())
    report = await replay(merge_frames(*(open_reader(path) for path in paths)), feed)
    return feed, report


def test_a_rotating_recording_replays_as_one_stream_onto_the_live_book(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC], speed=SPEED) as emulator:
            recorder = LiveRecorder(
                "binance",
                ["BTCUSDT"],
                tmp_path,
                urls={"ws_url": emulator.ws_url, "rest_url": emulator.http_url},
                rotate_seconds=0.6,
                flush_seconds=0.1,
            )
            task = asyncio.create_task(recorder.run())
            feed = recorder.feed
            await until(lambda: feed.book_state("BTCUSDT") is BookState.VALID)
            await until(lambda: len(recorder.summary.files) >= 3)
            recorder.stop()
            live = feed.book("BTCUSDT")
            assert live is not None
            live_bids, live_asks, live_sequence = dict(live.bids), dict(live.asks), live.sequence
            summary = await asyncio.wait_for(task, 5)

        assert len(summary.files) >= 3
        frames = frames_in(summary.files)
        assert len(frames) == summary.frames
        assert [frame.recv_ns for frame in frames] == sorted(frame.recv_ns for frame in frames)
        sources = {frame.source for frame in frames}
        assert "rest:depth:BTCUSDT" in sources
        assert any(source.startswith(emulator.ws_url) for source in sources)

        book_feed, report = await replayed("binance", summary.files)
        assert report.stats == summary.feed_stats
        assert report.stats["gaps"] == 0
        assert report.stats["oracle_checks"] > 0
        assert report.mismatches == 0
        assert report.books == summary.books
        assert report.books["BTCUSDT"]["state"] == "valid"
        book = book_feed.book("BTCUSDT")
        assert book is not None
        assert (dict(book.bids), dict(book.asks), book.sequence) == (
            live_bids,
            live_asks,
            live_sequence,
        )

    run(scenario())


def test_okx_frames_replay_with_every_checksum_passing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Emulator("okx", OKX, speed=SPEED) as emulator:
            recorder = LiveRecorder(
                "okx",
                ["BTC-USDT"],
                tmp_path,
                urls={"ws_url": f"{emulator.ws_url}/ws/v5/public"},
                flush_seconds=0.1,
            )
            task = asyncio.create_task(recorder.run())
            feed = recorder.feed
            await until(lambda: feed.book_state("BTC-USDT") is BookState.VALID)
            await until(lambda: feed.stats.checksum_checks > 20)
            recorder.stop()
            summary = await asyncio.wait_for(task, 5)

        _, report = await replayed("okx", summary.files)
        assert report.stats["checksum_checks"] == summary.feed_stats["checksum_checks"] > 20
        assert report.mismatches == 0
        assert report.books == summary.books

    run(scenario())


def test_blocks_are_readable_while_the_recording_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC], speed=SPEED) as emulator:
            recorder = LiveRecorder(
                "binance",
                ["BTCUSDT"],
                tmp_path,
                urls={"ws_url": emulator.ws_url, "rest_url": emulator.http_url},
                flush_seconds=0.1,
            )
            task = asyncio.create_task(recorder.run())
            await until(lambda: recorder.summary.frames > 50)
            await asyncio.sleep(0.3)  # at least one flush since
            # What a crash now would leave: everything up to the last flush.
            on_disk = list(RecordingReader(recorder.summary.files[-1]))
            assert 50 <= len(on_disk) <= recorder.summary.frames
            recorder.stop()
            await asyncio.wait_for(task, 5)

    run(scenario())


def test_unknown_venues_and_empty_symbol_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="live venues: binance"):
        LiveRecorder("nasdaq", ["AAPL"], tmp_path)
    with pytest.raises(ValueError, match="at least one symbol"):
        LiveRecorder("binance", [], tmp_path)
    assert main(["record", "--venue", "binance", "--symbols", "BTCUSDT", "--out",
                 str(tmp_path), "--rotate-mb", "0"]) == 2  # fmt: skip


def test_the_command_rotates_by_size_and_stops_cleanly_on_sigint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec"

    async def scenario() -> dict[str, Any]:
        async with Emulator("binance", [BINANCE_BTC], speed=SPEED) as emulator:
            command = [
                sys.executable, "-m", "kernel", "--log-level", "WARNING", "record",
                "--venue", "binance", "--symbols", "BTCUSDT", "--out", str(out),
                "--rotate-mb", "0.01", "--json",
                "--ws-url", emulator.ws_url, "--rest-url", emulator.http_url,
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": "."}
            )
            await until(lambda: len(list(out.glob("*.tkr"))) >= 3, timeout=12)
            process.send_signal(signal.SIGINT)
            stdout, _ = await asyncio.wait_for(process.communicate(), 5)
            assert process.returncode == 0
            return dict(json.loads(stdout))

    summary = run(scenario())
    files = sorted(out.glob("*.tkr"))
    assert [str(path) for path in files] == summary["files"]
    assert len(frames_in(files)) == summary["frames"]
    assert main(["replay", *map(str, files), "--venue", "binance", "--verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gaps"] == 0
    assert report["oracle_mismatches"] == report["crossed_books"] == 0
    assert report["frames"] == summary["frames"]
    assert report["books"] == summary["books"]


def test_a_malformed_frame_is_recorded_as_received_and_replays_to_the_same_counts(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC], speed=SPEED) as emulator:
            recorder = LiveRecorder(
                "binance",
                ["BTCUSDT"],
                tmp_path,
                urls={"ws_url": emulator.ws_url, "rest_url": emulator.http_url},
                flush_seconds=0.1,
            )
            task = asyncio.create_task(recorder.run())
            feed = recorder.feed
            await until(lambda: feed.book_state("BTCUSDT") is BookState.VALID)
            emulator.faults.malformed(1, after=5, match="@trade")
            await until(lambda: feed.stats.malformed_frames == 1)
            await until(lambda: feed.stats.trades > 10)
            recorder.stop()
            summary = await asyncio.wait_for(task, 5)

        _, report = await replayed("binance", summary.files)
        assert report.stats == summary.feed_stats  # the replay saw exactly what live saw
        assert report.stats["malformed_frames"] == 1
        assert report.mismatches == 0
        assert report.books == summary.books

    run(scenario())
