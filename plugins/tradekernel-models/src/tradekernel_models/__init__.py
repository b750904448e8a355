"""tradekernel-models: streaming market features and the predictive models built on them.

The plug-in module is :mod:`tradekernel_models.plugin` (entry point ``models``
in the ``tradekernel`` group). Importing this package never imports torch.
"""

from __future__ import annotations

__version__ = "0.1.0"
