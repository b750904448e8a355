"""Positions and PnL, exact to the last unit."""

from kernel.portfolio.position import (
    MONEY_PRECISION,
    Portfolio,
    PortfolioSnapshot,
    Position,
    to_money,
)

__all__ = ["MONEY_PRECISION", "Portfolio", "PortfolioSnapshot", "Position", "to_money"]
