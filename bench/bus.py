"""``bus``: what ``Bus.publish`` costs per event, against calling the handlers directly.

Each case publishes one prepared message many times on the book topic of a
symbol; its floor is a loop calling the same handlers directly (an empty loop
when there are none), timed in the same runs, interleaved. The ratio is
publish time over floor time; the overhead is their difference per event.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

from bench.common import (
    Contender,
    Context,
    fmt_int,
    fmt_ns,
    fmt_ratio,
    interleave,
    table,
)
from kernel.bus import Bus, topics

NAME = "bus"

_EVENTS = 1_000_000
_QUICK_EVENTS = 100_000
_TOPIC = topics.book("binance", "BTCUSDT")
_MESSAGE = object()


def _first(_message: object) -> None:
    return None


def _second(_message: object) -> None:
    return None


def _third(_message: object) -> None:
    return None


# case name -> subscriptions (pattern, handler); all match _TOPIC.
_CASES: dict[str, list[tuple[str, Callable[[Any], None]]]] = {
    "0 subscribers": [],
    "0 subscribers, guarded": [],
    "1 subscriber (exact)": [(_TOPIC, _first)],
    "3 subscribers (exact + 2 wildcard)": [
        (_TOPIC, _first),
        ("data.book.>", _second),
        ("data.*.binance.BTCUSDT", _third),
    ],
}


def _publish(case: str, events: int) -> Callable[[], Callable[[], object]]:
    def prepare() -> Callable[[], object]:
        bus = Bus()
        # A subscription on another branch, so "0 subscribers" still has one to skip.
        bus.subscribe("events.>", _third)
        for pattern, handler in _CASES[case]:
            bus.subscribe(pattern, handler)
        publish = bus.publish
        handlers_for = bus.handlers_for
        publish(_TOPIC, _MESSAGE)  # resolve the topic once, as a running kernel has
        guarded = case.endswith("guarded")

        def body() -> None:
            topic = _TOPIC
            message = _MESSAGE
            if guarded:
                # The feed's pattern: build and publish an event only for a listener.
                for _ in repeat(None, events):
                    if handlers_for(topic):
                        publish(topic, message)
            else:
                for _ in repeat(None, events):
                    publish(topic, message)

        return body

    return prepare


def _floor(case: str, events: int) -> Callable[[], Callable[[], object]]:
    handlers = [handler for _, handler in _CASES[case]]

    def prepare() -> Callable[[], object]:
        message = _MESSAGE
        if not handlers:

            def body() -> None:
                for _ in repeat(None, events):
                    pass

        elif len(handlers) == 1:
            (first,) = handlers

            def body() -> None:
                for _ in repeat(None, events):
                    first(message)

        else:
            first, second, third = handlers

            def body() -> None:
                for _ in repeat(None, events):
                    first(message)
                    second(message)
                    third(message)

        return body

    return prepare


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    events = _QUICK_EVENTS if ctx.quick else _EVENTS
    print(f"\n[bus] {fmt_int(events)} publishes per case and run, {ctx.runs} runs")
    contenders = []
    for case in _CASES:
        contenders.append(Contender(f"publish: {case}", _publish(case, events)))
        contenders.append(Contender(f"floor: {case}", _floor(case, events)))
    timings = interleave(contenders, ctx.runs)
    figures: dict[str, Any] = {}
    rows = []
    for case in _CASES:
        publish_ns = timings.median(f"publish: {case}") / events * 1e9
        floor_ns = timings.median(f"floor: {case}") / events * 1e9
        figures[case] = {
            "publish_ns": publish_ns,
            "floor_ns": floor_ns,
            "overhead_ns": publish_ns - floor_ns,
            "ratio_to_floor": publish_ns / floor_ns,
            "publish_runs_s": timings.seconds[f"publish: {case}"],
            "floor_runs_s": timings.seconds[f"floor: {case}"],
        }
        rows.append(
            [
                case,
                fmt_ns(publish_ns),
                fmt_ns(floor_ns),
                fmt_ns(publish_ns - floor_ns),
                fmt_ratio(publish_ns / floor_ns),
            ]
        )
    table(
        f"bus: ns per publish (median of {ctx.runs} interleaved runs)",
        ["case", "publish", "direct calls", "overhead", "publish/direct"],
        rows,
    )
    print(
        "  floor: the same handlers called directly in the same loop (an empty loop for none);"
        " 'guarded' is the feed's pattern, handlers_for(topic) before publishing"
    )
    return {"events_per_run": events, "cases": figures}
