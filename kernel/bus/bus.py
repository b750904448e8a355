"""The in-process message bus: topics for data and events, endpoints for commands.

Publishing is on the hot path, so a topic's handlers are resolved against the
wildcard subscriptions once, cached as a tuple, and the cache is dropped only
when subscriptions change. A handler that raises is counted and logged; the
other handlers still receive the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = [
    "CLOCK_PRIORITY",
    "DEFAULT_PRIORITY",
    "STRATEGY_PRIORITY",
    "Bus",
    "Handler",
    "UnknownEndpointError",
    "topic_matches",
]

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]

CLOCK_PRIORITY = 0
"""Subscribers that keep time run before anyone reads the time."""
STRATEGY_PRIORITY = 10
"""Strategies run before venues and recorders, keeping them out of tick-to-order."""
DEFAULT_PRIORITY = 100


class UnknownEndpointError(LookupError):
    """A command was sent to an endpoint nobody registered."""


def _validate_pattern(pattern: str) -> list[str]:
    parts = pattern.split(".")
    if not pattern or any(not part for part in parts):
        raise ValueError(f"invalid topic pattern {pattern!r}: empty segment")
    for index, part in enumerate(parts):
        if part == ">" and index != len(parts) - 1:
            raise ValueError(f"invalid topic pattern {pattern!r}: '>' must be the last segment")
        if part not in ("*", ">") and ("*" in part or ">" in part):
            raise ValueError(f"invalid topic pattern {pattern!r}: wildcards fill a whole segment")
    return parts


def topic_matches(pattern: str, topic: str) -> bool:
    """Return whether ``topic`` matches ``pattern`` (``*`` one segment, ``>`` the rest)."""
    pattern_parts = pattern.split(".")
    topic_parts = topic.split(".")
    for index, part in enumerate(pattern_parts):
        if part == ">":
            return len(topic_parts) > index
        if index >= len(topic_parts):
            return False
        if part != "*" and part != topic_parts[index]:
            return False
    return len(pattern_parts) == len(topic_parts)


class Bus:
    """Publish/subscribe on hierarchical topics plus point-to-point endpoints."""

    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, Handler]] = []
        self._priorities: list[int] = []  # parallel to _subscriptions, ascending
        self._resolved: dict[str, tuple[Handler, ...]] = {}
        self._endpoints: dict[str, Handler] = {}
        self.published = 0
        self.handler_errors = 0

    # -- topics --------------------------------------------------------------

    def subscribe(
        self, pattern: str, handler: Handler, *, priority: int = DEFAULT_PRIORITY
    ) -> None:
        """Deliver every message published on a topic matching ``pattern`` to ``handler``.

        Handlers run by ``priority`` (lower first), then in subscription order:
        the kernel's clock goes first, then strategies, then everything else,
        so a simulated venue's own work on a book is not in the strategies' path.
        """
        _validate_pattern(pattern)
        index = len(self._subscriptions)
        while index and self._priorities[index - 1] > priority:
            index -= 1
        self._subscriptions.insert(index, (pattern, handler))
        self._priorities.insert(index, priority)
        self._resolved.clear()

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        """Remove one subscription made with the same pattern and handler."""
        try:
            index = self._subscriptions.index((pattern, handler))
        except ValueError:
            raise ValueError(f"{handler!r} is not subscribed to {pattern!r}") from None
        del self._subscriptions[index]
        del self._priorities[index]
        self._resolved.clear()

    def handlers_for(self, topic: str) -> tuple[Handler, ...]:
        """Return the handlers a message on ``topic`` goes to, in subscription order."""
        handlers = self._resolved.get(topic)
        if handlers is None:
            handlers = tuple(
                handler for pattern, handler in self._subscriptions if topic_matches(pattern, topic)
            )
            self._resolved[topic] = handlers
        return handlers

    def has_subscribers(self, topic: str) -> bool:
        """Return whether publishing on ``topic`` would reach anyone."""
        return bool(self.handlers_for(topic))

    def publish(self, topic: str, message: Any) -> None:
        """Deliver ``message`` synchronously to every handler subscribed to ``topic``."""
        self.published += 1
        handlers = self._resolved.get(topic)
        if handlers is None:
            handlers = self.handlers_for(topic)
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                self.handler_errors += 1
                log.exception("bus handler %r failed on topic %s", handler, topic)

    # -- endpoints -----------------------------------------------------------

    def register_endpoint(self, name: str, handler: Handler) -> None:
        """Make ``handler`` the single receiver of commands sent to ``name``."""
        if name in self._endpoints:
            raise ValueError(f"endpoint {name!r} is already registered")
        self._endpoints[name] = handler

    def deregister_endpoint(self, name: str) -> None:
        """Remove the endpoint ``name``."""
        self._endpoints.pop(name, None)

    def send(self, endpoint: str, command: Any) -> None:
        """Deliver ``command`` to the endpoint's handler; its exceptions propagate to the sender."""
        handler = self._endpoints.get(endpoint)
        if handler is None:
            raise UnknownEndpointError(f"no endpoint named {endpoint!r}")
        handler(command)

    @property
    def endpoints(self) -> list[str]:
        """Return the registered endpoint names."""
        return sorted(self._endpoints)
