"""Readers for existing capture formats, format detection and merging."""

from __future__ import annotations

import base64
import gzip
import logging
from pathlib import Path

import pytest
import zstandard

from kernel.adapters.base import RawFrame
from kernel.recording import (
    CryptofeedJsonlReader,
    CryptofeedTextReader,
    HftbacktestReader,
    RecordingError,
    RecordingWriter,
    decimal_seconds_to_ns,
    detect_format,
    merge_frames,
    open_frames,
    open_reader,
)

BINANCE = "binance_spot/btcusdt_20240808_head12000.gz"
OKX_WS = "okx_v5/OKX.ws.1.0.gz"
OKX_REST = "okx_v5/OKX.0.gz"
JSONL = "cryptofeed_v3_huobi.jsonl"


def gzip_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).split(b"\n")[:-1]


def write_gz(path: Path, text: bytes) -> Path:
    path.write_bytes(gzip.compress(text))
    return path


# hftbacktest


def test_hftbacktest_reader_yields_every_line_of_the_bundled_binance_slice(bundled: Path) -> None:
    path = bundled / BINANCE
    lines = gzip_lines(path)
    reader = HftbacktestReader(path)
    frames = list(reader)

    assert len(frames) == len(lines) == reader.lines == reader.frames == 12_000
    assert reader.malformed_lines == reader.skipped_lines == 0
    for frame, line in zip(frames, lines, strict=True):
        ts, payload = line.split(b" ", 1)
        assert frame == RawFrame(int(ts), payload, str(path))
    assert frames[0].recv_ns == 1723161253937085768


def test_hftbacktest_source_is_the_path_as_given(bundled: Path) -> None:
    frame = next(iter(HftbacktestReader(str(bundled / BINANCE))))
    assert frame.source == str(bundled / BINANCE)


def test_malformed_lines_are_counted_and_reading_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_gz(
        tmp_path / "capture.gz",
        b"1 {}\n"
        b"12x4 {}\n"  # bad timestamp
        b"-5 {}\n"  # negative timestamp
        b"nospace\n"  # no separator
        b"7 \n"  # no payload
        b"\n"  # blank: skipped, not malformed
        b'2 {"a": 1}\n',
    )
    reader = HftbacktestReader(path)
    with caplog.at_level(logging.WARNING, logger="kernel.recording"):
        frames = list(reader)

    assert frames == [RawFrame(1, b"{}", str(path)), RawFrame(2, b'{"a": 1}', str(path))]
    assert (reader.lines, reader.frames, reader.skipped_lines, reader.malformed_lines) == (
        7,
        2,
        1,
        4,
    )
    for lineno in (2, 3, 4, 5):
        assert f"{path}:{lineno}: malformed line" in caplog.text


def test_malformed_line_warnings_are_capped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "capture.txt"
    path.write_bytes(b"bad\n" * 100 + b"1 {}\n")
    reader = HftbacktestReader(path)
    with caplog.at_level(logging.WARNING, logger="kernel.recording"):
        assert len(list(reader)) == 1
    assert reader.malformed_lines == 100
    assert len(caplog.records) < 30
    assert "100 malformed lines" in caplog.text


def test_crlf_line_ends_and_a_missing_final_newline_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_bytes(b"1 {}\r\n2 {}")
    assert [f.payload for f in HftbacktestReader(path)] == [b"{}", b"{}"]


def test_a_gzip_capture_cut_short_yields_what_is_there(
    tmp_path: Path, bundled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = (bundled / BINANCE).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    reader = HftbacktestReader(path)
    with caplog.at_level(logging.WARNING, logger="kernel.recording"):
        frames = list(reader)
    assert 1000 < len(frames) < 12_000
    whole = [f._replace(source=str(path)) for f in HftbacktestReader(bundled / BINANCE)]
    assert frames == whole[: len(frames)]
    assert reader.truncated
    assert reader.malformed_lines == 1  # the line the cut went through
    assert reader.lines == reader.frames + 1
    assert "ends early" in caplog.text
    assert "cut short" in caplog.text


def test_corrupt_gzip_data_raises(tmp_path: Path, bundled: Path) -> None:
    data = bytearray((bundled / BINANCE).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="corrupt compressed data"):
        list(HftbacktestReader(path))


def test_zstd_compressed_captures_are_read(tmp_path: Path, bundled: Path) -> None:
    text = gzip.decompress((bundled / BINANCE).read_bytes())
    compressed = zstandard.ZstdCompressor().compress(text)
    path = tmp_path / "capture.zst"
    path.write_bytes(compressed)
    assert list(open_frames(path)) == [
        f._replace(source=str(path)) for f in open_frames(bundled / BINANCE)
    ]

    cut = tmp_path / "cut.zst"
    cut.write_bytes(compressed[: len(compressed) // 2])
    reader = open_reader(cut)
    assert 0 < len(list(reader)) < 12_000
    assert isinstance(reader, HftbacktestReader)
    assert reader.truncated


# cryptofeed text capture


def test_cryptofeed_websocket_capture_skips_sent_and_connection_lines(bundled: Path) -> None:
    path = bundled / OKX_WS
    lines = gzip_lines(path)
    reader = CryptofeedTextReader(path)
    frames = list(reader)

    not_frames = [line for line in lines if b" <- " in line or b" <-> " in line]
    assert len(not_frames) == reader.skipped_lines == 4
    assert len(frames) == len(lines) - len(not_frames) == reader.frames == 410
    assert reader.malformed_lines == 0
    assert {f.source for f in frames} == {"wss://ws.okx.com:8443/ws/v5/public"}
    received = [line for line in lines if line not in not_frames]
    for frame, line in zip(frames, received, strict=True):
        assert line.endswith(b": " + frame.payload)
    assert frames[0].recv_ns == 1652459225503749100  # "1652459225.5037491"


def test_cryptofeed_timestamps_convert_to_ns_exactly(bundled: Path) -> None:
    # The README's sample line: "1652459225.708481: {...}".
    frames = [f for f in CryptofeedTextReader(bundled / OKX_WS) if f.recv_ns == 1652459225708481000]
    assert len(frames) == 1
    assert frames[0].payload.startswith(b'{"arg":{"channel":"books","instId":"BTC-USD-220527"}')


def test_cryptofeed_rest_capture_yields_rest_frames(bundled: Path) -> None:
    reader = CryptofeedTextReader(bundled / OKX_REST)
    frames = list(reader)
    assert (reader.lines, len(frames), reader.skipped_lines) == (26, 25, 1)  # 1: configuration
    assert frames[0].source == "rest:https://www.okx.com/api/v5/public/instruments?instType=SPOT"
    assert frames[0].recv_ns == 1652458996256593000
    assert all(f.payload.startswith(b'{"code":"0"') for f in frames)


def test_cryptofeed_frames_before_any_connection_line_take_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "BINANCE.ws.1.0"
    path.write_bytes(
        b"1.5: {}\n"
        b"wss://a.example/ws <-> 2.0\n"
        b"2.25: {}\n"
        b'wss://b.example/ws <- 3: {"op":"subscribe"}\n'
        b"3.125: {}\n"
    )
    frames = list(CryptofeedTextReader(path))
    assert frames == [
        RawFrame(1_500_000_000, b"{}", str(path)),
        RawFrame(2_250_000_000, b"{}", "wss://a.example/ws"),
        RawFrame(3_125_000_000, b"{}", "wss://b.example/ws"),
    ]


def test_cryptofeed_binary_frames_stored_as_bytes_literals_are_decoded(tmp_path: Path) -> None:
    binary = gzip.compress(b'{"ping":1}', mtime=0)
    path = tmp_path / "HUOBI.ws.1.0"
    path.write_bytes(b"1.0: " + repr(binary).encode() + b"\n1.5: b'\\xzz'\n")
    reader = CryptofeedTextReader(path)
    assert [f.payload for f in reader] == [binary]
    assert reader.malformed_lines == 1


def test_malformed_cryptofeed_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "OKX.ws.1.0"
    path.write_bytes(
        b"1.5: {}\n"
        b"1.5x: {}\n"  # bad timestamp
        b"1.7 {}\n"  # no ': '
        b"https://x.example/api -> abc: {}\n"  # bad REST timestamp
        b"what is this\n"
        b"2: {}\n"
    )
    reader = CryptofeedTextReader(path)
    assert [f.recv_ns for f in reader] == [1_500_000_000, 2_000_000_000]
    assert (reader.lines, reader.frames, reader.skipped_lines, reader.malformed_lines) == (
        6,
        2,
        0,
        4,
    )


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1652459225.708481", 1652459225708481000),
        ("1652459225.5300605", 1652459225530060500),
        ("1652459225", 1652459225000000000),
        ("0.000000001", 1),
        ("1.1234567891", 1123456789),  # beyond ns: truncated
        (b"1718000000.25", 1718000000250000000),
    ],
)
def test_decimal_seconds_convert_to_ns_without_floats(text: str | bytes, ns: int) -> None:
    assert decimal_seconds_to_ns(text) == ns


@pytest.mark.parametrize("text", ["", "-1.5", "1e9", "1.", ".5", "1.5.2", " 1", "1_000"])
def test_decimal_seconds_refuse_other_shapes(text: str) -> None:
    with pytest.raises(ValueError, match="epoch seconds"):
        decimal_seconds_to_ns(text)


# cryptofeed v3 JSON lines


def test_cryptofeed_jsonl_capture_yields_received_and_rest_frames(fixtures: Path) -> None:
    path = fixtures / JSONL
    reader = CryptofeedJsonlReader(path)
    frames = list(reader)

    assert (reader.lines, reader.frames, reader.skipped_lines, reader.malformed_lines) == (
        9,
        5,
        4,
        0,
    )
    assert reader.header is not None
    assert reader.header["exchange"] == "HUOBI"
    assert [f.recv_ns for f in frames] == [
        1718000000500000000,
        1718000001375432000,
        1718000001500000000,
        1718000002000000000,
        1718000002750000000,
    ]
    assert [f.source for f in frames] == [
        "rest:https://api.huobi.pro/v1/common/symbols",
        "wss://api.huobi.pro/ws",
        "wss://api.huobi.pro/ws",
        "wss://api.huobi.pro/ws",
        str(path),  # HUOBI.ws.2 has no connect record
    ]
    assert frames[0].payload.startswith(b'{"status":"ok"')
    assert gzip.decompress(frames[3].payload) == b'{"ping":1718000001999}'
    assert frames[4].payload == '{"note":"text frame, été → UTF-8","ts":1718000002749}'.encode()


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_compressed_cryptofeed_jsonl_reads_the_same(
    tmp_path: Path, fixtures: Path, compression: str
) -> None:
    text = (fixtures / JSONL).read_bytes()
    path = tmp_path / f"HUOBI.jsonl.{compression}"
    if compression == "zstd":
        # Two frames, as when cryptofeed's writer is reopened on the same file.
        cctx = zstandard.ZstdCompressor(level=10)
        half = text.index(b"\n", len(text) // 2) + 1
        path.write_bytes(cctx.compress(text[:half]) + cctx.compress(text[half:]))
    else:
        path.write_bytes(gzip.compress(text))
    expected = [
        f._replace(source=f.source.replace(str(fixtures / JSONL), str(path)))
        for f in open_frames(fixtures / JSONL)
    ]
    assert detect_format(path) == "cryptofeed-jsonl"
    assert list(open_frames(path)) == expected


def test_malformed_cryptofeed_jsonl_records_are_counted(tmp_path: Path) -> None:
    b64 = base64.b64encode(b"\x00\x01").decode()
    path = tmp_path / "X.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"t":"header","format":2,"exchange":"X","config":{}}',
                '{"conn":"X.ws.1","ts":1.5,"t":"recv","data":"{}"}',
                "not json",
                "[1, 2]",
                '{"conn":"X.ws.1","ts":1.5,"data":"{}"}',  # no type
                '{"conn":"X.ws.1","t":"recv","data":"{}"}',  # no ts
                '{"conn":"X.ws.1","ts":-1.0,"t":"recv","data":"{}"}',  # negative ts
                '{"conn":"X.ws.1","ts":2.0,"t":"recv"}',  # no payload
                '{"conn":"X.ws.1","ts":2.0,"t":"recv","b64":"!!"}',  # bad base64
                '{"conn":"X.http.0","ts":2.0,"t":"http","data":"{}"}',  # no url
                '{"conn":"X.ws.1","ts":3,"t":"recv","b64":"' + b64 + '"}',
                '{"conn":"X.ws.1","ts":4.0,"t":"close"}',  # unknown type: skipped
                "",
            ]
        )
    )
    reader = CryptofeedJsonlReader(path)
    assert [(f.recv_ns, f.payload) for f in reader] == [
        (1_500_000_000, b"{}"),
        (3_000_000_000, b"\x00\x01"),
    ]
    assert (reader.lines, reader.frames, reader.skipped_lines, reader.malformed_lines) == (
        12,
        2,
        2,
        8,
    )


def test_jsonl_float_timestamps_in_exponent_form_convert(tmp_path: Path) -> None:
    path = tmp_path / "X.jsonl"
    path.write_text('{"conn":"X.ws.1","ts":1e-05,"t":"recv","data":"{}"}\n')
    assert [f.recv_ns for f in open_frames(path)] == [10_000]


# detection and dispatch


@pytest.mark.parametrize(
    ("name", "expected"),
    [(BINANCE, "hftbacktest"), (OKX_WS, "cryptofeed-text"), (OKX_REST, "cryptofeed-text")],
)
def test_format_is_detected_from_content(
    tmp_path: Path, bundled: Path, name: str, expected: str
) -> None:
    assert detect_format(bundled / name) == expected
    renamed = tmp_path / "capture.bin"  # the extension does not matter
    renamed.write_bytes(gzip.decompress((bundled / name).read_bytes()))
    assert detect_format(renamed) == expected


def test_tkr1_and_jsonl_are_detected(tmp_path: Path, fixtures: Path) -> None:
    path = tmp_path / "rec.gz"
    with RecordingWriter(path) as writer:
        writer.write(RawFrame(1, b"{}", "s"))
    assert detect_format(path) == "tkr1"
    assert list(open_frames(path)) == [RawFrame(1, b"{}", "s")]
    assert detect_format(fixtures / JSONL) == "cryptofeed-jsonl"


def test_cryptofeed_capture_starting_with_a_connection_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "capture"
    path.write_bytes(b"\n\nwss://x.example/ws <-> 1652459224.5300605\n1652459225.1: {}\n")
    assert detect_format(path) == "cryptofeed-text"


@pytest.mark.parametrize("content", [b"", b"\n \n", b"hello world\n", b'{"a": 1}\n'])
def test_unrecognized_or_empty_files_raise(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "capture"
    path.write_bytes(content)
    with pytest.raises(RecordingError):
        detect_format(path)


def test_open_frames_dispatches_to_the_matching_reader(bundled: Path, fixtures: Path) -> None:
    assert list(open_frames(bundled / BINANCE)) == list(HftbacktestReader(bundled / BINANCE))
    assert list(open_frames(bundled / OKX_WS)) == list(CryptofeedTextReader(bundled / OKX_WS))
    assert list(open_frames(fixtures / JSONL)) == list(CryptofeedJsonlReader(fixtures / JSONL))
    assert isinstance(open_reader(bundled / OKX_REST), CryptofeedTextReader)


# merging


def test_merge_orders_by_receive_time_and_keeps_ties_in_argument_order() -> None:
    a = [RawFrame(1, b"a1", "a"), RawFrame(3, b"a3", "a"), RawFrame(3, b"a3'", "a")]
    b = [RawFrame(2, b"b2", "b"), RawFrame(3, b"b3", "b")]
    merged = list(merge_frames(a, b))
    assert [f.payload for f in merged] == [b"a1", b"b2", b"a3", b"a3'", b"b3"]


def test_merging_the_bundled_binance_files_gives_one_ordered_stream(bundled: Path) -> None:
    files = sorted((bundled / "binance_spot").glob("*.gz"))
    merged = list(merge_frames(*(open_frames(f) for f in files)))
    assert len(merged) == 24_000
    stamps = [f.recv_ns for f in merged]
    assert stamps == sorted(stamps)
    assert {f.source for f in merged} == {str(f) for f in files}
