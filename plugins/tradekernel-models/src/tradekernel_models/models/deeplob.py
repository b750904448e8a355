"""A DeepLOB-style CNN + LSTM with a direction head and a realised-volatility head.

The architecture follows Zhang, Zohren & Roberts, "DeepLOB: Deep Convolutional
Neural Networks for Limit Order Books" (IEEE TSP 2019), on inputs
``[batch, window, 4 * levels]`` in the column order ask price, ask size, bid
price, bid size for each level:

1. a (1, 2) convolution with stride 2 joins each price with its size, then two
   (4, 1) convolutions over time;
2. a second (1, 2) stride-2 convolution joins the ask and the bid of each
   level, then two (4, 1) convolutions;
3. a (1, levels) convolution joins all levels, then two (4, 1) convolutions;
4. an inception module: 1x1 then (3, 1); 1x1 then (5, 1); (3, 1) max-pooling
   then 1x1, concatenated;
5. an LSTM over time; its last hidden state feeds the heads.

Activations are leaky ReLUs (slope 0.01) and the (4, 1) convolutions pad as
Keras' ``same`` does (one row before, two after), as in the paper. Beyond
the paper, a second head regresses the next interval's realised volatility,
standardised with training statistics; :class:`ExportWrapper` turns the two
heads into what is exported and served: class probabilities and volatility in
basis points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["DeepLOB", "DeepLOBConfig", "ExportWrapper"]

_SLOPE = 0.01


@dataclass(frozen=True)
class DeepLOBConfig:
    """Sizes of the network; the paper's are the defaults."""

    levels: int = 10
    conv_channels: int = 16
    inception_channels: int = 32
    lstm_hidden: int = 64
    classes: int = 3


def _time_convolutions(channels: int) -> list[nn.Module]:
    """Return two (4, 1) convolutions over time with Keras-``same`` padding."""
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            nn.ZeroPad2d((0, 0, 1, 2)),
            nn.Conv2d(channels, channels, kernel_size=(4, 1)),
            nn.LeakyReLU(_SLOPE),
        ]
    return layers


class _Inception(nn.Module):
    """Three parallel branches over time, concatenated on channels."""

    def __init__(self, channels_in: int, channels: int) -> None:
        super().__init__()
        self.short = nn.Sequential(
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, kernel_size=(3, 1), padding=(1, 0)),
            nn.LeakyReLU(_SLOPE),
        )
        self.long = nn.Sequential(
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, kernel_size=(5, 1), padding=(2, 0)),
            nn.LeakyReLU(_SLOPE),
        )
        self.pooled = nn.Sequential(
            nn.MaxPool2d(kernel_size=(3, 1), stride=1, padding=(1, 0)),
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.cat((self.short(inputs), self.long(inputs), self.pooled(inputs)), dim=1)


class DeepLOB(nn.Module):
    """Normalised book windows → (direction logits, standardised volatility)."""

    def __init__(self, config: DeepLOBConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.conv_channels
        self.convolutions = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=(1, 2), stride=(1, 2)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
            nn.Conv2d(channels, channels, kernel_size=(1, 2), stride=(1, 2)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
            nn.Conv2d(channels, channels, kernel_size=(1, config.levels)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
        )
        self.inception = _Inception(channels, config.inception_channels)
        self.lstm = nn.LSTM(3 * config.inception_channels, config.lstm_hidden, batch_first=True)
        self.direction = nn.Linear(config.lstm_hidden, config.classes)
        self.volatility = nn.Linear(config.lstm_hidden, 1)

    def forward(self, book: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``[batch, window, 4 * levels]`` to logits ``[batch, 3]`` and ``[batch, 1]``."""
        features = self.inception(self.convolutions(book.unsqueeze(1)))  # [B, C, T, 1]
        sequence = features.squeeze(3).transpose(1, 2)  # [B, T, C]
        outputs, _ = self.lstm(sequence)
        last = outputs[:, -1, :]
        return self.direction(last), self.volatility(last)


class ExportWrapper(nn.Module):
    """What is exported: class probabilities and realised volatility in basis points."""

    def __init__(self, model: DeepLOB, volatility_mean: float, volatility_std: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("volatility_mean", torch.tensor(volatility_mean))
        self.register_buffer("volatility_std", torch.tensor(volatility_std))

    def forward(self, book: Tensor) -> tuple[Tensor, Tensor]:
        logits, standardised = self.model(book)
        volatility = torch.clamp(standardised * self.volatility_std + self.volatility_mean, min=0.0)
        return torch.softmax(logits, dim=1), volatility
