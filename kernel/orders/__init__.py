"""Order state: the state machine, and the manager that journals and routes orders."""

from kernel.orders.manager import OrderManager
from kernel.orders.model import TERMINAL, TRANSITIONS, InvalidTransitionError, Order, OrderStatus

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "InvalidTransitionError",
    "Order",
    "OrderManager",
    "OrderStatus",
]
