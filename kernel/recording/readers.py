"""Readers for capture formats that users already have, and format detection.

Each reader yields :class:`RawFrame` with the payload bytes exactly as stored;
the JSON inside is left to the venue feeds. Lines that cannot be read (bad
timestamp, no separator) are counted in ``malformed_lines`` and logged with
their file and line number, and reading goes on.

Every reader keeps the counters ``lines``, ``frames``, ``skipped_lines`` (valid
lines that are not received frames: blank lines, connection opens, sent
messages, headers) and ``malformed_lines``, with
``frames + skipped_lines + malformed_lines == lines`` after a full read.
"""

from __future__ import annotations

import ast
import base64
import binascii
import gzip
import heapq
import logging
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Final, Protocol

import orjson

try:
    import zstandard
except ImportError:  # pragma: no cover - zstd captures then cannot be read
    zstandard = None  # type: ignore[assignment]

from kernel.adapters.base import RawFrame
from kernel.recording.format import FILE_MAGIC, RecordingError, RecordingReader

__all__ = [
    "FORMATS",
    "CryptofeedJsonlReader",
    "CryptofeedTextReader",
    "FrameSource",
    "HftbacktestReader",
    "decimal_seconds_to_ns",
    "detect_format",
    "merge_frames",
    "open_frames",
    "open_reader",
]

log = logging.getLogger(__name__)

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_CHUNK: Final = 1 << 20
_MAX_LINE_WARNINGS: Final = 20
_NS_PER_S: Final = 1_000_000_000


class FrameSource(Protocol):
    """An opened capture: iterate it for frames."""

    format: ClassVar[str]
    path: Path

    def __iter__(self) -> Iterator[RawFrame]: ...


def decimal_seconds_to_ns(text: str | bytes) -> int:
    """Convert decimal epoch seconds (``"1652459225.708481"``) to integer ns exactly.

    Digits beyond the ninth decimal are truncated; signs and exponents are refused.
    """
    value = _seconds_to_ns(text.encode("ascii") if isinstance(text, str) else text)
    if value < 0:
        raise ValueError(f"not decimal epoch seconds: {text!r}")
    return value


def _seconds_to_ns(text: bytes) -> int:
    """Return ``text`` (``b"123.456"``) in ns, or -1 when it is not that shape."""
    whole, dot, frac = text.partition(b".")
    if not whole.isdigit():
        return -1
    if not dot:
        return int(whole) * _NS_PER_S
    if not frac.isdigit():
        return -1
    return int(whole) * _NS_PER_S + int(frac[:9].ljust(9, b"0"))


_STREAM_ERRORS: Final[tuple[type[Exception], ...]] = (
    (OSError, zlib.error, zstandard.ZstdError) if zstandard else (OSError, zlib.error)
)
_HEAD_ERRORS: Final[tuple[type[Exception], ...]] = (EOFError, *_STREAM_ERRORS)


class _Stream(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _ZstdFrames:
    """Decompress concatenated zstd frames; raise EOFError if the last one is cut short.

    ``read`` returns whatever one input chunk decompresses to (``size`` is only
    a hint), and b"" at the end.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._in_frame = False

    def read(self, size: int = -1, /) -> bytes:
        while True:
            data = self._raw.read(_CHUNK)
            if not data:
                if self._in_frame:
                    raise EOFError("zstd stream ends inside a frame")
                return b""
            out: list[bytes] = []
            while data:
                self._in_frame = True
                out.append(self._frame.decompress(data))
                data = b""
                if self._frame.eof:
                    data = self._frame.unused_data
                    self._frame = self._dctx.decompressobj()
                    self._in_frame = False
            result = b"".join(out)
            if result:
                return result


@contextmanager
def _open_stream(path: Path) -> Iterator[_Stream]:
    """Open ``path`` for reading, decompressing gzip or zstd found by magic bytes."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(_GZIP_MAGIC):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        elif magic == _ZSTD_MAGIC:
            if zstandard is None:
                raise RecordingError(f"{path}: zstd-compressed, needs the zstandard package")
            yield _ZstdFrames(raw)
        else:
            yield raw


class _LineReader:
    """Shared machinery: decompress, split lines, count and report bad ones."""

    format: ClassVar[str] = ""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.source = os.fspath(path)
        self.lines = 0
        self.frames = 0
        self.skipped_lines = 0
        self.malformed_lines = 0
        self.truncated = False

    def __iter__(self) -> Iterator[RawFrame]:
        self.lines = self.frames = self.skipped_lines = self.malformed_lines = 0
        self.truncated = False
        try:
            yield from self._frames(self._chunks())
        finally:
            if self.malformed_lines:
                log.warning(
                    "%s: %d malformed lines skipped (of %d)",
                    self.path,
                    self.malformed_lines,
                    self.lines,
                )

    def _frames(self, chunks: Iterator[tuple[int, list[bytes]]]) -> Iterator[RawFrame]:
        raise NotImplementedError

    def _chunks(self) -> Iterator[tuple[int, list[bytes]]]:
        """Yield (number of the first line, lines) for successive pieces of the file."""
        lineno = 1
        carry = b""
        with _open_stream(self.path) as stream:
            while True:
                try:
                    chunk = stream.read(_CHUNK)
                except EOFError:
                    # A compressed capture still being written, or cut short.
                    log.warning("%s: compressed stream ends early; read what is there", self.path)
                    self.truncated = True
                    chunk = b""
                except _STREAM_ERRORS as exc:
                    raise RecordingError(f"{self.path}: corrupt compressed data ({exc})") from exc
                if not chunk:
                    break
                data = carry + chunk
                lines = data.split(b"\n")
                carry = lines.pop()
                if lines:
                    self.lines += len(lines)
                    # One scan per chunk for CRLF line ends instead of one per line.
                    yield lineno, _strip_cr(lines) if b"\r" in data else lines
                    lineno += len(lines)
        if carry:
            self.lines += 1
            if self.truncated:
                self._malformed(lineno, "last line cut short")
            else:
                yield lineno, _strip_cr([carry])

    def _malformed(self, lineno: int, why: str) -> None:
        self.malformed_lines += 1
        if self.malformed_lines <= _MAX_LINE_WARNINGS:
            log.warning("%s:%d: malformed line skipped: %s", self.path, lineno, why)
        elif self.malformed_lines == _MAX_LINE_WARNINGS + 1:
            log.warning("%s: further malformed lines are counted but not logged", self.path)


def _strip_cr(lines: list[bytes]) -> list[bytes]:
    """Drop the CR of CRLF line ends."""
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


class HftbacktestReader(_LineReader):
    """hftbacktest raw capture: ``<local_recv_ns> <json>`` per line, gzip or plain.

    ``source`` is the file path as given.
    """

    format = "hftbacktest"

    def _frames(self, chunks: Iterator[tuple[int, list[bytes]]]) -> Iterator[RawFrame]:
        source = self.source
        new = tuple.__new__
        frames = skipped = 0
        try:
            for lineno, lines in chunks:
                for i, line in enumerate(lines, lineno):
                    ts, _, payload = line.partition(b" ")
                    if ts.isdigit() and payload:
                        frames += 1
                        # tuple.__new__ skips RawFrame's Python-level __new__.
                        yield new(RawFrame, (int(ts), payload, source))
                    elif not line.strip():
                        skipped += 1
                    else:
                        self._malformed(i, "expected '<recv_ns> <payload>'")
        finally:
            self.frames += frames
            self.skipped_lines += skipped


class CryptofeedTextReader(_LineReader):
    """cryptofeed's text capture (``AsyncFileCallback``), gzip or plain.

    Received frames are ``<epoch_s>: <data>``; ``<url> <-> <epoch_s>`` (connection
    opened) and ``<url> <- <epoch_s>: <data>`` (sent) are skipped but make ``<url>``
    the source of the frames after them (else the file path); REST responses
    ``<url> -> <epoch_s>: <body>`` are frames with source ``rest:<url>``; a
    ``configuration: ...`` line is skipped. Binary frames, stored as a Python bytes
    literal (``b'...'``), are decoded back to their bytes.
    """

    format = "cryptofeed-text"

    def _frames(self, chunks: Iterator[tuple[int, list[bytes]]]) -> Iterator[RawFrame]:
        source = self.source
        rest_sources: dict[bytes, str] = {}
        new = tuple.__new__
        frames = skipped = 0
        try:
            for lineno, lines in chunks:
                for i, line in enumerate(lines, lineno):
                    if line[:1].isdigit():
                        ts, sep, data = line.partition(b": ")
                        ns = _seconds_to_ns(ts)
                        if ns < 0 or not sep:
                            self._malformed(i, "expected '<epoch_s>: <payload>'")
                            continue
                        if data[:2] in (b"b'", b'b"'):
                            literal = _bytes_literal(data)
                            if literal is None:
                                self._malformed(i, "bad bytes literal")
                                continue
                            data = literal
                        frames += 1
                        yield new(RawFrame, (ns, data, source))
                        continue
                    addr, _, rest = line.partition(b" ")
                    marker, _, rest = rest.partition(b" ")
                    if marker == b"->":
                        ts, sep, body = rest.partition(b": ")
                        ns = _seconds_to_ns(ts)
                        if ns < 0 or not sep:
                            self._malformed(i, "expected '<url> -> <epoch_s>: <body>'")
                            continue
                        rest_source = rest_sources.get(addr)
                        if rest_source is None:
                            rest_source = "rest:" + addr.decode("utf-8", "replace")
                            rest_sources[addr] = rest_source
                        frames += 1
                        yield new(RawFrame, (ns, body, rest_source))
                    elif marker in (b"<-", b"<->"):
                        source = addr.decode("utf-8", "replace")
                        skipped += 1
                    elif addr == b"configuration:" or not line.strip():
                        skipped += 1
                    else:
                        self._malformed(i, "not a cryptofeed capture line")
        finally:
            self.frames += frames
            self.skipped_lines += skipped


def _bytes_literal(data: bytes) -> bytes | None:
    try:
        value = ast.literal_eval(data.decode("ascii"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, bytes) else None


class CryptofeedJsonlReader(_LineReader):
    """cryptofeed 3.0's JSON-lines capture (``cryptofeed/capture.py``, format 2).

    One JSON object per line (zstd, gzip or plain): a ``header`` record, then
    ``connect`` (``conn``, ``addr``), ``send``, ``recv`` and ``http`` (``url``)
    records with ``ts`` in epoch seconds and the payload as the string ``data``
    or base64 ``b64`` for binary frames. ``recv`` frames take the address of
    their connection as source (else the file path); ``http`` responses are
    frames with source ``rest:<url>``. The header is kept in ``header``.
    """

    format = "cryptofeed-jsonl"
    SUPPORTED_VERSION: ClassVar[int] = 2

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.header: dict[str, Any] | None = None

    def _frames(self, chunks: Iterator[tuple[int, list[bytes]]]) -> Iterator[RawFrame]:
        addresses: dict[str, str] = {}
        unknown: set[str] = set()
        new = tuple.__new__
        frames = skipped = 0
        try:
            for lineno, lines in chunks:
                for i, line in enumerate(lines, lineno):
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        if line.strip():
                            self._malformed(i, "not JSON")
                        else:
                            skipped += 1
                        continue
                    if type(record) is not dict:
                        self._malformed(i, "not a JSON object")
                        continue
                    kind = record.get("t")
                    if type(kind) is not str:
                        self._malformed(i, "record without a type 't'")
                        continue
                    conn = record.get("conn")
                    if kind in {"recv", "http"}:
                        ns = _json_seconds_to_ns(record.get("ts"))
                        payload = _json_payload(record)
                        if kind == "http":
                            url = record.get("url")
                            source = "rest:" + url if type(url) is str else None
                        elif type(conn) is str:
                            source = addresses.get(conn, self.source)
                        else:
                            source = self.source
                        if ns < 0 or payload is None or source is None:
                            self._malformed(i, f"{kind} record without valid ts, payload or url")
                            continue
                        frames += 1
                        yield new(RawFrame, (ns, payload, source))
                        continue
                    skipped += 1
                    if kind in {"connect", "send"}:
                        addr = record.get("addr")
                        if type(conn) is str and type(addr) is str:
                            addresses.setdefault(conn, addr)
                            if kind == "connect":
                                addresses[conn] = addr
                    elif kind == "header":
                        self._read_header(record)
                    elif kind not in unknown:
                        unknown.add(kind)
                        log.info("%s:%d: skipping records of type %r", self.path, i, kind)
        finally:
            self.frames += frames
            self.skipped_lines += skipped

    def _read_header(self, record: dict[str, Any]) -> None:
        self.header = record
        version = record.get("format")
        if version != self.SUPPORTED_VERSION:
            log.warning(
                "%s: cryptofeed capture format %r, reader written for %d; reading anyway",
                self.path,
                version,
                self.SUPPORTED_VERSION,
            )


def _json_seconds_to_ns(value: object) -> int:
    """Return a JSON ``ts`` (epoch seconds) in ns, or -1 when it is not one."""
    if type(value) is float:
        # repr() is the shortest text that round-trips, which is what the
        # capture's JSON encoder wrote, so converting it is exact.
        text = repr(value)
        ns = _seconds_to_ns(text.encode("ascii"))
        if ns >= 0 or not math.isfinite(value) or value < 0:
            return ns
        return int(Decimal(text).scaleb(9))  # exponent form, e.g. 1e-05
    if type(value) is int:
        return value * _NS_PER_S if value >= 0 else -1
    if type(value) is str:
        return _seconds_to_ns(value.encode("ascii", "replace"))
    return -1


def _json_payload(record: dict[str, Any]) -> bytes | None:
    data = record.get("data")
    if type(data) is str:
        return data.encode("utf-8")
    encoded = record.get("b64")
    if type(encoded) is str:
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return None
    return None


_READERS: Final[dict[str, type[_LineReader]]] = {
    reader.format: reader
    for reader in (HftbacktestReader, CryptofeedTextReader, CryptofeedJsonlReader)
}
FORMATS: Final = ("tkr1", *_READERS)

_HEAD_BYTES: Final = 1 << 16
_HFT_LINE: Final = re.compile(rb"[0-9]+ \S")
_CF_FRAME: Final = re.compile(rb"[0-9]+(?:\.[0-9]+)?: ")
_CF_OTHER: Final = re.compile(rb"\S+ (?:<->|<-|->) [0-9]|configuration: ")
_CF_JSONL: Final = re.compile(rb'^\{.*"t"\s*:\s*"(?:header|connect|send|recv|http)"')


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the capture format of ``path``, one of :data:`FORMATS`, from its content.

    Compression (gzip, zstd) is recognized by magic bytes, then the first
    non-blank line decides.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(len(FILE_MAGIC)) == FILE_MAGIC:
            return "tkr1"
    with _open_stream(path) as stream:
        head = b""
        while True:
            try:
                chunk = stream.read(_HEAD_BYTES)
            except _HEAD_ERRORS as exc:
                raise RecordingError(f"{path}: cannot read ({exc})") from exc
            head = (head + chunk).lstrip()
            if head or not chunk:
                break
    if not head:
        raise RecordingError(f"{path}: empty file, cannot tell its format")
    if head.startswith(FILE_MAGIC):
        raise RecordingError(f"{path}: a compressed TKR1 file; decompress it first")
    first_line = head.partition(b"\n")[0]
    for pattern, name in (
        (_HFT_LINE, HftbacktestReader.format),
        (_CF_FRAME, CryptofeedTextReader.format),
        (_CF_OTHER, CryptofeedTextReader.format),
        (_CF_JSONL, CryptofeedJsonlReader.format),
    ):
        if pattern.match(first_line):
            return name
    raise RecordingError(f"{path}: unrecognized capture format (starts {head[:40]!r})")


def open_reader(path: str | os.PathLike[str], *, strict: bool = False) -> FrameSource:
    """Return a reader for ``path`` in whichever supported format it is.

    ``strict`` applies to TKR1 files (see :class:`RecordingReader`).
    """
    name = detect_format(path)
    if name == "tkr1":
        return RecordingReader(path, strict=strict)
    return _READERS[name](path)


def open_frames(path: str | os.PathLike[str], *, strict: bool = False) -> Iterator[RawFrame]:
    """Yield the frames of a capture in any supported format (see :func:`open_reader`)."""
    return iter(open_reader(path, strict=strict))


_recv_ns: Final = itemgetter(0)


def merge_frames(*streams: Iterable[RawFrame]) -> Iterator[RawFrame]:
    """Merge time-ordered frame streams by ``recv_ns``; ties keep argument order."""
    return heapq.merge(*streams, key=_recv_ns)
