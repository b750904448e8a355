"""Metrics: cheap counters and latency histograms on the hot path, Prometheus at scrape time.

The hot path never touches prometheus-client objects (each update there takes
a lock). Feeds bump plain integers in :class:`~kernel.adapters.base.FeedStats`
and sample stage latencies into :class:`LatencyHistogram`; a custom collector
turns them into Prometheus metrics when the endpoint is scraped.
"""

from __future__ import annotations

import logging
import math
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kernel.adapters.base import FeedStats

__all__ = [
    "LATENCY_BUCKETS_NS",
    "KernelCollector",
    "LatencyHistogram",
    "MetricsServer",
    "StageLatency",
    "TickToOrder",
    "percentiles",
]

log = logging.getLogger(__name__)

# 250 ns to ~34 ms in powers of two: the range from one dict update to a GC pause.
LATENCY_BUCKETS_NS: tuple[int, ...] = tuple(250 << shift for shift in range(18))


class LatencyHistogram:
    """A fixed-bucket histogram of nanosecond durations."""

    __slots__ = ("bounds", "count", "counts", "max_ns", "total_ns")

    def __init__(self, bounds: tuple[int, ...] = LATENCY_BUCKETS_NS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def observe(self, duration_ns: int) -> None:
        """Record one duration."""
        self.counts[bisect_left(self.bounds, duration_ns)] += 1
        self.count += 1
        self.total_ns += duration_ns
        self.max_ns = max(self.max_ns, duration_ns)

    def quantile(self, q: float) -> int:
        """Return the upper bound of the bucket holding quantile ``q`` (at most the maximum)."""
        if not self.count:
            return 0
        rank = q * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return (
                    min(self.bounds[index], self.max_ns)
                    if index < len(self.bounds)
                    else self.max_ns
                )
        return self.max_ns

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """Return Prometheus-style cumulative buckets with bounds in seconds."""
        buckets: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets.append((repr(bound / 1e9), running))
        buckets.append(("+Inf", running + self.counts[-1]))
        return buckets


class StageLatency:
    """Per-stage latency of a feed, sampled on one frame in ``sample_every``.

    Timing every frame would cost more than some stages; sampling keeps the
    distribution while the overhead stays a counter decrement per frame.
    """

    __slots__ = ("_countdown", "handle", "parse", "sample_every")

    def __init__(self, sample_every: int = 16) -> None:
        if sample_every < 1:
            raise ValueError("sample_every must be >= 1")
        self.sample_every = sample_every
        self._countdown = sample_every
        self.parse = LatencyHistogram()
        self.handle = LatencyHistogram()

    def start(self) -> int:
        """Return a start timestamp for a sampled frame, else 0."""
        self._countdown -= 1
        if self._countdown:
            return 0
        self._countdown = self.sample_every
        return perf_counter_ns()

    def parsed(self, started: int) -> int:
        """Record the parse stage; return the timestamp the next stage starts at."""
        now = perf_counter_ns()
        self.parse.observe(now - started)
        return now

    def handled(self, started: int) -> None:
        """Record the sync, book and publish stage."""
        self.handle.observe(perf_counter_ns() - started)

    def stages(self) -> dict[str, LatencyHistogram]:
        """Return the histograms by stage name."""
        return {"parse": self.parse, "book": self.handle}


_COUNTER_HELP = {
    "frames": "Raw frames received",
    "book_updates": "Book diffs applied to valid books",
    "level_updates": "Price levels changed by applied diffs",
    "quotes": "Top-of-book messages",
    "trades": "Trade messages",
    "resyncs": "Books that became valid again after being invalid",
    "gaps": "Sequence gaps detected",
    "oracle_checks": "Books compared with a venue oracle (bookTicker)",
    "oracle_mismatches": "Books that disagreed with a venue oracle",
    "checksum_checks": "Venue checksums verified",
    "checksum_failures": "Venue checksums that did not match the book",
    "crossed_books": "Books found crossed",
    "malformed_frames": "Frames that could not be parsed or had the wrong shape",
}


class KernelCollector(Collector):
    """Expose feed counters and stage latencies, read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: list[tuple[str, FeedStats, StageLatency | None]] = []
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []
        self._labelled: list[tuple[str, str, str, Callable[[], Mapping[str, float]]]] = []
        self._sources: list[Callable[[], Iterable[Any]]] = []

    def add_feed(self, venue: str, stats: FeedStats, latency: StageLatency | None = None) -> None:
        """Export a feed's counters (and its stage latencies) labelled by venue."""
        with self._lock:
            self._feeds.append((venue, stats, latency))

    def add_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export ``read()`` as a gauge named ``tradekernel_<name>``."""
        with self._lock:
            self._gauges.append((name, documentation, read))

    def add_counters(
        self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, float]]
    ) -> None:
        """Export ``read()`` as a counter ``tradekernel_<name>_total`` labelled by its keys."""
        with self._lock:
            self._labelled.append((name, documentation, label, read))

    def add_source(self, families: Callable[[], Iterable[Any]]) -> None:
        """Export the metric families ``families()`` builds at each scrape."""
        with self._lock:
            self._sources.append(families)

    def collect(self) -> Iterator[Any]:
        with self._lock:
            feeds = list(self._feeds)
            gauges = list(self._gauges)
            labelled = list(self._labelled)
            sources = list(self._sources)
        for families in sources:
            yield from families()
        for name, documentation, label, read_all in labelled:
            family = CounterMetricFamily(f"tradekernel_{name}", documentation, labels=[label])
            for key, value in read_all().items():
                family.add_metric([key], value)
            yield family
        for name, documentation in _COUNTER_HELP.items():
            family = CounterMetricFamily(f"tradekernel_{name}", documentation, labels=["venue"])
            for venue, stats, _ in feeds:
                family.add_metric([venue], getattr(stats, name))
            yield family
        latency = HistogramMetricFamily(
            "tradekernel_stage_latency_seconds",
            "Sampled per-frame latency of each pipeline stage",
            labels=["venue", "stage"],
        )
        for venue, _, stages in feeds:
            if stages is None:
                continue
            for stage, histogram in stages.stages().items():
                latency.add_metric(
                    [venue, stage], histogram.cumulative_buckets(), histogram.total_ns / 1e9
                )
        yield latency
        for name, documentation, read in gauges:
            gauge = GaugeMetricFamily(f"tradekernel_{name}", documentation)
            gauge.add_metric([], read())
            yield gauge


class MetricsServer:
    """The Prometheus endpoint: an HTTP server on its own thread, loopback by default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.host = host
        self.requested_port = port
        self.registry = CollectorRegistry()
        self.collector = KernelCollector()
        self.registry.register(self.collector)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the bound port (useful after binding port 0)."""
        if self._server is None:
            raise RuntimeError("metrics server is not running")
        return int(self._server.server_port)

    def start(self) -> None:
        """Bind and serve; raises OSError when the port is taken."""
        self._server, self._thread = start_http_server(
            self.requested_port, addr=self.host, registry=self.registry
        )
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class TickToOrder:
    """Latency from a raw frame entering a feed to an order reaching its venue, by stage.

    The feed stamps :attr:`frame_ns` when a frame arrives, the strategy runner
    stamps :attr:`strategy_ns` before calling a strategy, and the order
    manager records the rest when it routes an order::

        frame ─feed─▶ strategy callback ─strategy─▶ submit ─risk─▶ checked
              ─journal─▶ journaled ─route─▶ venue

    Stamps cost one ``perf_counter_ns`` call each. Orders are few next to
    frames, so every order's figures are kept (up to ``max_samples``) and
    percentiles are exact.
    """

    __slots__ = ("frame_ns", "max_samples", "samples", "strategy_ns")

    STAGES = ("total", "feed", "strategy", "risk", "journal", "route")

    def __init__(self, max_samples: int = 1 << 18) -> None:
        self.frame_ns = 0
        self.strategy_ns = 0
        self.max_samples = max_samples
        self.samples: dict[str, array[int]] = {name: array("q") for name in self.STAGES}

    def record(self, submitted_ns: int, checked_ns: int, journaled_ns: int, routed_ns: int) -> None:
        """Record one order's stage boundaries (``perf_counter_ns`` values)."""
        frame_ns = self.frame_ns
        strategy_ns = self.strategy_ns
        if not frame_ns or not strategy_ns or strategy_ns < frame_ns:
            return  # not caused by a frame (a timer, a restart)
        samples = self.samples
        if len(samples["total"]) >= self.max_samples:
            return
        samples["total"].append(routed_ns - frame_ns)
        samples["feed"].append(strategy_ns - frame_ns)
        samples["strategy"].append(submitted_ns - strategy_ns)
        samples["risk"].append(checked_ns - submitted_ns)
        samples["journal"].append(journaled_ns - checked_ns)
        samples["route"].append(routed_ns - journaled_ns)

    def summary(self) -> dict[str, dict[str, int]]:
        """Return count, p50, p99 and max of the total and of every stage, in ns."""
        return {name: percentiles(values) for name, values in self.samples.items()}


def percentiles(values: Iterable[int]) -> dict[str, int]:
    """Return count, p50, p99 and max of ``values`` (nearest-rank), zeros when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": 0, "p99": 0, "max": 0}
    last = len(ordered) - 1

    def rank(q: float) -> int:
        return ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"count": len(ordered), "p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}
