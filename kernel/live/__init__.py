"""Live venue connectivity: reconnecting websocket sessions and the rules that pace them.

The feeds in :mod:`kernel.adapters` turn frames into verified books whether the
frames come from a recording or a socket. This package owns the socket side:
a :class:`~kernel.live.session.WebSocketSession` connects, subscribes, watches
for silence, and reconnects with :class:`~kernel.live.backoff.Backoff` until a
:class:`~kernel.live.circuit.CircuitBreaker` says the venue is down; REST calls
are paced by a :class:`~kernel.live.weights.WeightLimiter` that follows the
venue's documented request weights.
"""

from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker, CircuitState
from kernel.live.session import SessionStats, WebSocketSession
from kernel.live.weights import WeightLimiter

__all__ = [
    "Backoff",
    "CircuitBreaker",
    "CircuitState",
    "SessionStats",
    "WebSocketSession",
    "WeightLimiter",
]
