"""The TKJ1 journal: layout, fsync policies, torn tails, corruption, locking, reading back."""

from __future__ import annotations

import errno
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from kernel.journal import (
    FILE_HEADER_SIZE,
    MAX_BODY_SIZE,
    RECORD_HEADER_SIZE,
    Journal,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalRecord,
    replay,
    verify,
)
from tradekernel_sdk import codec
from tradekernel_sdk.types import Quote

LOGGER = "kernel.journal"


def payload_for(sequence: int) -> dict[str, Any]:
    return {"order": f"c-{sequence:06d}", "qty": sequence * 10, "raw": bytes([sequence % 256]) * 8}


def write_journal(path: Path, count: int, **options: Any) -> None:
    with Journal.open(path, **options) as journal:
        for sequence in range(1, count + 1):
            journal.append("test.event", payload_for(sequence), ts_ns=1_000 + sequence)


def expected_records(count: int) -> list[JournalRecord]:
    return [
        JournalRecord(sequence, 1_000 + sequence, "test.event", payload_for(sequence))
        for sequence in range(1, count + 1)
    ]


def record_spans(path: Path) -> list[tuple[int, int]]:
    """Return ``(start, end)`` of each record, from the length fields alone."""
    data = path.read_bytes()
    spans = []
    offset = FILE_HEADER_SIZE
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        end = offset + RECORD_HEADER_SIZE + length
        spans.append((offset, end))
        offset = end
    return spans


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


class FakeClock:
    """A monotonic nanosecond clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += int(ms * 1_000_000)


class FsyncCounter:
    """Counts ``os.fsync`` calls and the file size each one saw."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = os.fsync

        def counting(fd: int) -> None:
            self.sizes.append(os.fstat(fd).st_size)
            real(fd)

        monkeypatch.setattr(os, "fsync", counting)

    @property
    def calls(self) -> int:
        return len(self.sizes)


# -- layout and round trips ----------------------------------------------------


def test_file_layout_matches_the_specification(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with Journal.open(path) as journal:
        assert journal.append("k", b"xy", ts_ns=5) == 1

    # MessagePack [1, 5, "k", b"xy"]: fixarray(4), fixint 1, fixint 5, fixstr "k", bin8 "xy".
    body = bytes([0x94, 0x01, 0x05, 0xA1, 0x6B, 0xC4, 0x02, 0x78, 0x79])
    expected = (
        b"TKJ1" + struct.pack("<HH", 1, 0) + struct.pack("<II", len(body), zlib.crc32(body)) + body
    )
    assert path.read_bytes() == expected
    assert FILE_HEADER_SIZE == 8
    assert RECORD_HEADER_SIZE == 8


def test_records_round_trip_through_replay_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 50)
    assert list(replay(path)) == expected_records(50)
    with Journal.open(path) as journal:
        assert journal.last_sequence == journal.records == 50
        assert journal.truncated_bytes == 0


def test_sdk_structs_encoded_by_the_codec_come_back_as_bytes(tmp_path: Path) -> None:
    quote = Quote("binance", "BTCUSDT", 6173763, 150, 6173764, 90, 42, 1_700_000_000, 1_700_000_001)
    path = tmp_path / "j.tkj"
    with Journal.open(path) as journal:
        journal.append("data.quote", codec.encode(quote))
    (record,) = replay(path)
    assert isinstance(record.payload, bytes)
    assert codec.decode(record.payload) == quote


def test_append_stamps_the_wall_clock_when_no_timestamp_is_given(tmp_path: Path) -> None:
    before = time.time_ns()
    with Journal.open(tmp_path / "j.tkj") as journal:
        journal.append("k", None)
    (record,) = replay(tmp_path / "j.tkj")
    assert before <= record.ts_ns <= time.time_ns()


def test_sequences_are_contiguous_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with Journal.open(path) as journal:
        assert [journal.append("a", i) for i in range(3)] == [1, 2, 3]
    with Journal.open(path) as journal:
        assert journal.last_sequence == 3
        assert [journal.append("b", i) for i in range(2)] == [4, 5]
    with Journal.open(path, fsync="always") as journal:
        assert journal.append("c", None) == 6
    assert [record.sequence for record in replay(path)] == [1, 2, 3, 4, 5, 6]
    assert [record.kind for record in replay(path)] == ["a"] * 3 + ["b"] * 2 + ["c"]


def test_an_empty_journal_is_a_header_only(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    Journal.open(path).close()
    assert path.read_bytes() == b"TKJ1\x01\x00\x00\x00"
    assert list(replay(path)) == []
    report = verify(path)
    assert (report.records, report.last_sequence, report.ok) == (0, 0, True)


# -- fsync policies ------------------------------------------------------------


def test_always_policy_fsyncs_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.tkj"
    Journal.open(path).close()
    with Journal.open(path, fsync="always") as journal:
        fsyncs = FsyncCounter(monkeypatch)
        for sequence in range(1, 11):
            journal.append("k", payload_for(sequence))
            # append returned: its record was in the file when the fsync ran.
            assert fsyncs.calls == sequence
            assert fsyncs.sizes[-1] == path.stat().st_size
            assert journal.durable_sequence == sequence
    assert fsyncs.calls == 10  # closing has nothing left to sync
    assert len(list(replay(path))) == 10


def test_batch_policy_flushes_on_count_and_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    Journal.open(path).close()
    header_only = path.stat().st_size
    clock = FakeClock()
    journal = Journal.open(path, fsync="batch", batch_records=4, batch_interval_ms=5.0, clock=clock)
    fsyncs = FsyncCounter(monkeypatch)

    # Count: three records wait in memory, the fourth writes and syncs all four.
    for _ in range(3):
        journal.append("k", "x")
    assert path.stat().st_size == header_only
    assert (journal.written_sequence, journal.durable_sequence, fsyncs.calls) == (0, 0, 0)
    journal.append("k", "x")
    assert (journal.written_sequence, journal.durable_sequence, fsyncs.calls) == (4, 4, 1)
    assert len(list(replay(path))) == 4

    # Interval: measured from the oldest pending record, checked on append.
    clock.advance_ms(100)  # idle time before a batch starts does not count
    journal.append("k", "x")
    clock.advance_ms(4.9)
    journal.append("k", "x")
    assert (journal.durable_sequence, fsyncs.calls) == (4, 1)
    clock.advance_ms(0.1)
    journal.append("k", "x")
    assert (journal.durable_sequence, fsyncs.calls) == (7, 2)

    # An idle caller drives the interval with sync_if_due.
    journal.append("k", "x")
    assert journal.sync_if_due() is False
    clock.advance_ms(5)
    assert journal.sync_if_due() is True
    assert (journal.durable_sequence, fsyncs.calls) == (8, 3)
    assert journal.sync_if_due() is False

    # flush hands records to the OS without fsync; sync makes them durable.
    journal.append("k", "x")
    assert journal.flush() == 9
    assert (journal.written_sequence, journal.durable_sequence, fsyncs.calls) == (9, 8, 3)
    assert journal.sync() == 9
    assert (journal.durable_sequence, fsyncs.calls) == (9, 4)
    assert journal.sync() == 9
    assert fsyncs.calls == 4  # nothing new to sync

    # close syncs what is pending.
    journal.append("k", "x")
    journal.close()
    assert fsyncs.calls == 5
    assert [r.sequence for r in replay(path)] == list(range(1, 11))


def test_batch_policy_with_zero_interval_syncs_every_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal.open(tmp_path / "j.tkj", batch_interval_ms=0, clock=FakeClock()) as journal:
        fsyncs = FsyncCounter(monkeypatch)
        journal.append("k", 1)
        journal.append("k", 2)
        assert fsyncs.calls == 2


def test_opening_syncs_what_an_earlier_writer_left_unless_the_policy_is_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 3, fsync="never")
    fsyncs = FsyncCounter(monkeypatch)
    with Journal.open(path, fsync="never") as journal:
        assert (journal.written_sequence, journal.durable_sequence) == (3, 0)
    assert fsyncs.calls == 0
    with Journal.open(path, fsync="batch") as journal:
        assert (journal.written_sequence, journal.durable_sequence) == (3, 3)
    assert fsyncs.calls == 1


def test_never_policy_writes_each_record_to_the_os_and_never_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    fsyncs = FsyncCounter(monkeypatch)
    with Journal.open(path, fsync="never") as journal:
        for sequence in range(1, 6):
            journal.append("k", sequence)
            assert journal.written_sequence == sequence
            assert [r.payload for r in replay(path)] == list(range(1, sequence + 1))
        assert journal.durable_sequence == 0
    assert fsyncs.calls == 0

    with Journal.open(path, fsync="never") as journal:
        journal.append("k", 6)
        assert journal.sync() == 6  # an explicit sync still syncs
    assert fsyncs.calls == 1


def test_bad_options_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with pytest.raises(ValueError, match="fsync policy"):
        Journal.open(path, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_records"):
        Journal.open(path, batch_records=0)
    with pytest.raises(ValueError, match="batch_interval_ms"):
        Journal.open(path, batch_interval_ms=-1)


# -- what append refuses and how failures leave the journal -------------------


def test_a_refused_append_uses_no_sequence(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with Journal.open(path, fsync="always") as journal:
        journal.append("k", 1)
        with pytest.raises(TypeError):
            journal.append("k", object())
        with pytest.raises(TypeError, match="kind"):
            journal.append(b"k", 1)  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            journal.append("k", 2**64)
        with pytest.raises(ValueError, match="exceeds"):
            journal.append("k", b"x" * MAX_BODY_SIZE)
        assert journal.append("k", 2) == 2
    assert [(r.sequence, r.payload) for r in replay(path)] == [(1, 1), (2, 2)]


def test_a_failed_write_leaves_no_partial_record_and_no_sequence_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    journal = Journal.open(path, fsync="always")
    journal.append("k", 1)
    size = path.stat().st_size
    real_write = os.write

    def disk_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        journal.append("k", 2)
    assert path.stat().st_size == size
    assert journal.last_sequence == 1

    monkeypatch.setattr(os, "write", real_write)
    assert journal.append("k", 3) == 2
    journal.close()
    assert [(r.sequence, r.payload) for r in replay(path)] == [(1, 1), (2, 3)]


def test_a_failed_fsync_makes_the_journal_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open(tmp_path / "j.tkj", fsync="always")
    journal.append("k", 1)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(JournalError, match="fsync failed"):
        journal.append("k", 2)
    assert journal.durable_sequence == 1
    with pytest.raises(JournalError, match="unusable"):
        journal.append("k", 3)
    with pytest.raises(JournalError, match="unusable"):
        journal.flush()
    with pytest.raises(JournalError, match="unusable"):
        journal.sync()
    journal.close()
    assert journal.closed


def test_a_closed_journal_refuses_appends_and_closes_twice_quietly(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.tkj")
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append("k", 1)


# -- torn tails and corruption -------------------------------------------------


def test_torn_last_record_is_truncated_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = tmp_path / "full.tkj"
    write_journal(original, 5)
    data = original.read_bytes()
    start, end = record_spans(original)[-1]
    path = tmp_path / "cut.tkj"
    for cut in range(start + 1, end):
        path.write_bytes(data[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            journal = Journal.open(path)
        assert journal.last_sequence == 4, cut
        assert journal.truncated_bytes == cut - start
        assert f"offset {start}" in caplog.text
        assert f"truncating {cut - start} bytes" in caplog.text
        # The torn record is gone from the file and its sequence is reused.
        assert path.stat().st_size == start
        assert journal.append("test.event", payload_for(5), ts_ns=1_005) == 5
        journal.close()
        assert list(replay(path)) == expected_records(5)


def test_a_clean_cut_between_records_is_not_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 5)
    start, _ = record_spans(path)[-1]
    os.truncate(path, start)
    with caplog.at_level(logging.WARNING, logger=LOGGER), Journal.open(path) as journal:
        assert (journal.last_sequence, journal.truncated_bytes) == (4, 0)
    assert caplog.text == ""


def test_any_damaged_byte_of_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    original = tmp_path / "full.tkj"
    write_journal(original, 5)
    start, end = record_spans(original)[-1]
    path = tmp_path / "damaged.tkj"
    for offset in range(start, end):
        path.write_bytes(original.read_bytes())
        flip_byte(path, offset)
        with Journal.open(path) as journal:
            assert journal.last_sequence == 4, offset
            assert journal.truncated_bytes == end - start
        assert list(replay(path)) == expected_records(4)


def test_a_zero_filled_tail_after_a_machine_crash_is_torn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 3)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(8192))
    with caplog.at_level(logging.WARNING, logger=LOGGER), Journal.open(path) as journal:
        assert (journal.last_sequence, journal.truncated_bytes) == (3, 8192)
    assert f"offset {size}" in caplog.text
    assert path.stat().st_size == size


@pytest.mark.parametrize("where", ["length", "crc", "body"])
def test_corruption_before_valid_records_raises(tmp_path: Path, where: str) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 6)
    start, end = record_spans(path)[2]
    flip_byte(path, {"length": start + 1, "crc": start + 5, "body": end - 1}[where])
    damaged = path.read_bytes()

    with pytest.raises(JournalCorruptError, match=f"offset {start}") as raised:
        Journal.open(path)
    assert raised.value.offset == start
    assert path.read_bytes() == damaged  # never repaired by dropping data

    seen: list[JournalRecord] = []
    with pytest.raises(JournalCorruptError):
        seen.extend(replay(path))
    assert seen == expected_records(2)

    report = verify(path)
    assert not report.ok
    assert report.error_offset == start
    assert report.records == 2


def test_zeroed_pages_before_valid_records_are_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 6)
    start, end = record_spans(path)[1]
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(end - start))
    with pytest.raises(JournalCorruptError) as raised:
        Journal.open(path)
    assert raised.value.offset == start


def test_a_record_out_of_sequence_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 2)
    body = bytes([0x94, 0x07, 0x05, 0xA1, 0x6B, 0xC0])  # [7, 5, "k", nil]
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    with pytest.raises(JournalCorruptError, match="sequence 7 where 3"):
        Journal.open(path)
    assert verify(path).error_offset == size


def test_a_record_that_passes_its_crc_but_does_not_decode_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 2)
    body = bytes([0x93, 0x03, 0x05, 0xA1, 0x6B, 0xC0])  # a 3-element array
    with open(path, "ab") as f:
        f.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    with pytest.raises(JournalCorruptError, match="not a journal record"):
        Journal.open(path)


def test_a_torn_file_header_is_rewritten(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.tkj"
    path.write_bytes(b"TKJ")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert list(replay(path)) == []
    assert "torn file header" in caplog.text
    assert verify(path).torn_tail_bytes == 3
    with Journal.open(path) as journal:
        assert journal.truncated_bytes == 3
        journal.append("k", 1)
    assert [r.payload for r in replay(path)] == [1]


def test_a_file_that_is_not_a_journal_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, world")
    with pytest.raises(JournalError, match="not a TKJ1 journal"):
        Journal.open(path)
    assert path.read_bytes() == b"hello, world"
    assert not verify(path).ok

    path.write_bytes(b"TKJ1" + struct.pack("<HH", 2, 0))
    with pytest.raises(JournalError, match="version 2"):
        list(replay(path))


# -- readers -------------------------------------------------------------------


def test_verify_reports_counts_timestamps_and_a_torn_tail_without_repairing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 4)
    report = verify(path)
    assert report.ok
    assert (report.records, report.last_sequence) == (4, 4)
    assert (report.first_ts_ns, report.last_ts_ns) == (1_001, 1_004)
    assert (report.torn_tail_offset, report.torn_tail_bytes) == (None, 0)
    assert report.size == path.stat().st_size

    start, end = record_spans(path)[-1]
    os.truncate(path, end - 1)
    report = verify(path)
    assert report.ok
    assert (report.records, report.last_ts_ns) == (3, 1_003)
    assert (report.torn_tail_offset, report.torn_tail_bytes) == (start, end - 1 - start)
    assert path.stat().st_size == end - 1


def test_replay_of_a_torn_tail_logs_and_leaves_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.tkj"
    write_journal(path, 3)
    start, end = record_spans(path)[-1]
    os.truncate(path, end - 2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert list(replay(path)) == expected_records(2)
    assert f"offset {start}" in caplog.text
    assert path.stat().st_size == end - 2


def test_records_since_reads_back_everything_after_a_sequence(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with Journal.open(path, batch_records=999, clock=FakeClock()) as journal:
        for sequence in range(1, 3001):
            journal.append("k", sequence)
        # Buffered records are included.
        assert journal.written_sequence < 3000
        assert [r.sequence for r in journal.records_since(0)] == list(range(1, 3001))
        assert [r.payload for r in journal.records_since(2047)] == list(range(2048, 3001))
        assert [r.sequence for r in journal.records_since(2999)] == [3000]
        assert list(journal.records_since(3000)) == []
        with pytest.raises(ValueError):
            journal.records_since(-1)

    with Journal.open(path) as journal:
        assert [r.sequence for r in journal.records_since(1024)][:2] == [1025, 1026]
        journal.append("k", 3001)
        assert [r.payload for r in journal.records_since(2998)] == [2999, 3000, 3001]


def test_records_since_stops_at_the_last_record_when_it_was_called(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.tkj", fsync="never") as journal:
        journal.append("k", 1)
        records = journal.records_since(0)
        journal.append("k", 2)
        assert [r.payload for r in records] == [1]


# -- one writer ----------------------------------------------------------------


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    with Journal.open(path) as journal:
        journal.append("k", 1)
        with pytest.raises(JournalLockedError, match="already open for writing"):
            Journal.open(path)
        # Readers need no lock.
        journal.flush()
        assert [r.payload for r in replay(path)] == [1]
        assert verify(path).records == 1
    with Journal.open(path) as journal:
        assert journal.last_sequence == 1


def test_a_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.tkj"
    child = (
        "import sys\n"
        "from kernel.journal import Journal, JournalLockedError\n"
        "try:\n"
        "    Journal.open(sys.argv[1])\n"
        "except JournalLockedError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with Journal.open(path):
        result = subprocess.run(
            [sys.executable, "-c", child, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 3, result.stderr
    assert "already open for writing" in result.stdout


def test_background_sync_makes_due_batches_durable_off_the_appenders_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    Journal.open(path).close()
    appender = threading.get_ident()
    synced_on: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        synced_on.append(threading.get_ident())
        time.sleep(0.05)  # a slow disk: the appender must not wait for it
        real_fsync(fd)

    journal = Journal.open(path, fsync="batch", batch_records=4, background_sync=True)
    monkeypatch.setattr(os, "fsync", slow_fsync)
    started = time.perf_counter()
    for _ in range(4):
        journal.append("k", "x")
    assert time.perf_counter() - started < 0.04  # the due batch was written, not waited on
    assert journal.written_sequence == 4
    assert len(list(replay(path))) == 4  # in the file (a process crash keeps it) at once
    deadline = time.monotonic() + 5
    while journal.durable_sequence < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert journal.durable_sequence == 4
    assert synced_on and appender not in synced_on
    for _ in range(2):
        journal.append("k", "x")
    journal.close()  # stops the thread, then syncs the rest on the caller's thread
    assert journal.durable_sequence == 6
    assert synced_on[-1] == appender
    assert len(list(replay(path))) == 6


def test_a_failed_background_fsync_makes_the_next_append_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.tkj"
    journal = Journal.open(path, fsync="batch", batch_records=2, background_sync=True)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    journal.append("k", "x")
    journal.append("k", "x")  # due: written, and the fsync fails in the background
    deadline = time.monotonic() + 5
    while journal.durable_sequence == 0 and time.monotonic() < deadline:
        try:
            journal.append("k", "x")
        except JournalError as error:
            assert "fsync failed" in str(error)
            break
        time.sleep(0.005)
    else:
        raise AssertionError("the failed fsync was never reported")
    assert journal.durable_sequence == 0
    journal.close()
