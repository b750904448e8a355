"""What a served model answers: class probabilities for one instrument after one event.

The kernel's serving engine publishes a :class:`Prediction` on
``model.prediction.<venue>.<symbol>`` (:func:`prediction_topic`) for every
event it scores with the version acting for that instrument (production, or a
canary); shadow answers are recorded as metrics and never published.
Strategies receive them in ``on_prediction``.
"""

from __future__ import annotations

import msgspec

__all__ = ["Prediction", "prediction_topic"]


def prediction_topic(venue: str, symbol: str) -> str:
    """Return the bus topic of the predictions for one instrument."""
    return f"model.prediction.{venue}.{symbol}"


class Prediction(msgspec.Struct, frozen=True):
    """One answer of a model version: ``probabilities`` in the order of ``classes``.

    ``event`` counts the instrument's events the engine has seen (the one
    scored is the ``event``-th); ``ts_recv`` is that event's receive time.
    """

    model: str
    version: str
    venue: str
    symbol: str
    ts_recv: int
    event: int
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    predicted: int

    @property
    def label(self) -> str:
        """Return the predicted class's name."""
        return self.classes[self.predicted]

    @property
    def confidence(self) -> float:
        """Return the predicted class's probability."""
        return self.probabilities[self.predicted]
