"""Property-based tests of the TKR1 format and timestamp conversion."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.adapters.base import RawFrame
from kernel.recording import CODECS, RecordingReader, RecordingWriter, decimal_seconds_to_ns

frames_strategy = st.lists(
    st.builds(
        RawFrame,
        st.integers(min_value=0, max_value=2**64 - 1),
        st.binary(max_size=300),
        st.sampled_from(["", "wss://stream.binance.com:9443/stream", "rest:depth:BTCUSDT"])
        | st.text(max_size=20),
    ),
    max_size=60,
)


def write_in_batches(path: Path, frames: list[RawFrame], codec: str, block_bytes: int) -> None:
    with RecordingWriter(path, codec=codec, block_bytes=block_bytes) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame)
            if i % 7 == 6:
                writer.flush()


@settings(max_examples=150, deadline=None)
@given(
    frames=frames_strategy,
    codec=st.sampled_from(sorted(CODECS)),
    block_bytes=st.integers(min_value=1, max_value=4096),
)
def test_any_frames_round_trip(frames: list[RawFrame], codec: str, block_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.tkr"
        write_in_batches(path, frames, codec, block_bytes)
        reader = RecordingReader(path, strict=True)
        assert list(reader) == frames
        assert reader.frames == len(frames)


@settings(max_examples=150, deadline=None)
@given(frames=frames_strategy, data=st.data())
def test_a_cut_anywhere_yields_exactly_the_complete_blocks(
    frames: list[RawFrame], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.tkr"
        write_in_batches(path, frames, "zstd", 512)
        size = path.stat().st_size
        cut = data.draw(st.integers(min_value=0, max_value=size), label="cut")
        with open(path, "r+b") as f:
            f.truncate(cut)

        blocks = RecordingReader(path).index()
        complete = sum(b.records for b in blocks if b.offset + 44 + b.comp_len <= cut)
        reader = RecordingReader(path)
        assert list(reader) == frames[:complete]
        end = blocks[-1].offset + 44 + blocks[-1].comp_len if blocks else (8 if cut >= 8 else 0)
        assert reader.truncated_bytes == cut - end


@given(whole=st.integers(min_value=0, max_value=10**12), frac=st.text("0123456789", max_size=12))
def test_decimal_seconds_match_exact_decimal_arithmetic(whole: int, frac: str) -> None:
    text = f"{whole}.{frac}" if frac else str(whole)
    assert decimal_seconds_to_ns(text) == int(Decimal(text) * 10**9)
