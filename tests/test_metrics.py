"""Counters and latency histograms are exported in Prometheus' text format."""

from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest

from kernel.adapters.base import FeedStats
from kernel.metrics import LatencyHistogram, MetricsServer, StageLatency


def test_histogram_quantiles_are_bucket_upper_bounds_capped_at_the_maximum() -> None:
    histogram = LatencyHistogram((100, 200, 400))
    for value in (50, 60, 150, 350, 900):
        histogram.observe(value)
    assert histogram.count == 5
    assert histogram.quantile(0.4) == 100
    assert histogram.quantile(0.6) == 200
    assert histogram.quantile(0.99) == 900
    assert histogram.cumulative_buckets() == [("1e-07", 2), ("2e-07", 3), ("4e-07", 4), ("+Inf", 5)]


def test_stage_latency_samples_one_frame_in_n() -> None:
    latency = StageLatency(sample_every=4)
    started = [latency.start() for _ in range(12)]
    assert [bool(value) for value in started] == [False, False, False, True] * 3


def test_server_exports_feed_counters_and_stage_histograms() -> None:
    server = MetricsServer(port=0)
    stats = FeedStats()
    stats.frames = 7
    stats.gaps = 1
    latency = StageLatency(sample_every=1)
    latency.handled(latency.parsed(latency.start()))
    server.collector.add_feed("binance", stats, latency)
    server.collector.add_gauge("queue_depth", "Items waiting", lambda: 3.0)
    text = generate_latest(server.registry).decode()
    assert 'tradekernel_frames_total{venue="binance"} 7.0' in text
    assert 'tradekernel_gaps_total{venue="binance"} 1.0' in text
    assert 'tradekernel_stage_latency_seconds_count{stage="parse",venue="binance"} 1.0' in text
    assert "tradekernel_queue_depth 3.0" in text
    server.start()
    try:
        assert server.host == "127.0.0.1"
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert b"tradekernel_malformed_frames_total" in reply.read()
    finally:
        server.stop()


def test_labelled_counters_are_read_at_scrape_time() -> None:
    server = MetricsServer(port=0)
    counts = {"self_trade": 2}
    server.collector.add_counters("risk_denials", "Denied orders", "reason", lambda: counts)
    counts["price_band"] = 1
    text = generate_latest(server.registry).decode()
    assert 'tradekernel_risk_denials_total{reason="self_trade"} 2.0' in text
    assert 'tradekernel_risk_denials_total{reason="price_band"} 1.0' in text
