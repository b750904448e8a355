"""Faults a test scripts into the emulator, and the counters that prove they happened.

Frame faults act on market-data frames on their way out of a websocket
connection. Each is a one-shot rule: it lets ``after`` matching frames pass,
then acts on the next ``count`` matching frames and retires. ``match`` is a
substring of the frame's stream key (Binance ``btcusdt@depth@100ms``, OKX
``books:BTC-USDT``); None matches every frame. Rules are shared by all
connections, so the first connection to send a matching frame triggers them.

Request faults (rate limits, order rejects, a stale snapshot) act on the next
REST requests they match; the clock offset stays until it is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "STAT_NAMES",
    "EmulatorStats",
    "FaultPlan",
    "FrameAction",
    "OrderReject",
    "RateLimitAnswer",
]

STAT_NAMES = (
    "connections",
    "frames_sent",
    "frames_dropped",
    "frames_delayed",
    "frames_reordered",
    "frames_malformed",
    "disconnects",
    "slow_consumer_disconnects",
    "rest_requests",
    "snapshots_served",
    "stale_snapshots",
    "rate_limited",
    "signature_rejections",
    "timestamp_rejections",
    "orders",
    "orders_rejected",
    "faulted_order_rejects",
    "fills",
    "replayed_frames",
    "replay_passes",
)


class EmulatorStats:
    """Plain integer counters of what the emulator served and which faults it injected."""

    __slots__ = STAT_NAMES

    connections: int
    frames_sent: int
    frames_dropped: int
    frames_delayed: int
    frames_reordered: int
    frames_malformed: int
    disconnects: int
    slow_consumer_disconnects: int
    rest_requests: int
    snapshots_served: int
    stale_snapshots: int
    rate_limited: int
    signature_rejections: int
    timestamp_rejections: int
    orders: int
    orders_rejected: int
    faulted_order_rejects: int
    fills: int
    replayed_frames: int
    replay_passes: int

    def __init__(self) -> None:
        for name in STAT_NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """Return every counter by name."""
        return {name: getattr(self, name) for name in STAT_NAMES}


class FrameAction(Enum):
    """What happens to one outgoing frame."""

    SEND = "send"
    DROP = "drop"
    DELAY = "delay"
    REORDER = "reorder"
    MALFORM = "malform"
    DISCONNECT = "disconnect"


@dataclass
class _FrameRule:
    action: FrameAction
    match: str | None
    after: int
    count: int
    seconds: float = 0.0
    abrupt: bool = True


@dataclass(frozen=True)
class RateLimitAnswer:
    """An HTTP rate-limit answer to give instead of serving a request."""

    status: int
    retry_after: int


@dataclass(frozen=True)
class OrderReject:
    """A venue error code and message to answer an order request with."""

    code: int | str
    msg: str


@dataclass
class _CountedRule:
    count: int
    match: str | None = None


class FaultPlan:
    """The faults armed for one emulator (``emulator.faults``)."""

    def __init__(self, stats: EmulatorStats) -> None:
        self._stats = stats
        self._frame_rules: list[_FrameRule] = []
        self._rate_limits: list[tuple[_CountedRule, RateLimitAnswer]] = []
        self._rejects: list[tuple[_CountedRule, OrderReject]] = []
        self._stale_snapshots = 0
        self.offset_ms = 0
        """Added to the emulator's clock: what ``/api/v3/time`` says and what timestamps
        of signed requests are checked against."""

    # -- scripting API ---------------------------------------------------------

    def disconnect_after(
        self, frames: int, *, match: str | None = None, abrupt: bool = True
    ) -> None:
        """Close the connection that would send the matching frame after ``frames`` more.

        ``abrupt`` drops the TCP connection without a close frame (a network
        failure, close code 1006 at the client); otherwise the server sends close
        code 1001 (going away), as Binance does at the 24-hour mark.
        """
        self._frame_rules.append(
            _FrameRule(FrameAction.DISCONNECT, match, frames, 1, abrupt=abrupt)
        )

    def drop_frames(self, count: int = 1, *, after: int = 0, match: str | None = None) -> None:
        """Silently skip ``count`` matching frames after letting ``after`` through (a gap)."""
        self._frame_rules.append(_FrameRule(FrameAction.DROP, match, after, count))

    def delay(
        self, seconds: float, *, count: int = 1, after: int = 0, match: str | None = None
    ) -> None:
        """Hold each of ``count`` matching frames for ``seconds`` before sending it.

        Frames behind it on the same connection wait too, as they would behind
        a stalled TCP stream.
        """
        self._frame_rules.append(
            _FrameRule(FrameAction.DELAY, match, after, count, seconds=seconds)
        )

    def reorder(self, *, count: int = 1, after: int = 0, match: str | None = None) -> None:
        """Send each of ``count`` matching frames after the frame that follows it."""
        self._frame_rules.append(_FrameRule(FrameAction.REORDER, match, after, count))

    def malformed(self, count: int = 1, *, after: int = 0, match: str | None = None) -> None:
        """Cut ``count`` matching frames in half, so they are no longer valid JSON."""
        self._frame_rules.append(_FrameRule(FrameAction.MALFORM, match, after, count))

    def stale_snapshot(self, count: int = 1) -> None:
        """Serve the next ``count`` book snapshots from the state at market open.

        Its update id is older than anything the stream now sends, so it cannot
        be bridged (Binance REST depth; OKX snapshots sent on subscription).
        """
        self._stale_snapshots += count

    def rate_limit(
        self,
        status: int = 429,
        *,
        retry_after: int = 1,
        count: int = 1,
        match: str | None = None,
    ) -> None:
        """Answer the next ``count`` REST requests (whose path contains ``match``)
        with HTTP ``status`` (429 too many requests, 418 banned) and ``Retry-After``."""
        if status not in (418, 429):
            raise ValueError(f"rate-limit status must be 418 or 429, got {status}")
        self._rate_limits.append((_CountedRule(count, match), RateLimitAnswer(status, retry_after)))

    def reject_orders(self, code: int | str, msg: str, *, count: int = 1) -> None:
        """Reject the next ``count`` order requests with the venue error ``code`` and ``msg``."""
        self._rejects.append((_CountedRule(count), OrderReject(code, msg)))

    def clock_offset_ms(self, offset: int) -> None:
        """Shift the emulator's clock by ``offset`` milliseconds (negative: behind)."""
        self.offset_ms = offset

    def clear(self) -> None:
        """Disarm every fault and reset the clock offset."""
        self._frame_rules.clear()
        self._rate_limits.clear()
        self._rejects.clear()
        self._stale_snapshots = 0
        self.offset_ms = 0

    @property
    def armed(self) -> int:
        """Return how many one-shot faults are still waiting to act."""
        return (
            len(self._frame_rules)
            + len(self._rate_limits)
            + len(self._rejects)
            + self._stale_snapshots
        )

    # -- used by the servers ---------------------------------------------------

    def frame_action(self, key: str) -> tuple[FrameAction, _FrameRule | None]:
        """Decide what happens to the next outgoing frame of stream ``key``."""
        for rule in self._frame_rules:
            if rule.match is not None and rule.match not in key:
                continue
            if rule.after > 0:
                rule.after -= 1
                continue
            rule.count -= 1
            if rule.count <= 0:
                self._frame_rules.remove(rule)
            return rule.action, rule
        return FrameAction.SEND, None

    def take_rate_limit(self, path: str) -> RateLimitAnswer | None:
        """Return the rate-limit answer armed for a request to ``path``, if any."""
        for rule, answer in self._rate_limits:
            if rule.match is None or rule.match in path:
                rule.count -= 1
                if rule.count <= 0:
                    self._rate_limits.remove((rule, answer))
                self._stats.rate_limited += 1
                return answer
        return None

    def take_order_reject(self) -> OrderReject | None:
        """Return the reject armed for the next order request, if any."""
        if not self._rejects:
            return None
        rule, reject = self._rejects[0]
        rule.count -= 1
        if rule.count <= 0:
            self._rejects.pop(0)
        self._stats.faulted_order_rejects += 1
        return reject

    def take_stale_snapshot(self) -> bool:
        """Return whether the next snapshot served must be the stale one."""
        if self._stale_snapshots <= 0:
            return False
        self._stale_snapshots -= 1
        self._stats.stale_snapshots += 1
        return True
