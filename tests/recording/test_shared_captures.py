"""The full shared Binance captures: every line read, and a lossless TKR1 round trip."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from kernel.recording import (
    HftbacktestReader,
    RecordingReader,
    RecordingWriter,
    merge_frames,
    open_frames,
)

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def binance_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "orderbook").glob("binance_*/*.gz"))
    if len(files) != 6:
        pytest.skip(f"expected six Binance captures under {shared_data}, found {len(files)}")
    return files


def test_every_line_of_the_shared_binance_captures_is_a_frame(binance_files: list[Path]) -> None:
    for path in binance_files:
        lines = gzip.decompress(path.read_bytes()).count(b"\n")
        reader = HftbacktestReader(path)
        assert sum(1 for _ in reader) == lines == reader.frames
        assert reader.malformed_lines == reader.skipped_lines == 0


def test_shared_binance_captures_round_trip_through_tkr1(
    tmp_path: Path, binance_files: list[Path]
) -> None:
    frames = list(merge_frames(*(open_frames(path) for path in binance_files)))
    path = tmp_path / "binance.tkr"
    with RecordingWriter(path) as writer:
        for frame in frames:
            writer.write(frame)

    reader = RecordingReader(path, strict=True)
    assert list(reader) == frames
    assert len(frames) > 300_000
    # Interleaved symbols at the default zstd level 3 come to about 1.13x the
    # gzip originals (which compress each symbol alone); level 7 matches them.
    assert path.stat().st_size < 1.2 * sum(p.stat().st_size for p in binance_files)
