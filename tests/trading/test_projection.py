"""The SQLite projection answers queries with exactly what the order manager knows."""

from __future__ import annotations

from pathlib import Path

from test_trading_path import Config, FlipFlop
from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.journal import replay
from kernel.orders.projection import SqliteProjection, journaled_fills


def _tables(projection: SqliteProjection) -> tuple[list[tuple[object, ...]], ...]:
    return (
        projection.query("SELECT * FROM orders ORDER BY client_order_id"),
        projection.query("SELECT * FROM fills ORDER BY venue, CAST(fill_id AS INTEGER)"),
        projection.query("SELECT * FROM positions ORDER BY venue, symbol"),
    )


def test_projection_follows_orders_fills_and_positions(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    projection = SqliteProjection(tmp_path / "orders.sqlite", stack.orders, flush_every=16)
    projection.rebuild()
    projection.follow(stack.bus)
    stack.add("flip", FlipFlop, Config())
    stack.run(btc_frames)

    orders, fills, positions = _tables(projection)
    assert len(orders) == len(stack.orders.orders)
    for row in orders:
        order = stack.orders.orders[str(row[0])]
        assert row[8] == order.status.value
        assert row[9] == order.filled_quantity
        assert int(str(row[10])) == order.filled_notional
    assert len(fills) == stack.paper.fills
    signed = sum(int(str(row[6])) * (1 if row[4] == "buy" else -1) for row in fills)
    assert positions == [
        (
            "paper",
            "BTCUSDT",
            signed,
            stack.orders.portfolio.positions[("paper", "BTCUSDT")].instrument.size_text(signed),
            str(stack.orders.portfolio.positions[("paper", "BTCUSDT")].realised),
            16,
            stack.orders.portfolio.positions[("paper", "BTCUSDT")].fees,
        )
    ]
    assert signed == stack.orders.portfolio.quantity("paper", "BTCUSDT")
    projection.close(stack.bus)
    stack.close()

    # Rebuilt from the journal alone, the projection is the same.
    again = TradingStack(tmp_path / "journal.tkj")
    rebuilt = SqliteProjection(tmp_path / "rebuilt.sqlite", again.orders)
    rebuilt.rebuild(
        journaled_fills(
            (record.kind, record.payload) for record in replay(tmp_path / "journal.tkj")
        )
    )
    reopened = SqliteProjection(tmp_path / "orders.sqlite", again.orders)
    assert _tables(rebuilt) == _tables(reopened)
    rebuilt.close()
    reopened.close()
    again.close()
