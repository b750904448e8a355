"""Model signal: trade in the direction a served model predicts, when it is confident enough.

The kernel's serving engine publishes a
:class:`~tradekernel_sdk.predictions.Prediction` for the instrument after
each book event it scores; the strategy receives it in ``on_prediction``.
When the predicted class is ``up_class`` with a probability of at least
``min_confidence_bps`` (in basis points of 1), it buys ``quantity`` while its
position is below ``max_position``; on ``down_class`` it sells, down to flat
(or to ``-max_position`` with ``allow_short``). Any other class, or a weaker
answer, sends nothing. Orders go through the kernel's risk engine and
journal like every strategy's, one at a time, at least ``cooldown_ns`` of
market time apart; each carries the answering version in its tag
(``model:<name>:<version>``), so an order can be traced to the version that
asked for it.
"""

from __future__ import annotations

from tradekernel_sdk import Strategy, StrategyContext
from tradekernel_sdk.predictions import Prediction
from tradekernel_strategies.common import BPS, TakerConfig, TakerStrategy

__all__ = ["ModelSignal"]


class ModelSignal(TakerStrategy):
    """Buy on a confident "up", sell on a confident "down"."""

    class Config(TakerConfig, frozen=True, kw_only=True):
        """Model-signal parameters; see :class:`~tradekernel_strategies.common.TakerConfig`."""

        model: str = ""
        """Act only on this model's answers (empty: any model's)."""
        min_confidence_bps: int = 5_000
        """The predicted class's probability must reach this, in basis points of 1."""
        up_class: str = "up"
        down_class: str = "down"

        def __post_init__(self) -> None:
            """Refuse a threshold outside a probability."""
            super().__post_init__()
            if not 0 <= self.min_confidence_bps <= BPS:
                raise ValueError(
                    f"min_confidence_bps must be in [0, {BPS}], got {self.min_confidence_bps}"
                )

    config: Config

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Start with no answer seen."""
        super().__init__(context, config)
        self.predictions = 0
        """Answers received for the configured instrument and model."""
        self.signal = 0
        """+1 on the last confident "up", -1 on a confident "down", else 0."""

    def on_prediction(self, prediction: Prediction) -> None:
        """Step the position towards a confident prediction's side."""
        config = self.config
        if not self.is_mine(prediction.venue, prediction.symbol):
            return
        if config.model and prediction.model != config.model:
            return
        self.predictions += 1
        confident = prediction.confidence * BPS >= config.min_confidence_bps
        label = prediction.label
        self.signal = (
            (1 if label == config.up_class else -1 if label == config.down_class else 0)
            if confident
            else 0
        )
        book = self.context.book(config.venue, config.symbol)
        if not self.book_valid or book is None:
            return
        now = self.market_time(prediction.ts_recv)
        self.step(self.signal, book, now, f"model:{prediction.model}:{prediction.version}")
