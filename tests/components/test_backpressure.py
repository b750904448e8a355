"""A component slower than the market: its queue is bounded, books conflate, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from component_harness import Linked, link_to, served_in_thread
from component_samples import Sluggish
from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.service.config import ComponentSpec


def test_a_slow_component_gets_a_conflated_book_equal_to_the_kernels(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    settings = {"venue": "binance", "symbol": "BTCUSDT"}

    async def main() -> None:
        with served_in_thread(Sluggish) as (address, servicer):
            spec = ComponentSpec(name="slow", endpoint=address, settings=settings, queue_size=8)
            link = link_to(stack, spec)
            link.start()
            try:
                await link.wait_up(10)
                await Linked(stack, link, None).feed(btc_frames[:1200])  # subscribed and synced
                await Linked(stack, link, None).feed(btc_frames[1200:6000], lockstep=False)
                assert link.stats.dropped > 0, "the queue is bounded"
                assert link.stats.conflated > 0, "dropped deltas are replaced by snapshots"
                await link.settle(30)
                kernel_book = stack.feed.book("BTCUSDT")
                assert kernel_book is not None
                remote_book = servicer.context.books["binance", "BTCUSDT"]
                assert remote_book.bid_levels() == kernel_book.bid_levels()
                assert remote_book.ask_levels() == kernel_book.ask_levels()
                assert link.state.value == "up"
            finally:
                await link.stop()
                stack.close()

    asyncio.run(main())
