"""TKJ1, the command and event journal: an append-only, CRC-guarded log of records.

The order manager appends every command and event here before it takes effect
and replays the file on start. A file is an 8-byte header followed by records,
each ``u32 length | u32 crc32(body) | body`` with a MessagePack body
``[sequence, ts_ns, kind, payload]``; sequences run 1, 2, 3, ... without gaps.
The byte layout, the fsync policies and the recovery rules are specified in
``docs/journal.md``.
"""

from __future__ import annotations

import logging
import mmap
import operator
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, Self

import msgspec

from kernel.fsutil import fsync_directory

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no advisory locks here
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FILE_HEADER_SIZE",
    "FILE_MAGIC",
    "FORMAT_VERSION",
    "MAX_BODY_SIZE",
    "RECORD_HEADER_SIZE",
    "FsyncPolicy",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalRecord",
    "JournalReport",
    "replay",
    "verify",
]

log = logging.getLogger(__name__)

FILE_MAGIC: Final = b"TKJ1"
FORMAT_VERSION: Final = 1

# File header: magic, format version, flags (0 in version 1).
_FILE_HEADER: Final = struct.Struct("<4sHH")
FILE_HEADER_SIZE: Final = _FILE_HEADER.size
_HEADER_BYTES: Final = _FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0)

# Record header: body length, CRC32 of the body.
_RECORD_HEAD: Final = struct.Struct("<II")
RECORD_HEADER_SIZE: Final = _RECORD_HEAD.size

MAX_BODY_SIZE: Final = 16 << 20
"""The largest record body accepted, in bytes; longer lengths read as damage."""

# The shortest possible body: fixarray(4), two fixints, an empty fixstr, nil.
_MIN_BODY_SIZE: Final = 5

# records_since finds its starting point through the offset of every 1024th record.
_INDEX_STRIDE: Final = 1024

FsyncPolicy = Literal["always", "batch", "never"]
_POLICIES: Final = ("always", "batch", "never")


class JournalError(Exception):
    """A journal cannot be opened, read or appended to."""


class JournalCorruptError(JournalError):
    """A record is damaged and is not the torn tail of a crash: data would be lost.

    ``offset`` is where the damaged record starts in the file.
    """

    def __init__(self, message: str, path: Path, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset


class JournalLockedError(JournalError):
    """Another writer holds the journal open."""


class JournalRecord(msgspec.Struct, frozen=True, array_like=True):
    """One journal entry: its sequence number, timestamp, kind and payload.

    ``payload`` comes back as MessagePack decodes it: bytes stay bytes, tuples
    and structs come back as lists, maps as dicts.
    """

    sequence: int
    ts_ns: int
    kind: str
    payload: Any


@dataclass(frozen=True)
class JournalReport:
    """What :func:`verify` found in a journal file."""

    path: Path
    size: int
    records: int
    last_sequence: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    torn_tail_offset: int | None
    torn_tail_bytes: int
    error: str | None
    error_offset: int | None

    @property
    def ok(self) -> bool:
        """Whether every record up to the end (or up to a torn tail) is intact."""
        return self.error is None


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(JournalRecord)


def _decodes(body: bytes) -> bool:
    try:
        _decoder.decode(body)
    except msgspec.DecodeError:
        return False
    return True


def _valid_record_at(data: mmap.mmap, pos: int, end: int) -> bool:
    """Return whether a whole record with a matching CRC that decodes starts at ``pos``."""
    length, crc = _RECORD_HEAD.unpack_from(data, pos)
    if not _MIN_BODY_SIZE <= length <= MAX_BODY_SIZE or pos + RECORD_HEADER_SIZE + length > end:
        return False
    body = data[pos + RECORD_HEADER_SIZE : pos + RECORD_HEADER_SIZE + length]
    return zlib.crc32(body) == crc and _decodes(body)


def _next_valid_record(f: IO[bytes], start: int, end: int) -> int | None:
    """Return the offset of the first valid record in ``[start, end)``, or None.

    Every byte offset is tried: after damage, nothing says where the next record
    starts. This runs only on damaged files.
    """
    end = min(end, os.fstat(f.fileno()).st_size)
    last = end - RECORD_HEADER_SIZE - _MIN_BODY_SIZE
    if start > last:
        return None
    with mmap.mmap(f.fileno(), end, access=mmap.ACCESS_READ) as data:
        for pos in range(start, last + 1):
            if _valid_record_at(data, pos, end):
                return pos
    return None


def _read_file_header(f: IO[bytes], size: int, path: Path) -> bool:
    """Validate the file header; return False when the file holds only part of one."""
    head = f.read(FILE_HEADER_SIZE)
    if len(head) < FILE_HEADER_SIZE:
        if _HEADER_BYTES.startswith(head):
            return False
        raise JournalError(f"{path}: not a TKJ1 journal")
    magic, version, flags = _FILE_HEADER.unpack(head)
    if magic != FILE_MAGIC:
        raise JournalError(f"{path}: not a TKJ1 journal (magic {magic!r})")
    if version != FORMAT_VERSION or flags:
        raise JournalError(
            f"{path}: TKJ1 version {version} flags {flags:#x} is not supported "
            f"(this reader knows version {FORMAT_VERSION})"
        )
    return True


class _Walk:
    """Read the records of ``[start, end)`` of an open journal file, checking each.

    Iterating yields the records. Damage that nothing valid follows is a torn
    tail: the iteration ends and ``torn_at``/``torn_reason`` say where and why
    (with ``strict`` it is corruption instead). Damage followed by a valid
    record, a record that passes its CRC but is not a journal record, and a
    break in the sequence raise :class:`JournalCorruptError`. The counters are
    set once the iteration ends.
    """

    def __init__(
        self,
        path: Path,
        f: IO[bytes],
        start: int,
        end: int,
        first_sequence: int,
        *,
        strict: bool = False,
        index: list[int] | None = None,
    ) -> None:
        self.path = path
        self._f = f
        self._start = start
        self._end = end
        self._first_sequence = first_sequence
        self._strict = strict
        self._index = index
        self.records = 0
        self.last_sequence = first_sequence - 1
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.torn_at: int | None = None
        self.torn_reason = ""

    def __iter__(self) -> Iterator[JournalRecord]:
        f = self._f
        read = f.read
        unpack = _RECORD_HEAD.unpack
        crc32 = zlib.crc32
        decode = _decoder.decode
        index = self._index
        end = self._end
        offset = self._start
        expected = self._first_sequence
        last: JournalRecord | None = None
        f.seek(offset)
        try:
            while offset < end:
                if offset + RECORD_HEADER_SIZE > end:
                    self._damaged(offset, "truncated record header")
                    return
                head = read(RECORD_HEADER_SIZE)
                if len(head) != RECORD_HEADER_SIZE:
                    self._damaged(offset, "truncated record header")
                    return
                length, crc = unpack(head)
                if not _MIN_BODY_SIZE <= length <= MAX_BODY_SIZE:
                    self._damaged(offset, f"impossible record length {length}")
                    return
                stop = offset + RECORD_HEADER_SIZE + length
                if stop > end:
                    self._damaged(offset, "truncated record body")
                    return
                body = read(length)
                if len(body) != length or crc32(body) != crc:
                    self._damaged(offset, "CRC mismatch")
                    return
                try:
                    record = decode(body)
                except msgspec.DecodeError as exc:
                    raise self._corrupt(
                        offset, f"record passes its CRC but is not a journal record ({exc})"
                    ) from exc
                if record.sequence != expected:
                    raise self._corrupt(
                        offset, f"sequence {record.sequence} where {expected} was expected"
                    )
                if index is not None and not (expected - 1) % _INDEX_STRIDE:
                    index.append(offset)
                if last is None:
                    self.first_ts_ns = record.ts_ns
                last = record
                expected += 1
                offset = stop
                yield record
        finally:
            self.records = expected - self._first_sequence
            self.last_sequence = expected - 1
            if last is not None:
                self.last_ts_ns = last.ts_ns

    def _corrupt(self, offset: int, reason: str) -> JournalCorruptError:
        return JournalCorruptError(
            f"{self.path}: corrupt record at offset {offset}: {reason}", self.path, offset
        )

    def _damaged(self, offset: int, reason: str) -> None:
        following = _next_valid_record(self._f, offset + 1, self._end)
        if following is not None:
            raise self._corrupt(
                offset, f"{reason}, followed by a valid record at offset {following}"
            )
        if self._strict:
            raise self._corrupt(offset, reason)
        self.torn_at = offset
        self.torn_reason = reason


def replay(path: str | os.PathLike[str]) -> Iterator[JournalRecord]:
    """Yield the records of a journal in sequence order, without opening it for append.

    A torn final record (a crash while writing) ends the iteration with a
    logged warning; it is not removed from the file. Damage followed by valid
    records raises :class:`JournalCorruptError` after the records before it.
    The file is read up to the size it had when the iteration started, so a
    journal being written can be replayed: only what its writer has handed to
    the OS is seen.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not _read_file_header(f, size, path):
            if size:
                log.warning("%s: torn file header at offset 0; %d bytes ignored", path, size)
            return
        walk = _Walk(path, f, FILE_HEADER_SIZE, size, 1)
        yield from walk
        if walk.torn_at is not None:
            log.warning(
                "%s: torn final record at offset %d (%s); %d bytes ignored",
                path,
                walk.torn_at,
                walk.torn_reason,
                size - walk.torn_at,
            )


def verify(path: str | os.PathLike[str]) -> JournalReport:
    """Read and check every record of a journal and report what it holds.

    Damage is reported in ``error`` rather than raised; only a file that
    cannot be opened raises (:class:`OSError`). Nothing is logged or modified.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            complete = _read_file_header(f, size, path)
        except JournalError as exc:
            return JournalReport(path, size, 0, 0, None, None, None, 0, str(exc), 0)
        if not complete:
            torn_at = 0 if size else None
            return JournalReport(path, size, 0, 0, None, None, torn_at, size, None, None)
        walk = _Walk(path, f, FILE_HEADER_SIZE, size, 1)
        error: JournalCorruptError | None = None
        try:
            for _ in walk:
                pass
        except JournalCorruptError as exc:
            error = exc
        torn_bytes = 0 if walk.torn_at is None else size - walk.torn_at
        return JournalReport(
            path,
            size,
            walk.records,
            walk.last_sequence,
            walk.first_ts_ns,
            walk.last_ts_ns,
            walk.torn_at,
            torn_bytes,
            None if error is None else str(error),
            None if error is None else error.offset,
        )


class Journal:
    """Append records to a TKJ1 journal file; one writer per file.

    Opening reads and checks every record. A torn final record is cut off with
    a logged warning (``truncated_bytes`` says how much); damage followed by
    valid records raises :class:`JournalCorruptError` and leaves the file
    untouched. Appending continues the sequence.

    ``fsync`` sets when records reach the OS and the disk:

    ``"always"``
        :meth:`append` writes the record and fsyncs before it returns.
        Acknowledged records survive a process crash and a machine crash.
    ``"batch"`` (default)
        Records are buffered in memory and written with one ``write`` and one
        fsync once ``batch_records`` are pending, or on the first append at
        least ``batch_interval_ms`` after the oldest pending record (appends
        check the clock; an idle caller uses :meth:`sync_if_due` or
        :meth:`sync`). A process crash loses the records still buffered
        (``last_sequence - written_sequence``); a machine crash loses what was
        not yet fsynced (after ``durable_sequence``). :meth:`sync` makes all
        appended records durable. With ``background_sync`` a due batch is
        written by the append that makes it due, and fsynced by a thread of
        the journal's own (group commit): the caller never waits on the disk,
        ``durable_sequence`` follows a moment later, and a failed fsync makes
        the next call raise.
    ``"never"``
        :meth:`append` writes the record to the OS before it returns, never
        fsyncs unless asked (:meth:`sync`). Acknowledged records survive a
        process crash; a machine crash loses what the OS had not written back
        and may leave a torn tail.

    Whatever the policy, a crash can leave the record being appended (or the
    batch being written) in the journal although it was never acknowledged,
    whole or torn; reopening cuts a torn tail off. After an fsync fails
    the journal refuses further use, since the OS may have dropped the data.
    Not thread-safe: one thread appends (the background fsync thread is internal).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        batch_records: int = 256,
        batch_interval_ms: float = 5.0,
        clock: Callable[[], int] = time.monotonic_ns,
        background_sync: bool = False,
    ) -> None:
        if fsync not in _POLICIES:
            raise ValueError(f"unknown fsync policy {fsync!r}; expected one of {_POLICIES}")
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        if not batch_interval_ms >= 0:
            raise ValueError("batch_interval_ms must be at least 0")
        self.path = Path(path)
        self.fsync: FsyncPolicy = fsync
        self.batch_records = batch_records
        self.batch_interval_ms = batch_interval_ms
        self.truncated_bytes = 0
        self._batch = fsync == "batch"
        self._sync_each = fsync == "always"
        self._interval_ns = int(batch_interval_ms * 1e6)
        self._clock = clock
        self._buffer = bytearray()
        self._pending = 0
        self._batch_started = 0
        self._index: list[int] = []
        self._last_sequence = 0
        self._written_sequence = 0
        self._durable_sequence = 0
        # None while usable; else why not: "closed", or a failure that leaves the file in doubt.
        self._unusable: str | None = None
        self._durable_lock = threading.Lock()
        self._syncer = _BackgroundSync(self) if background_sync and self._batch else None
        self._fd = self._open()
        self._end = os.lseek(self._fd, 0, os.SEEK_END)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        batch_records: int = 256,
        batch_interval_ms: float = 5.0,
        clock: Callable[[], int] = time.monotonic_ns,
        background_sync: bool = False,
    ) -> Self:
        """Open (or create) the journal at ``path`` for appending; see :class:`Journal`.

        ``clock`` (monotonic nanoseconds) times the batch interval.
        """
        return cls(
            path,
            fsync=fsync,
            batch_records=batch_records,
            batch_interval_ms=batch_interval_ms,
            clock=clock,
            background_sync=background_sync,
        )

    def _open(self) -> int:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    raise JournalLockedError(
                        f"{self.path}: already open for writing by another Journal"
                    ) from exc
            self._recover(fd)
            if created and self.fsync != "never":
                fsync_directory(self.path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _recover(self, fd: int) -> None:
        """Check every record, cut off a torn tail, and learn the last sequence."""
        with open(fd, "rb", closefd=False) as f:
            size = os.fstat(fd).st_size
            if not _read_file_header(f, size, self.path):
                if size:
                    log.warning(
                        "%s: torn file header at offset 0; truncating %d bytes", self.path, size
                    )
                    self.truncated_bytes = size
                os.ftruncate(fd, 0)
                os.pwrite(fd, _HEADER_BYTES, 0)
                self._sync_opened(fd)
                return
            walk = _Walk(self.path, f, FILE_HEADER_SIZE, size, 1, index=self._index)
            for _ in walk:
                pass
        self._last_sequence = self._written_sequence = walk.last_sequence
        if walk.torn_at is not None:
            log.warning(
                "%s: torn final record at offset %d (%s); truncating %d bytes",
                self.path,
                walk.torn_at,
                walk.torn_reason,
                size - walk.torn_at,
            )
            self.truncated_bytes = size - walk.torn_at
            os.ftruncate(fd, walk.torn_at)
        self._sync_opened(fd)

    def _sync_opened(self, fd: int) -> None:
        """Make what the file holds after opening durable, unless the policy is never."""
        # A previous writer may have used "never", or have been killed before its
        # fsync: what is in the file is known durable only once synced here.
        if self.fsync != "never":
            os.fsync(fd)
            self._durable_sequence = self._written_sequence

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record appended (0 for an empty journal)."""
        return self._last_sequence

    @property
    def records(self) -> int:
        """How many records the journal holds, buffered ones included."""
        return self._last_sequence

    @property
    def written_sequence(self) -> int:
        """The last sequence handed to the OS: it survives a process crash."""
        return self._written_sequence

    @property
    def durable_sequence(self) -> int:
        """The last sequence known to be fsynced: it survives a machine crash."""
        return self._durable_sequence

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._unusable == "closed"

    def append(self, kind: str, payload: Any, ts_ns: int | None = None) -> int:
        """Append one record and return its sequence; see the class for when it is durable.

        ``payload`` is any value MessagePack can hold (typically bytes from
        ``tradekernel_sdk.codec.encode``); ``ts_ns`` defaults to the wall
        clock. A value that cannot be encoded raises and uses no sequence.
        """
        if self._unusable is not None:
            self._refuse()
        if type(kind) is not str:
            raise TypeError(f"kind must be a str, not {type(kind).__name__}")
        if ts_ns is None:
            ts_ns = time.time_ns()
        elif type(ts_ns) is not int:
            ts_ns = int(operator.index(ts_ns))
        sequence = self._last_sequence + 1
        body = _encoder.encode((sequence, ts_ns, kind, payload))
        length = len(body)
        if length > MAX_BODY_SIZE:
            raise ValueError(f"record of {length} bytes exceeds {MAX_BODY_SIZE} bytes")
        buffer = self._buffer
        mark = len(buffer)
        if not (sequence - 1) % _INDEX_STRIDE:
            self._index.append(self._end + mark)
        buffer += _RECORD_HEAD.pack(length, zlib.crc32(body))
        buffer += body
        self._last_sequence = sequence
        if self._batch:
            self._pending += 1
            if mark == 0:
                self._batch_started = self._clock()
            if (
                self._pending >= self.batch_records
                or self._clock() - self._batch_started >= self._interval_ns
            ):
                syncer = self._syncer
                if syncer is None:
                    self._commit(mark, sync=True)
                else:
                    self._commit(mark, sync=False)
                    syncer.request(self._written_sequence)
        else:
            self._commit(mark, sync=self._sync_each)
        return sequence

    def _commit(self, mark: int, *, sync: bool) -> None:
        """Write the buffer (and fsync); on a failed write, withdraw the last record."""
        try:
            self._write_buffer()
        except BaseException:
            sequence = self._last_sequence
            del self._buffer[mark:]
            self._last_sequence = sequence - 1
            self._pending = max(self._pending - 1, 0)
            if not (sequence - 1) % _INDEX_STRIDE:
                self._index.pop()
            raise
        if sync:
            self._fsync()

    def _write_buffer(self) -> None:
        """Hand the buffered records to the OS in one write; on failure, leave none of them."""
        buffer = self._buffer
        if not buffer:
            return
        fd = self._fd
        try:
            done = os.write(fd, buffer)
            while done < len(buffer):
                done += os.write(fd, buffer[done:])
        except BaseException:
            try:
                os.ftruncate(fd, self._end)
                os.lseek(fd, self._end, os.SEEK_SET)
            except OSError as exc:
                self._unusable = f"a failed write could not be undone ({exc})"
            raise
        self._end += len(buffer)
        buffer.clear()
        self._pending = 0
        self._written_sequence = self._last_sequence

    def _fsync(self, upto: int | None = None) -> None:
        """fsync the file; records up to ``upto`` (default: all written) are then durable."""
        if upto is None:
            upto = self._written_sequence
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages and
            # a retry can report success: nothing written since can be trusted.
            self._unusable = f"fsync failed ({exc})"
            raise JournalError(f"{self.path}: fsync failed; the journal is unusable") from exc
        # The background thread and sync() may both fsync: durability only grows.
        with self._durable_lock:
            self._durable_sequence = max(self._durable_sequence, upto)

    def _refuse(self) -> None:
        if self._unusable == "closed":
            raise JournalError(f"{self.path}: the journal is closed")
        raise JournalError(f"{self.path}: the journal is unusable: {self._unusable}")

    def flush(self) -> int:
        """Hand every buffered record to the OS without fsync; return ``written_sequence``.

        The records then survive a process crash, not a machine crash.
        """
        if self._unusable is not None:
            self._refuse()
        self._write_buffer()
        return self._written_sequence

    def sync(self) -> int:
        """Write and fsync every appended record, whatever the policy; return the sequence.

        When it returns, every record up to ``durable_sequence`` survives a
        machine crash.
        """
        if self._unusable is not None:
            self._refuse()
        self._write_buffer()
        if self._durable_sequence != self._written_sequence:
            self._fsync()
        return self._durable_sequence

    def sync_if_due(self) -> bool:
        """Sync when the batch interval has run out for a pending record; return whether it did.

        For a batch journal whose caller may go quiet: call it from a timer so
        that pending records are not kept longer than ``batch_interval_ms``.
        """
        if self._unusable is not None:
            self._refuse()
        if not self._buffer or self._clock() - self._batch_started < self._interval_ns:
            return False
        self.sync()
        return True

    def records_since(self, sequence: int) -> Iterator[JournalRecord]:
        """Yield the records after ``sequence`` (all of them for 0), up to the current last one.

        Buffered records are handed to the OS first (no fsync) so that they can
        be read back. Records appended while iterating are not included.
        """
        if sequence < 0:
            raise ValueError("sequence must be at least 0")
        self.flush()
        return self._read_since(sequence, self._end, self._written_sequence)

    def _read_since(self, sequence: int, end: int, last: int) -> Iterator[JournalRecord]:
        if sequence >= last:
            return
        slot = sequence // _INDEX_STRIDE
        with open(self.path, "rb") as f:
            walk = _Walk(
                self.path, f, self._index[slot], end, slot * _INDEX_STRIDE + 1, strict=True
            )
            for record in walk:
                if record.sequence > sequence:
                    yield record

    def close(self) -> None:
        """Write (and, unless the policy is ``never``, fsync) what is buffered, and close.

        Closing twice is harmless. A journal made unusable by a failed fsync is
        closed without writing its buffered records.
        """
        if self._unusable == "closed":
            return
        if self._syncer is not None:
            self._syncer.stop()  # before the fd closes under its fsync
        try:
            if self._unusable is None:
                self._write_buffer()
                if self.fsync != "never" and self._durable_sequence != self._written_sequence:
                    self._fsync()
            elif self._buffer:
                log.error(
                    "%s: closing an unusable journal; %d buffered records are lost",
                    self.path,
                    self._last_sequence - self._written_sequence,
                )
        finally:
            self._unusable = "closed"
            os.close(self._fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Journal({str(self.path)!r}, fsync={self.fsync!r}, "
            f"last_sequence={self._last_sequence}, durable_sequence={self._durable_sequence})"
        )


class _BackgroundSync:
    """One thread that fsyncs a batch journal's written records, off the caller's path.

    Requests coalesce: while an fsync runs, later requests wait and are served
    by the next one, which covers every record written before it starts.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._wanted = 0
        self._stopping = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def request(self, upto: int) -> None:
        """Ask for records up to ``upto`` to be made durable."""
        with self._condition:
            self._wanted = max(self._wanted, upto)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"journal-sync:{self._journal.path.name}", daemon=True
                )
                self._thread.start()
            self._condition.notify()

    def stop(self) -> None:
        """Finish the fsync in progress, if any, and end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        journal = self._journal
        while True:
            with self._condition:
                while not self._stopping and self._wanted <= journal.durable_sequence:
                    self._condition.wait()
                if self._stopping:
                    return
                upto = self._wanted
            try:
                journal._fsync(upto)
            except JournalError:
                log.exception("%s: background fsync failed", journal.path)
                return
