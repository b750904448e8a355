"""Small pieces several venue feeds share: resync requests and exact wire timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

__all__ = ["ResyncRequest", "ResyncRequests", "rfc3339_to_ns"]

_NS_PER_S = 1_000_000_000


class ResyncRequest(NamedTuple):
    """A feed's request to the transport: resubscribe ``subject`` on ``connection``.

    ``connection`` is the frame source (a connection URL); ``subject`` names what
    to resubscribe in the venue's terms (a channel and symbol, a topic, a product).
    """

    venue: str
    connection: str
    subject: str
    reason: str


class ResyncRequests:
    """Resync requests waiting for the transport, at most one per connection and subject.

    A live adapter registers ``callback`` to act at once, or drains
    :meth:`take` after each frame; a replay leaves them, and the bound (one per
    book) keeps that cheap.
    """

    __slots__ = ("_pending", "callback", "count")

    def __init__(self, callback: Callable[[ResyncRequest], None] | None = None) -> None:
        self.callback = callback
        self.count = 0
        self._pending: dict[tuple[str, str], ResyncRequest] = {}

    def request(self, venue: str, connection: str, subject: str, reason: str) -> None:
        """Ask for a resync of ``subject`` on ``connection``."""
        request = ResyncRequest(venue, connection, subject, reason)
        self.count += 1
        self._pending[(connection, subject)] = request
        if self.callback is not None:
            self.callback(request)

    def take(self) -> list[ResyncRequest]:
        """Return the pending requests, oldest first, and forget them."""
        pending = list(self._pending.values())
        self._pending.clear()
        return pending

    def __len__(self) -> int:
        return len(self._pending)


def rfc3339_to_ns(text: str) -> int:
    """Convert an RFC 3339 UTC time (``2023-02-09T20:32:50.714964855Z``) to epoch ns, exactly.

    Any number of fractional digits is accepted (digits past nanoseconds are
    truncated); the zone must be ``Z`` or ``+00:00``.
    """
    if type(text) is not str:
        raise TypeError(f"timestamp {text!r} is not a string")
    if text.endswith("Z"):
        body = text[:-1]
    elif text.endswith("+00:00"):
        body = text[:-6]
    else:
        raise ValueError(f"timestamp {text!r} is not UTC")
    whole, _, fraction = body.partition(".")
    if fraction and not (fraction.isascii() and fraction.isdigit()):
        raise ValueError(f"invalid fractional seconds in {text!r}")
    moment = datetime.fromisoformat(whole)
    if moment.tzinfo is not None:
        raise ValueError(f"timestamp {text!r} has two zones")
    seconds = int(moment.replace(tzinfo=UTC).timestamp())
    return seconds * _NS_PER_S + int((fraction + "000000000")[:9])
