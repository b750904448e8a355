"""The order state machine accepts only the edges a venue can produce."""

from __future__ import annotations

import pytest

from kernel.orders import TERMINAL, InvalidTransitionError, Order, OrderStatus
from tradekernel_sdk.orders import OrderSide, OrderType, TimeInForce


def _order(quantity: int = 10) -> Order:
    return Order(
        client_order_id="c-1",
        venue="paper",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        price=100,
        time_in_force=TimeInForce.GTC,
    )


def test_happy_path_new_partial_filled() -> None:
    order = _order()
    order.transition(OrderStatus.NEW, 1)
    order.apply_fill(4, 100, 1, 2)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.leaves_quantity == 6
    order.apply_fill(6, 99, 1, 3)
    assert order.status is OrderStatus.FILLED
    assert order.filled_notional == 4 * 100 + 6 * 99
    assert order.fees == 2
    assert order.leaves_quantity == 0


@pytest.mark.parametrize("terminal", sorted(TERMINAL, key=lambda status: status.value))
def test_terminal_orders_refuse_every_transition(terminal: OrderStatus) -> None:
    order = _order()
    order.status = terminal
    for target in OrderStatus:
        with pytest.raises(InvalidTransitionError):
            order.transition(target, 1)
    assert order.status is terminal


def test_overfill_is_refused_and_changes_nothing() -> None:
    order = _order(5)
    order.transition(OrderStatus.NEW, 1)
    with pytest.raises(InvalidTransitionError, match="exceeds"):
        order.apply_fill(6, 100, 0, 2)
    assert order.filled_quantity == 0
    assert order.status is OrderStatus.NEW


def test_fill_while_cancel_is_pending_stays_pending_until_the_answer() -> None:
    order = _order()
    order.transition(OrderStatus.NEW, 1)
    order.transition(OrderStatus.PENDING_CANCEL, 2)
    order.apply_fill(3, 100, 0, 3)
    assert order.status is OrderStatus.PENDING_CANCEL
    order.cancel_refused(4)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order.transition(OrderStatus.CANCELED, 5)
    assert order.leaves_quantity == 0


def test_rejected_cannot_become_filled() -> None:
    order = _order()
    order.transition(OrderStatus.REJECTED, 1)
    with pytest.raises(InvalidTransitionError, match="rejected -> partially_filled"):
        order.apply_fill(1, 100, 0, 2)
