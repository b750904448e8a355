"""Property-based tests: any payloads round-trip; a cut anywhere leaves a prefix."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.journal import (
    FILE_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    Journal,
    JournalRecord,
    replay,
    verify,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
payloads = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-1000, 1000), children, max_size=5)
    ),
    max_leaves=20,
)
entries = st.lists(
    st.tuples(
        st.text(max_size=24),
        payloads,
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.sampled_from(["append", "flush", "sync"]),
    ),
    max_size=40,
)


def write(path: Path, batch: list[tuple[str, Any, int, str]], **options: Any) -> None:
    with Journal.open(path, **options) as journal:
        for kind, payload, ts_ns, then in batch:
            journal.append(kind, payload, ts_ns)
            if then == "flush":
                journal.flush()
            elif then == "sync":
                journal.sync()


@settings(max_examples=150, deadline=None)
@given(
    first=entries,
    second=entries,
    policy=st.sampled_from(["always", "batch", "never"]),
    batch_records=st.integers(min_value=1, max_value=8),
)
def test_random_payloads_round_trip_across_reopens(
    first: list[tuple[str, Any, int, str]],
    second: list[tuple[str, Any, int, str]],
    policy: str,
    batch_records: int,
) -> None:
    expected = [
        JournalRecord(sequence, ts_ns, kind, payload)
        for sequence, (kind, payload, ts_ns, _) in enumerate(first + second, start=1)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.tkj"
        write(path, first, fsync=policy, batch_records=batch_records)
        write(path, second, fsync=policy, batch_records=batch_records)
        assert list(replay(path)) == expected
        with Journal.open(path) as journal:
            assert journal.last_sequence == len(expected)
            since = len(first)
            assert list(journal.records_since(since)) == expected[since:]
        assert verify(path).records == len(expected)


@settings(max_examples=150, deadline=None)
@given(batch=entries.filter(bool), data=st.data())
def test_a_cut_anywhere_keeps_exactly_the_whole_records_before_it(
    batch: list[tuple[str, Any, int, str]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.tkj"
        write(path, batch)
        original = list(replay(path))
        full = path.read_bytes()
        ends = record_ends(full)
        cut = data.draw(st.integers(min_value=FILE_HEADER_SIZE, max_value=len(full)))
        path.write_bytes(full[:cut])

        whole = [end for end in ends if end <= cut]
        with Journal.open(path) as journal:
            assert journal.last_sequence == len(whole)
            assert journal.truncated_bytes == cut - max(whole, default=FILE_HEADER_SIZE)
        assert list(replay(path)) == original[: len(whole)]


def record_ends(data: bytes) -> list[int]:
    """Return where each record ends, from the length fields alone."""
    ends = []
    offset = FILE_HEADER_SIZE
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        offset += RECORD_HEADER_SIZE + length
        ends.append(offset)
    return ends
