"""TKR1, the kernel's own recording format for raw frames.

A file is an 8-byte file header followed by independent compressed blocks, each
guarded by CRC32s, so a file can be appended to and a crash mid-block costs only
that block. The byte layout is specified in ``docs/recording-format.md``.
"""

from __future__ import annotations

import logging
import mmap
import operator
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from itertools import accumulate, islice
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Final, NamedTuple, Self

from kernel.adapters.base import RawFrame
from kernel.fsutil import fsync_directory

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no advisory locks here
    fcntl = None  # type: ignore[assignment]

try:
    import zstandard
except ImportError:  # pragma: no cover - zlib and stored blocks still work
    zstandard = None  # type: ignore[assignment]

__all__ = [
    "BLOCK_HEADER_SIZE",
    "BLOCK_MAGIC",
    "CODECS",
    "FILE_HEADER_SIZE",
    "FILE_MAGIC",
    "FORMAT_VERSION",
    "BlockInfo",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "read_recording",
]

log = logging.getLogger(__name__)

FILE_MAGIC: Final = b"TKR1"
BLOCK_MAGIC: Final = b"TKRB"
FORMAT_VERSION: Final = 1

# File header: magic, format version, flags (0 in version 1).
_FILE_HEADER: Final = struct.Struct("<4sHH")
FILE_HEADER_SIZE: Final = _FILE_HEADER.size

# Block header: magic, codec, flags, reserved, records, raw length, compressed
# length, CRC32 of the compressed payload, first and last recv_ns; then the
# CRC32 of those 40 bytes.
_BLOCK_HEAD: Final = struct.Struct("<4sBBHIIIIQQ")
_U32: Final = struct.Struct("<I")
_U16: Final = struct.Struct("<H")
BLOCK_HEADER_SIZE: Final = _BLOCK_HEAD.size + _U32.size

# Per record in the columns of a block: u64 recv_ns, u16 source, u32 length.
_RECORD_OVERHEAD: Final = 14
_MAX_SOURCES: Final = 0xFFFF
_U32_MAX: Final = 0xFFFF_FFFF
_U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF

CODECS: Final[dict[str, int]] = {"none": 0, "zlib": 1, "zstd": 2}
_CODEC_NAMES: Final = {v: k for k, v in CODECS.items()}
_DEFAULT_LEVELS: Final = {"none": 0, "zlib": 6, "zstd": 3}

# A NamedTuple built from a tuple in C; RawFrame(...) goes through a Python-level
# __new__ and costs about twice as much per frame.
_new_frame: Final = partial(tuple.__new__, RawFrame)


class RecordingError(Exception):
    """A recording cannot be read or appended to: wrong format or corrupt data."""


class BlockInfo(NamedTuple):
    """Where one block lies in a file and what its header says."""

    offset: int
    codec: str
    records: int
    raw_len: int
    comp_len: int
    first_ns: int
    last_ns: int


class _Header(NamedTuple):
    codec: int
    records: int
    raw_len: int
    comp_len: int
    crc: int
    first_ns: int
    last_ns: int


def _parse_block_header(head: bytes) -> _Header | None:
    """Return the block header in ``head`` (exactly 44 bytes), or None if damaged."""
    (crc,) = _U32.unpack_from(head, _BLOCK_HEAD.size)
    if zlib.crc32(head[: _BLOCK_HEAD.size]) != crc:
        return None
    magic, codec, flags, reserved, records, raw_len, comp_len, pcrc, first, last = (
        _BLOCK_HEAD.unpack_from(head)
    )
    if magic != BLOCK_MAGIC or flags or reserved or codec not in _CODEC_NAMES:
        return None
    return _Header(codec, records, raw_len, comp_len, pcrc, first, last)


def _zstd() -> Any:
    if zstandard is None:
        raise RecordingError("zstd blocks need the zstandard package")
    return zstandard


def _stored(data: bytes) -> bytes:
    return data


def _compressor(codec: str, level: int) -> Callable[[bytes], bytes]:
    if codec == "none":
        return _stored
    if codec == "zlib":
        return partial(zlib.compress, level=level)
    compress: Callable[[bytes], bytes] = _zstd().ZstdCompressor(level=level).compress
    return compress


class _Decompressor:
    """Per-reader codec state (a zstd context is not shareable across threads)."""

    def __init__(self) -> None:
        self._zstd: Any = None

    def __call__(self, codec: int, data: bytes, raw_len: int) -> bytes:
        if codec == 0:
            return data
        if codec == 1:
            return zlib.decompress(data, bufsize=max(raw_len, 1))
        if self._zstd is None:
            self._zstd = _zstd().ZstdDecompressor()
        out: bytes = self._zstd.decompress(data, max_output_size=raw_len)
        return out


def _decode_block(raw: bytes, header: _Header, where: str) -> Iterator[RawFrame]:
    """Return the frames of one decompressed block payload."""
    if len(raw) != header.raw_len:
        raise RecordingError(f"{where}: payload is {len(raw)} bytes, header says {header.raw_len}")
    n = header.records
    try:
        (n_sources,) = _U32.unpack_from(raw, 0)
        pos = _U32.size
        sources: list[str] = []
        for _ in range(n_sources):
            (length,) = _U16.unpack_from(raw, pos)
            pos += _U16.size
            sources.append(raw[pos : pos + length].decode("utf-8"))
            pos += length
        ns = struct.unpack_from(f"<{n}Q", raw, pos)
        pos += 8 * n
        indices = struct.unpack_from(f"<{n}H", raw, pos)
        pos += 2 * n
        lengths = struct.unpack_from(f"<{n}I", raw, pos)
        pos += 4 * n
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordingError(f"{where}: malformed block payload ({exc})") from exc
    if pos + sum(lengths) != len(raw):
        raise RecordingError(f"{where}: record lengths do not add up to the payload size")
    if n and (max(indices) >= n_sources or ns[0] != header.first_ns or ns[-1] != header.last_ns):
        raise RecordingError(f"{where}: block columns disagree with the block header")
    starts = list(accumulate(lengths, initial=pos))
    payloads = map(raw.__getitem__, map(slice, starts, islice(starts, 1, None)))
    return map(_new_frame, zip(ns, payloads, map(sources.__getitem__, indices), strict=False))


class _Damage(NamedTuple):
    """A block that cannot be read, and where a later valid block could start."""

    offset: int
    reason: str
    scan_from: int | None  # None: the file ends inside this block


def _payload_damage(offset: int, header: _Header) -> _Damage:
    # The header's CRC held, so its length can be trusted to skip the payload.
    return _Damage(offset, "payload CRC mismatch", offset + BLOCK_HEADER_SIZE + header.comp_len)


def _is_corruption(fileobj: IO[bytes], damage: _Damage, size: int) -> bool:
    """Return whether damage is followed by a valid block (else it is a torn tail)."""
    if damage.scan_from is None or damage.scan_from + BLOCK_HEADER_SIZE > size:
        return False
    with mmap.mmap(fileobj.fileno(), size, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(BLOCK_MAGIC, damage.scan_from)
        while pos != -1 and pos + BLOCK_HEADER_SIZE <= size:
            if _parse_block_header(mm[pos : pos + BLOCK_HEADER_SIZE]) is not None:
                return True
            pos = mm.find(BLOCK_MAGIC, pos + 1)
    return False


def _read_file_header(fileobj: IO[bytes], size: int, path: Path) -> bool:
    """Validate the file header; return False when the file is only a torn header."""
    head = fileobj.read(FILE_HEADER_SIZE)
    if len(head) < FILE_HEADER_SIZE:
        if _FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0).startswith(head):
            return False
        raise RecordingError(f"{path}: not a TKR1 recording")
    magic, version, flags = _FILE_HEADER.unpack(head)
    if magic != FILE_MAGIC:
        raise RecordingError(f"{path}: not a TKR1 recording (magic {magic!r})")
    if version != FORMAT_VERSION or flags:
        raise RecordingError(
            f"{path}: TKR1 version {version} flags {flags:#x} is not supported "
            f"(this reader knows version {FORMAT_VERSION})"
        )
    return True


class RecordingReader:
    """Read a TKR1 file; iterate it for its frames.

    A torn or corrupt final block (a crash while writing) ends the iteration with
    a logged warning, and ``truncated_bytes`` says how much was ignored; with
    ``strict=True`` it raises :class:`RecordingError` instead. Damage followed by
    a valid block is corruption, not a crash, and always raises. The file is
    read up to the size it had when the iteration started.
    """

    format: ClassVar[str] = "tkr1"

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False) -> None:
        self.path = Path(path)
        self.strict = strict
        self.blocks = 0
        self.frames = 0
        self.truncated_bytes = 0
        self.truncated_at: int | None = None

    def __iter__(self) -> Iterator[RawFrame]:
        self.blocks = self.frames = self.truncated_bytes = 0
        self.truncated_at = None
        decompress = _Decompressor()
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not _read_file_header(f, size, self.path):
                self._torn(0, size, "the file header is incomplete")
                return
            offset = FILE_HEADER_SIZE
            while offset < size:
                item = self._next_block(f, offset, size)
                if isinstance(item, _Damage):
                    self._damaged(f, item, size)
                    return
                header, payload = item
                where = f"{self.path}: block at offset {offset}"
                try:
                    raw = decompress(header.codec, payload, header.raw_len)
                except Exception as exc:
                    raise RecordingError(f"{where}: cannot decompress ({exc})") from exc
                frames = _decode_block(raw, header, where)
                self.blocks += 1
                self.frames += header.records
                yield from frames
                offset += BLOCK_HEADER_SIZE + header.comp_len

    def index(self) -> list[BlockInfo]:
        """Return every complete block's header, without reading the payloads.

        Payload CRCs are not checked here; torn and damaged headers follow the
        same rules as iteration.
        """
        self.truncated_bytes = 0
        self.truncated_at = None
        infos: list[BlockInfo] = []
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not _read_file_header(f, size, self.path):
                self._torn(0, size, "the file header is incomplete")
                return infos
            offset = FILE_HEADER_SIZE
            while offset < size:
                item = _header_at(f, offset, size)
                if isinstance(item, _Damage):
                    self._damaged(f, item, size)
                    break
                infos.append(_block_info(offset, item))
                offset += BLOCK_HEADER_SIZE + item.comp_len
                f.seek(offset)
        return infos

    def _next_block(self, f: IO[bytes], offset: int, size: int) -> tuple[_Header, bytes] | _Damage:
        header = _header_at(f, offset, size)
        if isinstance(header, _Damage):
            return header
        payload = f.read(header.comp_len)
        if zlib.crc32(payload) != header.crc:
            return _payload_damage(offset, header)
        return header, payload

    def _damaged(self, f: IO[bytes], damage: _Damage, size: int) -> None:
        if _is_corruption(f, damage, size):
            raise RecordingError(
                f"{self.path}: corrupt block at offset {damage.offset}: {damage.reason}"
            )
        self._torn(damage.offset, size, damage.reason)

    def _torn(self, offset: int, size: int, reason: str) -> None:
        message = (
            f"{self.path}: torn final block at offset {offset} ({reason}); "
            f"{size - offset} bytes ignored"
        )
        if self.strict:
            raise RecordingError(message)
        log.warning("%s", message)
        self.truncated_bytes = size - offset
        self.truncated_at = offset


def _header_at(f: IO[bytes], offset: int, size: int) -> _Header | _Damage:
    """Read the block header at ``offset`` (the file is positioned there)."""
    head = f.read(BLOCK_HEADER_SIZE)
    if len(head) < BLOCK_HEADER_SIZE:
        return _Damage(offset, "truncated", None)
    header = _parse_block_header(head)
    if header is None:
        return _Damage(offset, "bad block header", offset + 1)
    if offset + BLOCK_HEADER_SIZE + header.comp_len > size:
        return _Damage(offset, "truncated", None)
    return header


def _block_info(offset: int, header: _Header) -> BlockInfo:
    return BlockInfo(
        offset,
        _CODEC_NAMES[header.codec],
        header.records,
        header.raw_len,
        header.comp_len,
        header.first_ns,
        header.last_ns,
    )


def read_recording(path: str | os.PathLike[str], *, strict: bool = False) -> Iterator[RawFrame]:
    """Yield the frames of a TKR1 file (see :class:`RecordingReader`)."""
    return iter(RecordingReader(path, strict=strict))


class RecordingWriter:
    """Write frames to a TKR1 file, appending when it exists.

    Frames are buffered into a block that is compressed and written once it
    holds ``block_bytes`` of frame data, or on :meth:`flush`. Each block goes to
    the OS in one write, so a crash loses at most the block being written; a
    torn tail left by an earlier crash is cut off (with a warning) when the file
    is reopened. ``fsync=True`` also syncs the file on every :meth:`flush`.

    One writer per file: an advisory lock refuses a second one. Not thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        codec: str = "zstd",
        *,
        block_bytes: int = 1 << 20,
        level: int | None = None,
        fsync: bool = False,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(CODECS)}")
        if not 0 < block_bytes <= 1 << 30:
            raise ValueError("block_bytes must be between 1 and 1 GiB")
        self.path = Path(path)
        self.codec = codec
        self.block_bytes = block_bytes
        self.fsync = fsync
        self._codec_id = CODECS[codec]
        self._compress = _compressor(codec, _DEFAULT_LEVELS[codec] if level is None else level)
        self.frames_written = 0
        self.blocks_written = 0
        self.discarded_bytes = 0
        self._ns: list[int] = []
        self._src: list[int] = []
        self._payloads: list[bytes] = []
        self._source_index: dict[str, int] = {}
        self._table: list[bytes] = []
        self._pending = _U32.size
        self._file = self._open()

    def _open(self) -> IO[bytes]:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        f = os.fdopen(fd, "r+b", buffering=0)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    raise RecordingError(f"{self.path}: already open for writing") from exc
            self._prepare_for_append(f)
            if created and self.fsync:
                fsync_directory(self.path)
        except BaseException:
            f.close()
            raise
        return f

    def _prepare_for_append(self, f: IO[bytes]) -> None:
        size = os.fstat(f.fileno()).st_size
        if not _read_file_header(f, size, self.path):
            if size:
                log.warning("%s: rewriting an incomplete file header", self.path)
            f.truncate(0)
            f.seek(0)
            self._write_all(f, _FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0))
            return
        offset = FILE_HEADER_SIZE
        while offset < size:
            header = _header_at(f, offset, size)
            if not isinstance(header, _Damage):
                end = offset + BLOCK_HEADER_SIZE + header.comp_len
                if end < size:
                    offset = end
                    f.seek(offset)
                    continue
                # Only the final block can be torn: check its payload too.
                if zlib.crc32(f.read(header.comp_len)) == header.crc:
                    offset = end
                    continue
                header = _payload_damage(offset, header)
            if _is_corruption(f, header, size):
                raise RecordingError(
                    f"{self.path}: corrupt block at offset {offset} ({header.reason}); "
                    "refusing to append"
                )
            log.warning(
                "%s: discarding a torn final block at offset %d (%d bytes)",
                self.path,
                offset,
                size - offset,
            )
            self.discarded_bytes = size - offset
            f.truncate(offset)
            break
        f.seek(offset)

    @staticmethod
    def _write_all(f: IO[bytes], data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[f.write(view) :]

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._file.closed

    def write(self, frame: RawFrame) -> None:
        """Buffer one frame; write the block out once it is full."""
        recv_ns, payload, source = frame
        if type(payload) is not bytes:
            payload = bytes(payload)
        if type(recv_ns) is not int:
            recv_ns = operator.index(recv_ns)
        if not 0 <= recv_ns <= _U64_MAX:
            raise ValueError(f"recv_ns {recv_ns} does not fit in 64 bits")
        index = self._source_index.get(source)
        if index is None:
            index = self._add_source(source)
        pending = self._pending + len(payload) + _RECORD_OVERHEAD
        if pending > _U32_MAX:
            self._end_block()
            index = self._add_source(source)
            pending = self._pending + len(payload) + _RECORD_OVERHEAD
            if pending > _U32_MAX:
                raise ValueError(f"frame of {len(payload)} bytes is too large for a block")
        self._ns.append(recv_ns)
        self._src.append(index)
        self._payloads.append(payload)
        self._pending = pending
        if pending >= self.block_bytes:
            self._end_block()

    def _add_source(self, source: str) -> int:
        if type(source) is not str:
            raise TypeError(f"a frame source must be a str, not {type(source).__name__}")
        encoded = source.encode("utf-8")
        if len(encoded) > 0xFFFF:
            raise ValueError("a frame source must be at most 65535 bytes of UTF-8")
        if len(self._table) == _MAX_SOURCES:
            self._end_block()
        index = len(self._table)
        self._source_index[source] = index
        self._table.append(_U16.pack(len(encoded)) + encoded)
        self._pending += _U16.size + len(encoded)
        return index

    def _end_block(self) -> None:
        n = len(self._ns)
        if n:
            raw = b"".join(
                [
                    _U32.pack(len(self._table)),
                    *self._table,
                    struct.pack(f"<{n}Q", *self._ns),
                    struct.pack(f"<{n}H", *self._src),
                    struct.pack(f"<{n}I", *map(len, self._payloads)),
                    *self._payloads,
                ]
            )
            comp = self._compress(raw)
            head = _BLOCK_HEAD.pack(
                BLOCK_MAGIC,
                self._codec_id,
                0,
                0,
                n,
                len(raw),
                len(comp),
                zlib.crc32(comp),
                self._ns[0],
                self._ns[-1],
            )
            start = self._file.tell()
            try:
                self._write_all(self._file, head + _U32.pack(zlib.crc32(head)) + comp)
            except BaseException:
                # Leave no partial block behind for the next block to follow.
                self._file.truncate(start)
                self._file.seek(start)
                raise
            self.frames_written += n
            self.blocks_written += 1
        self._ns = []
        self._src = []
        self._payloads = []
        self._source_index = {}
        self._table = []
        self._pending = _U32.size

    def flush(self) -> None:
        """End the current block so that everything written so far is on disk and readable."""
        if self._file.closed:
            raise ValueError("flush on a closed RecordingWriter")
        self._end_block()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the file; closing twice is harmless."""
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
