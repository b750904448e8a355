"""Recording and replay input: the TKR1 format and readers for existing captures."""

from kernel.recording.format import (
    BLOCK_HEADER_SIZE,
    CODECS,
    FILE_HEADER_SIZE,
    FORMAT_VERSION,
    BlockInfo,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    read_recording,
)
from kernel.recording.readers import (
    FORMATS,
    CryptofeedJsonlReader,
    CryptofeedTextReader,
    FrameSource,
    HftbacktestReader,
    decimal_seconds_to_ns,
    detect_format,
    merge_frames,
    open_frames,
    open_reader,
)

__all__ = [
    "BLOCK_HEADER_SIZE",
    "CODECS",
    "FILE_HEADER_SIZE",
    "FORMATS",
    "FORMAT_VERSION",
    "BlockInfo",
    "CryptofeedJsonlReader",
    "CryptofeedTextReader",
    "FrameSource",
    "HftbacktestReader",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "decimal_seconds_to_ns",
    "detect_format",
    "merge_frames",
    "open_frames",
    "open_reader",
    "read_recording",
]
