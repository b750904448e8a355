"""Append to a journal until killed, printing each acknowledged sequence on its own line.

Usage: ``python _crash_child.py PATH POLICY BATCH_RECORDS``. A record counts as acknowledged
once the policy promises it survives a process crash: when ``append`` returns
for "always" and "never", once it is handed to the OS for "batch".
"""

from __future__ import annotations

import sys

from kernel.journal import Journal


def payload_for(sequence: int) -> list[object]:
    """Return the payload the record with ``sequence`` carries."""
    return [sequence, f"order-{sequence}", bytes([sequence % 256]) * 64]


def main() -> None:
    path, policy, batch_records = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = sys.stdout
    with Journal.open(
        path,
        fsync=policy,  # type: ignore[arg-type]
        batch_records=batch_records,
        batch_interval_ms=10_000,
    ) as journal:
        acknowledged = journal.last_sequence
        while True:
            sequence = journal.append("crash.test", payload_for(journal.last_sequence + 1))
            written = sequence if policy != "batch" else journal.written_sequence
            if written != acknowledged:
                acknowledged = written
                out.write(f"{acknowledged}\n")
                out.flush()


if __name__ == "__main__":
    main()
