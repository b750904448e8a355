"""Training (torch): install the ``train`` extra, then run ``tradekernel train --config FILE``."""
