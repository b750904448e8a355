"""In-process bus: hierarchical topics for data and events, named endpoints for commands."""

from kernel.bus.bus import (
    CLOCK_PRIORITY,
    DEFAULT_PRIORITY,
    STRATEGY_PRIORITY,
    Bus,
    Handler,
    UnknownEndpointError,
    topic_matches,
)

__all__ = [
    "CLOCK_PRIORITY",
    "DEFAULT_PRIORITY",
    "STRATEGY_PRIORITY",
    "Bus",
    "Handler",
    "UnknownEndpointError",
    "topic_matches",
]
