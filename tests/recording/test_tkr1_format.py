"""The TKR1 recording format: round trips, appending, torn and corrupt blocks."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from kernel.adapters.base import RawFrame
from kernel.recording import (
    BLOCK_HEADER_SIZE,
    CODECS,
    FILE_HEADER_SIZE,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    merge_frames,
    open_frames,
    read_recording,
)
from kernel.recording import format as tkr1


@pytest.fixture(scope="module")
def binance_frames(bundled: Path) -> list[RawFrame]:
    """Return the bundled Binance slice, both symbols merged by receive time."""
    files = sorted((bundled / "binance_spot").glob("*.gz"))
    return list(merge_frames(*(open_frames(f) for f in files)))


def write(path: Path, frames: list[RawFrame], **options: object) -> None:
    with RecordingWriter(path, **options) as writer:  # type: ignore[arg-type]
        for frame in frames:
            writer.write(frame)


def copy_cut(src: Path, dst: Path, size: int) -> Path:
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.truncate(size)
    return dst


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_bundled_frames_round_trip_byte_exact(
    tmp_path: Path, binance_frames: list[RawFrame], codec: str
) -> None:
    path = tmp_path / "rec.tkr"
    write(path, binance_frames, codec=codec, block_bytes=256 << 10)

    reader = RecordingReader(path)
    assert list(reader) == binance_frames
    assert reader.frames == len(binance_frames) == 24_000
    assert reader.blocks > 1
    assert reader.truncated_bytes == 0
    assert {info.codec for info in reader.index()} == {codec}


def test_zstd_recording_is_much_smaller_than_the_frames(
    tmp_path: Path, binance_frames: list[RawFrame]
) -> None:
    path = tmp_path / "rec.tkr"
    write(path, binance_frames)
    payload_bytes = sum(len(f.payload) for f in binance_frames)
    assert path.stat().st_size < payload_bytes / 5


def test_file_layout_matches_the_specification(tmp_path: Path) -> None:
    frames = [RawFrame(5, b"xy", "a"), RawFrame(2**64 - 1, b"", "bb"), RawFrame(7, b"z", "a")]
    path = tmp_path / "rec.tkr"
    write(path, frames, codec="none")

    raw = b"".join(
        [
            struct.pack("<I", 2),
            struct.pack("<H", 1) + b"a",
            struct.pack("<H", 2) + b"bb",
            struct.pack("<3Q", 5, 2**64 - 1, 7),
            struct.pack("<3H", 0, 1, 0),
            struct.pack("<3I", 2, 0, 1),
            b"xyz",
        ]
    )
    head = b"TKRB" + struct.pack(
        "<BBHIIIIQQ", 0, 0, 0, 3, len(raw), len(raw), zlib.crc32(raw), 5, 7
    )
    expected = b"TKR1" + struct.pack("<HH", 1, 0) + head + struct.pack("<I", zlib.crc32(head)) + raw
    assert path.read_bytes() == expected
    assert FILE_HEADER_SIZE == 8
    assert BLOCK_HEADER_SIZE == 44


def test_sources_are_stored_once_per_block(tmp_path: Path) -> None:
    source = "wss://stream.binance.com:9443/stream"
    path = tmp_path / "rec.tkr"
    write(path, [RawFrame(i, b"{}", source) for i in range(1000)], codec="none")
    (info,) = RecordingReader(path).index()
    assert info.raw_len == 4 + 2 + len(source) + 1000 * (8 + 2 + 4 + 2)


def test_empty_writer_leaves_a_valid_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    RecordingWriter(path).close()
    reader = RecordingReader(path)
    assert list(reader) == []
    assert reader.blocks == 0
    assert reader.truncated_bytes == 0


def test_flush_makes_frames_readable_while_the_writer_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    with RecordingWriter(path) as writer:
        writer.write(RawFrame(1, b"a", "s"))
        assert list(read_recording(path)) == []
        writer.flush()
        assert list(read_recording(path)) == [RawFrame(1, b"a", "s")]
        writer.write(RawFrame(2, b"b", "s"))
    assert [f.recv_ns for f in read_recording(path)] == [1, 2]


def test_flush_fsyncs_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    with RecordingWriter(tmp_path / "a.tkr") as writer:
        writer.write(RawFrame(1, b"a", "s"))
        writer.flush()
    assert synced == []
    with RecordingWriter(tmp_path / "b.tkr", fsync=True) as writer:
        writer.write(RawFrame(1, b"a", "s"))
        writer.flush()
    assert len(synced) >= 2


def test_reopening_a_recording_appends_new_blocks(
    tmp_path: Path, binance_frames: list[RawFrame]
) -> None:
    path = tmp_path / "rec.tkr"
    first, second = binance_frames[:5000], binance_frames[5000:]
    write(path, first)
    write(path, second, codec="zlib")
    reader = RecordingReader(path)
    assert list(reader) == binance_frames
    assert {info.codec for info in reader.index()} == {"zstd", "zlib"}


def test_torn_file_header_reads_as_an_empty_torn_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    path.write_bytes(b"TKR")
    reader = RecordingReader(path)
    assert list(reader) == []
    assert reader.truncated_bytes == 3
    with pytest.raises(RecordingError):
        list(RecordingReader(path, strict=True))


def test_a_file_that_is_not_tkr1_is_refused(tmp_path: Path, bundled: Path) -> None:
    path = tmp_path / "capture.gz"
    shutil.copyfile(bundled / "okx_v5" / "OKX.ws.1.0.gz", path)
    before = path.read_bytes()
    with pytest.raises(RecordingError, match="not a TKR1"):
        list(read_recording(path))
    with pytest.raises(RecordingError, match="not a TKR1"):
        RecordingWriter(path)
    assert path.read_bytes() == before


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    path.write_bytes(b"TKR1" + struct.pack("<HH", 2, 0))
    with pytest.raises(RecordingError, match="version 2"):
        list(read_recording(path))


@pytest.fixture
def three_blocks(tmp_path: Path) -> tuple[Path, list[RawFrame]]:
    """Return a recording of three blocks of ten frames, and its frames."""
    frames = [RawFrame(i, b"frame %d " % i * 20, f"src{i % 3}") for i in range(30)]
    path = tmp_path / "three.tkr"
    with RecordingWriter(path) as writer:
        for i, frame in enumerate(frames, 1):
            writer.write(frame)
            if i % 10 == 0:
                writer.flush()
    assert len(RecordingReader(path).index()) == 3
    return path, frames


@pytest.mark.parametrize("cut_into_last", [1, 20, 43, 44, 60, -1])
def test_torn_final_block_is_ignored_and_reported(
    tmp_path: Path,
    three_blocks: tuple[Path, list[RawFrame]],
    cut_into_last: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, frames = three_blocks
    last = RecordingReader(path).index()[-1]
    size = path.stat().st_size
    cut = size + cut_into_last if cut_into_last < 0 else last.offset + cut_into_last
    torn = copy_cut(path, tmp_path / "torn.tkr", cut)

    reader = RecordingReader(torn)
    with caplog.at_level(logging.WARNING, logger="kernel.recording"):
        assert list(reader) == frames[:20]
    assert reader.blocks == 2
    assert reader.truncated_at == last.offset
    assert reader.truncated_bytes == cut - last.offset
    assert "torn final block" in caplog.text


def test_torn_final_block_raises_when_strict(
    tmp_path: Path, three_blocks: tuple[Path, list[RawFrame]]
) -> None:
    path, _ = three_blocks
    torn = copy_cut(path, tmp_path / "torn.tkr", path.stat().st_size - 5)
    with pytest.raises(RecordingError, match="torn final block"):
        list(read_recording(torn, strict=True))


def test_zero_filled_tail_after_a_crash_counts_as_torn(
    tmp_path: Path, three_blocks: tuple[Path, list[RawFrame]]
) -> None:
    path, frames = three_blocks
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(4096))
    reader = RecordingReader(path)
    assert list(reader) == frames
    assert reader.truncated_at == size
    assert reader.truncated_bytes == 4096


def test_corrupt_final_block_payload_counts_as_torn(
    tmp_path: Path, three_blocks: tuple[Path, list[RawFrame]]
) -> None:
    path, frames = three_blocks
    last = RecordingReader(path).index()[-1]
    flip_byte(path, path.stat().st_size - 3)
    reader = RecordingReader(path)
    assert list(reader) == frames[:20]
    assert reader.truncated_at == last.offset
    assert reader.truncated_bytes == BLOCK_HEADER_SIZE + last.comp_len


@pytest.mark.parametrize("where", ["payload", "header"])
def test_corrupt_middle_block_raises_with_its_offset(
    three_blocks: tuple[Path, list[RawFrame]], where: str
) -> None:
    path, frames = three_blocks
    middle = RecordingReader(path).index()[1]
    flip_byte(path, middle.offset + (BLOCK_HEADER_SIZE + 2 if where == "payload" else 10))

    reader = RecordingReader(path)
    got: list[RawFrame] = []
    with pytest.raises(RecordingError, match=f"offset {middle.offset}"):
        got.extend(reader)
    assert got == frames[:10]


def test_appending_after_a_torn_block_discards_it(
    tmp_path: Path, three_blocks: tuple[Path, list[RawFrame]], caplog: pytest.LogCaptureFixture
) -> None:
    path, frames = three_blocks
    last = RecordingReader(path).index()[-1]
    os.truncate(path, last.offset + 50)

    extra = [RawFrame(100 + i, b"new", "late") for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="kernel.recording"):
        writer = RecordingWriter(path)
    assert writer.discarded_bytes == 50
    with writer:
        for frame in extra:
            writer.write(frame)

    reader = RecordingReader(path, strict=True)
    assert list(reader) == frames[:20] + extra
    assert "discarding a torn final block" in caplog.text


def test_appending_after_a_corrupt_final_payload_discards_it(
    three_blocks: tuple[Path, list[RawFrame]],
) -> None:
    path, frames = three_blocks
    flip_byte(path, path.stat().st_size - 1)
    write(path, [RawFrame(99, b"x", "s")])
    assert list(read_recording(path, strict=True)) == [*frames[:20], RawFrame(99, b"x", "s")]


def test_appending_to_a_torn_file_header_starts_the_file_afresh(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    path.write_bytes(b"TK")
    write(path, [RawFrame(1, b"a", "s")])
    assert list(read_recording(path, strict=True)) == [RawFrame(1, b"a", "s")]


def test_writer_refuses_to_append_to_a_corrupt_recording(
    three_blocks: tuple[Path, list[RawFrame]],
) -> None:
    path, _ = three_blocks
    flip_byte(path, RecordingReader(path).index()[1].offset + 4)
    before = path.read_bytes()
    with pytest.raises(RecordingError, match="refusing to append"):
        RecordingWriter(path)
    assert path.read_bytes() == before


def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    with RecordingWriter(path), pytest.raises(RecordingError, match="already open"):
        RecordingWriter(path)
    RecordingWriter(path).close()


def test_index_reports_each_block_header(three_blocks: tuple[Path, list[RawFrame]]) -> None:
    path, _ = three_blocks
    infos = RecordingReader(path).index()
    assert [(i.records, i.first_ns, i.last_ns) for i in infos] == [
        (10, 0, 9),
        (10, 10, 19),
        (10, 20, 29),
    ]
    assert infos[0].offset == FILE_HEADER_SIZE
    assert infos[1].offset == infos[0].offset + BLOCK_HEADER_SIZE + infos[0].comp_len


def test_a_block_ends_when_its_source_table_is_full(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    frames = [RawFrame(i, b"", f"s{i}") for i in range(70_000)]
    write(path, frames, block_bytes=1 << 30)
    reader = RecordingReader(path)
    assert list(reader) == frames
    assert [i.records for i in reader.index()] == [65_535, 70_000 - 65_535]


def test_block_bytes_bounds_the_block_size(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    write(path, [RawFrame(i, bytes(1000), "s") for i in range(100)], block_bytes=10_000)
    assert all(info.raw_len < 11_100 for info in RecordingReader(path).index())


def test_writer_accepts_bytes_like_payloads(tmp_path: Path) -> None:
    path = tmp_path / "rec.tkr"
    frames: list[RawFrame] = [
        RawFrame(1, bytearray(b"ab"), "s"),  # type: ignore[arg-type]
        RawFrame(2, memoryview(b"cd"), "s"),  # type: ignore[arg-type]
    ]
    write(path, frames)
    assert [f.payload for f in read_recording(path)] == [b"ab", b"cd"]


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (RawFrame(-1, b"", ""), ValueError),
        (RawFrame(2**64, b"", ""), ValueError),
        (RawFrame(1, "text", ""), TypeError),  # type: ignore[arg-type]
        (RawFrame(1.5, b"", ""), TypeError),  # type: ignore[arg-type]
        (RawFrame(1, b"", None), TypeError),  # type: ignore[arg-type]
        (RawFrame(1, b"", "x" * 70_000), ValueError),
    ],
)
def test_writer_rejects_frames_the_format_cannot_hold(
    tmp_path: Path, frame: RawFrame, error: type[Exception]
) -> None:
    with RecordingWriter(tmp_path / "rec.tkr") as writer:
        writer.write(RawFrame(1, b"ok", "s"))
        with pytest.raises(error):
            writer.write(frame)
    assert list(read_recording(tmp_path / "rec.tkr")) == [RawFrame(1, b"ok", "s")]


def test_a_failed_block_write_leaves_no_partial_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.tkr"
    first, second = RawFrame(1, b"a", "s"), RawFrame(2, b"b", "s")
    writer = RecordingWriter(path)
    writer.write(first)

    def disk_full(f: object, data: bytes) -> None:
        tkr1.RecordingWriter._write_all(f, data[:10])  # type: ignore[arg-type]
        raise OSError("no space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(writer, "_write_all", disk_full)
        with pytest.raises(OSError, match="no space"):
            writer.flush()
    writer.write(second)
    writer.close()
    assert list(read_recording(path, strict=True)) == [first, second]


def test_writer_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="codec"):
        RecordingWriter(tmp_path / "a.tkr", codec="lz4")
    with pytest.raises(ValueError, match="block_bytes"):
        RecordingWriter(tmp_path / "b.tkr", block_bytes=0)


def test_closed_writer_refuses_flush_and_closes_twice_quietly(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec.tkr")
    writer.close()
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.flush()


def test_zlib_and_stored_blocks_read_without_zstandard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [RawFrame(i, b"payload", "s") for i in range(10)]
    write(tmp_path / "zstd.tkr", frames, codec="zstd")
    write(tmp_path / "zlib.tkr", frames, codec="zlib")
    write(tmp_path / "none.tkr", frames, codec="none")
    monkeypatch.setattr(tkr1, "zstandard", None)

    assert list(read_recording(tmp_path / "zlib.tkr")) == frames
    assert list(read_recording(tmp_path / "none.tkr")) == frames
    with pytest.raises(RecordingError, match="zstandard"):
        list(read_recording(tmp_path / "zstd.tkr"))
    with pytest.raises(RecordingError, match="zstandard"):
        RecordingWriter(tmp_path / "new.tkr")
