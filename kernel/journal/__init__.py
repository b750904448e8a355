"""The command and event journal: TKJ1 files the order manager appends to and replays."""

from kernel.journal.journal import (
    FILE_HEADER_SIZE,
    FILE_MAGIC,
    FORMAT_VERSION,
    MAX_BODY_SIZE,
    RECORD_HEADER_SIZE,
    FsyncPolicy,
    Journal,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalRecord,
    JournalReport,
    replay,
    verify,
)

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
