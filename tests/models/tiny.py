"""The tiny DeepLOB the training tests train: the real pipeline on the bundled slice, in seconds."""

from __future__ import annotations

from pathlib import Path

from models.reference import BUNDLED_BTC

__all__ = ["tiny_config"]


def tiny_config(
    name: str = "tiny",
    *,
    files: tuple[Path, ...] = (BUNDLED_BTC,),
    venue: str = "binance",
    symbol: str = "BTCUSDT",
    window: int = 20,
    horizon: int = 10,
    epochs: int = 2,
    patience: int = 1,
) -> str:
    """Return a training configuration (TOML) of a 4/4/8-channel network over ``window`` events.

    Two walk-forward folds, one torch thread, no progress bar; the repository
    is ``repository`` beside the configuration file.
    """
    listed = ", ".join(f'"{path}"' for path in files)
    return f"""
name = "{name}"
repository = "repository"

[data]
files = [{listed}]
venue = "{venue}"
symbol = "{symbol}"

[features]
window = {window}

[label]
horizon = {horizon}
threshold = 0.0

[model]
conv_channels = 4
inception_channels = 4
lstm_hidden = 8

[splits]
folds = 2

[training]
epochs = {epochs}
patience = {patience}
batch_size = 64
threads = 1
progress = false
"""
