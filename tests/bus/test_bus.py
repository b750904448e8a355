"""The bus delivers by topic and wildcard, to named endpoints, and survives bad handlers."""

from __future__ import annotations

import logging

import pytest

from kernel.bus import (
    CLOCK_PRIORITY,
    STRATEGY_PRIORITY,
    Bus,
    UnknownEndpointError,
    topic_matches,
    topics,
)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("data.book.binance.BTCUSDT", "data.book.binance.BTCUSDT", True),
        ("data.book.*.BTCUSDT", "data.book.okx.BTCUSDT", True),
        ("data.book.*", "data.book.binance.BTCUSDT", False),
        ("data.>", "data.book.binance.BTCUSDT", True),
        ("data.>", "data", False),
        ("data.book.binance.>", "data.book.binance.ETHUSDT", True),
        ("data.quote.>", "data.book.binance.BTCUSDT", False),
        ("data.book.binance.BTCUSDT", "data.book.binance.BTCUSDT.extra", False),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


def test_publish_reaches_exact_and_wildcard_subscribers_in_order() -> None:
    bus = Bus()
    seen: list[tuple[str, object]] = []
    bus.subscribe("data.book.binance.BTCUSDT", lambda m: seen.append(("exact", m)))
    bus.subscribe("data.book.*.BTCUSDT", lambda m: seen.append(("venue-wildcard", m)))
    bus.subscribe("data.>", lambda m: seen.append(("tail", m)))
    bus.subscribe("data.quote.>", lambda m: seen.append(("other", m)))
    bus.publish(topics.book("binance", "BTCUSDT"), 1)
    assert seen == [("exact", 1), ("venue-wildcard", 1), ("tail", 1)]


def test_subscribing_later_takes_effect_for_cached_topics() -> None:
    bus = Bus()
    seen: list[object] = []
    bus.publish("data.trade.binance.BTCUSDT", 0)  # resolves and caches "no handlers"
    bus.subscribe("data.trade.>", seen.append)
    bus.publish("data.trade.binance.BTCUSDT", 1)
    bus.unsubscribe("data.trade.>", seen.append)
    bus.publish("data.trade.binance.BTCUSDT", 2)
    assert seen == [1]


def test_a_raising_handler_is_counted_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Bus()
    seen: list[object] = []

    def broken(message: object) -> None:
        raise RuntimeError("consumer bug")

    bus.subscribe("data.>", broken)
    bus.subscribe("data.>", seen.append)
    with caplog.at_level(logging.ERROR):
        bus.publish("data.x", 1)
    assert seen == [1]
    assert bus.handler_errors == 1
    assert "consumer bug" in caplog.text


@pytest.mark.parametrize("pattern", ["", "data..book", "data.>.book", "data.bo*"])
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid topic pattern"):
        Bus().subscribe(pattern, print)


def test_endpoints_deliver_commands_to_one_receiver() -> None:
    bus = Bus()
    received: list[object] = []
    bus.register_endpoint(topics.PAPER_SUBMIT, received.append)
    bus.send(topics.PAPER_SUBMIT, "order")
    assert received == ["order"]
    with pytest.raises(ValueError, match="already registered"):
        bus.register_endpoint(topics.PAPER_SUBMIT, print)
    with pytest.raises(UnknownEndpointError):
        bus.send("nobody.home", "order")


def test_lower_priority_handlers_run_first_then_in_subscription_order() -> None:
    bus = Bus()
    seen: list[str] = []
    bus.subscribe("data.>", lambda m: seen.append("venue"))
    bus.subscribe("data.>", lambda m: seen.append("strategy"), priority=STRATEGY_PRIORITY)
    bus.subscribe("data.>", lambda m: seen.append("clock"), priority=CLOCK_PRIORITY)
    bus.subscribe("data.>", lambda m: seen.append("recorder"))
    bus.publish("data.x", 1)
    assert seen == ["clock", "strategy", "venue", "recorder"]
