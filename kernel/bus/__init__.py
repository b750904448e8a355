"""In-process bus: hierarchical topics for data and events, named endpoints for commands."""

from kernel.bus.bus import Bus, Handler, UnknownEndpointError, topic_matches

__all__ = ["Bus", "Handler", "UnknownEndpointError", "topic_matches"]
