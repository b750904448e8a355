"""The shared log behind order-event streams: one subscription, a cursor per stream."""

from __future__ import annotations

import asyncio

from kernel.api.feeds import FeedStats, SharedLog
from kernel.bus import Bus


def make(bus: Bus, stats: FeedStats, max_behind: int = 4) -> SharedLog[int]:
    log: SharedLog[int] = SharedLog(bus, (), stats, max_behind=max_behind)
    log.subscriptions = [("t.>", log.append)]
    return log


def test_publishing_costs_one_handler_call_whatever_the_number_of_streams() -> None:
    bus, stats = Bus(), FeedStats()
    log = make(bus, stats)
    with log.reader(), log.reader(), log.reader():
        assert len(bus.handlers_for("t.x")) == 1
        assert stats.streams == 3
    assert bus.handlers_for("t.x") == ()  # the last stream gone: nothing is subscribed
    assert stats.streams == 0


def test_each_stream_reads_every_event_from_its_own_start_in_order() -> None:
    async def main() -> None:
        bus, stats = Bus(), FeedStats()
        log = make(bus, stats, max_behind=100)
        with log.reader() as early:
            bus.publish("t.a", 1)
            with log.reader() as late:
                bus.publish("t.a", 2)
                bus.publish("t.b", 3)
                assert await early.take() == [1, 2, 3]
                assert await late.take() == [2, 3]
                waiting = asyncio.create_task(late.take())
                await asyncio.sleep(0)
                bus.publish("t.a", 4)
                assert await asyncio.wait_for(waiting, 1) == [4]
                assert await early.take() == [4]

    asyncio.run(main())


def test_a_stream_too_far_behind_gets_its_next_events_then_overflows() -> None:
    async def main() -> None:
        bus, stats = Bus(), FeedStats()
        log = make(bus, stats, max_behind=4)
        with log.reader() as slow, log.reader() as fast:
            for value in range(20):
                bus.publish("t.a", value)
                assert await fast.take() == [value]
            assert slow.overflowed and not fast.overflowed
            assert await slow.take() == [0, 1, 2, 3]  # no gap before the end
            assert stats.overflowed == 1
            assert len(log.items) <= 2 * 4 + 1  # the slow stream holds nothing back

    asyncio.run(main())
