"""What the retraining tests share: a tiny trained version and a folder of recent recordings."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

from kernel.recording import RecordingWriter, open_frames
from models.tiny import tiny_config

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
BTC = BUNDLED / "btcusdt_20240808_head12000.gz"
ETH = BUNDLED / "ethusdt_20240808_head12000.gz"

TORCH_MISSING = (
    "retraining runs tradekernel train, which needs the train extra (torch): "
    "pip install -e 'plugins/tradekernel-models[train]'"
)

TINY_CONFIG = tiny_config(files=(BTC,))


def train_tiny(folder: Path) -> Path:
    """Train ``tiny:1`` with ``tradekernel train`` into ``folder/repository``; return that."""
    from kernel.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny.toml"
    config.write_text(TINY_CONFIG)
    with redirect_stdout(io.StringIO()) as out:
        status = main(["train", "--config", str(config)])
    assert status == 0, out.getvalue()
    return folder / "repository"


def write_recordings(folder: Path) -> list[Path]:
    """Write a recording folder as ``tradekernel record`` leaves it; return its two newest files.

    The bundled BTCUSDT frames, cut in two TKR1 files (the same market data
    as the bundled file, other bytes), and an older ETHUSDT file that the
    newest two leave out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    older = folder / "binance-20240808T235000Z-00000.tkr"
    with RecordingWriter(older) as writer:
        for frame in open_frames(ETH):
            writer.write(frame)
    frames = list(open_frames(BTC))
    half = len(frames) // 2
    newest = [
        folder / "binance-20240808T235400Z-00000.tkr",
        folder / "binance-20240808T235400Z-00001.tkr",
    ]
    for path, part in zip(newest, (frames[:half], frames[half:]), strict=True):
        with RecordingWriter(path) as writer:
            for frame in part:
                writer.write(frame)
    for age, path in enumerate([older, *newest]):
        stamp = 1_700_000_000 + 60 * age
        os.utime(path, (stamp, stamp))
    return newest
