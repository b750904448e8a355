"""Resubscribe the books a feed asks to resync, paced so a broken stream cannot cause a storm.

The Kraken, Bybit and Coinbase feeds put a :class:`~kernel.adapters.wire.ResyncRequest`
in ``feed.resync_requests`` when a book fails (checksum, sequence gap, crossed
book). Their venues send a fresh snapshot when a book is subscribed again, so
the remedy is to unsubscribe and subscribe that book alone. The rules:

* requests are taken only while connected and only for this session's
  connection; a reconnect subscribes everything again, so requests made while
  the connection was down (by ``connection_lost``) are dropped on connect;
* after any (re)subscription a book gets ``interval`` to become valid; a book
  still not valid then is resubscribed, so a lost snapshot is retried too;
* a subject's interval starts at ``min_interval_s`` and doubles, up to
  ``max_interval_s``, each time it is resubscribed again within
  ``max_interval_s`` of the last time: a stream that keeps breaking is
  resubscribed less and less often;
* two resubscriptions are at least ``send_gap_s`` apart, whatever the subject,
  for venues that limit messages per second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from kernel.adapters.wire import ResyncRequests
from kernel.asyncutil import wait_set
from kernel.live.session import WebSocketSession

__all__ = ["Resubscriber"]

log = logging.getLogger(__name__)


class Resubscriber:
    """Turn a feed's resync requests into paced unsubscribe/subscribe pairs on ``session``."""

    def __init__(
        self,
        session: WebSocketSession,
        requests: ResyncRequests,
        *,
        messages: Callable[[str], Sequence[str | bytes]],
        is_valid: Callable[[str], bool],
        min_interval_s: float = 1.0,
        max_interval_s: float = 30.0,
        send_gap_s: float = 0.0,
        tick_s: float = 0.05,
    ) -> None:
        if min_interval_s <= 0 or max_interval_s < min_interval_s:
            raise ValueError("need 0 < min_interval_s <= max_interval_s")
        self.session = session
        self.requests = requests
        self.resubscribes = 0
        """Unsubscribe/subscribe pairs sent."""
        self.ignored_requests = 0
        """Requests for another connection or an unknown subject."""
        self._messages = messages
        self._is_valid = is_valid
        self._min_ns = int(min_interval_s * 1e9)
        self._max_ns = int(max_interval_s * 1e9)
        self._send_gap_s = send_gap_s
        self._tick_s = tick_s
        self._subjects: set[str] = set()
        self._interval_ns: dict[str, int] = {}
        self._last_sent_ns: dict[str, int] = {}
        self._due_ns: dict[str, int] = {}
        self._wake = asyncio.Event()
        requests.callback = lambda _request: self._wake.set()

    def subscribed_all(self, subjects: Iterable[str]) -> None:
        """Note that every subject was just subscribed (a connect): drop older requests."""
        now = time.monotonic_ns()
        self.requests.take()
        self._subjects = set(subjects)
        self._due_ns.clear()
        for subject in self._subjects:
            self._last_sent_ns[subject] = now
            self._due_ns[subject] = now + self._interval_ns.get(subject, self._min_ns)

    def pending(self) -> list[str]:
        """Return the subjects waiting for a check or a resubscription."""
        return sorted(self._due_ns)

    async def run(self) -> None:
        """Resubscribe until cancelled."""
        while True:
            await wait_set(self._wake, self._tick_s)
            self._wake.clear()
            if not self.session.connected.is_set():
                continue
            self._take_requests()
            await self._resubscribe_due()

    def _take_requests(self) -> None:
        now = time.monotonic_ns()
        for request in self.requests.take():
            subject = request.subject
            if request.connection != self.session.url or subject not in self._subjects:
                self.ignored_requests += 1
                continue
            if subject not in self._due_ns:
                interval = self._interval_ns.get(subject, self._min_ns)
                self._due_ns[subject] = max(now, self._last_sent_ns.get(subject, 0) + interval)

    async def _resubscribe_due(self) -> None:
        now = time.monotonic_ns()
        for subject, due in sorted(self._due_ns.items(), key=lambda item: item[1]):
            if due > now:
                continue
            if self._is_valid(subject):
                del self._due_ns[subject]
                continue
            if not self.session.connected.is_set():
                return
            interval = self._next_interval(subject, now)
            self._last_sent_ns[subject] = now
            self._due_ns[subject] = now + interval
            sent = True
            for message in self._messages(subject):
                sent = sent and await self.session.send(message)
            if not sent:
                return  # the connection went away; the reconnect subscribes everything
            self.resubscribes += 1
            log.info(
                "resubscribed %s on %s (next check in %.2fs)",
                subject,
                self.session.url,
                interval / 1e9,
            )
            if self._send_gap_s:
                await asyncio.sleep(self._send_gap_s)
                now = time.monotonic_ns()

    def _next_interval(self, subject: str, now: int) -> int:
        """Double the subject's interval when it is resubscribed again soon, else start over."""
        last = self._last_sent_ns.get(subject)
        interval = self._interval_ns.get(subject, self._min_ns)
        if last is not None and now - last < self._max_ns and subject in self._interval_ns:
            interval = min(interval * 2, self._max_ns)
        elif last is None or now - last >= self._max_ns:
            interval = self._min_ns
        self._interval_ns[subject] = interval
        return interval
