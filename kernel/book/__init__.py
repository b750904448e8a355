"""Order books: price-level state on fixed-point integers."""

from kernel.book.l2 import L2Book

__all__ = ["L2Book"]
