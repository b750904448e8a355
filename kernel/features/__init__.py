"""Streaming features in the kernel: the engine, recorded event sequences, and drift monitoring.

* :class:`FeatureEngine` subscribes to the bus and keeps each instrument's
  features current, one O(1) update per event, with the latest vector for
  consumers and a histogram of update cost.
* :func:`recorded_events` replays captures through a venue's feed and returns
  the events the kernel would publish, the input of training and of
  :func:`tradekernel_sdk.features.compute_batch`.
* :mod:`kernel.features.drift`: population stability index and
  Kolmogorov–Smirnov statistics of live values against a training reference.
"""

from __future__ import annotations

from kernel.features.engine import FeatureEngine, FeatureVector
from kernel.features.events import recorded_events

__all__ = ["FeatureEngine", "FeatureVector", "recorded_events"]
