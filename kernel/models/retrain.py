"""Retraining: a stored version's training run repeated on recent recordings, as a new version.

The configuration comes from the source version's ``metadata.json``
(``training_config``, the configuration ``tradekernel train`` resolved), with
only the data, the repository and the checkpoint folder replaced. Training
runs ``tradekernel train`` in a child process (``python -m kernel train``),
so this module, and the kernel that calls it, never imports torch. The
result is the next version of the same name; where it goes from there
(shadow, never production) is the caller's choice: ``tradekernel models
retrain --api`` and :mod:`kernel.serving.retrain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kernel.models.repository import ModelFileError, ModelRepository, ModelVersion

__all__ = [
    "RetrainConfigError",
    "RetrainError",
    "RetrainJob",
    "RetrainResult",
    "derive_config",
    "prepare",
    "recent_recordings",
    "retrain",
    "retrain_async",
    "to_toml",
]

_STORED: Final = re.compile(r"^([A-Za-z0-9_-]+):(\d+) (.+)$")
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_REASON_LINES: Final = 3


class RetrainError(Exception):
    """Retraining failed: unusable data, or training itself failed. Exit status 1."""

    exit_status = 1


class RetrainConfigError(RetrainError):
    """No training configuration can be derived, or training refused it or lacks torch.

    Exit status 2.
    """

    exit_status = 2


@dataclass(frozen=True)
class RetrainResult:
    """The new version, the version it repeats, and what it was trained on."""

    source: ModelVersion
    version: ModelVersion
    files: list[Path]
    seconds: float
    output: str = ""
    """The training command's standard error: progress and each fold's figures."""

    @property
    def same_data(self) -> bool:
        """Return whether the data's SHA-256 hashes equal the source version's."""
        return _hashes(self.source) == _hashes(self.version)


def _hashes(version: ModelVersion) -> list[str]:
    data = version.metadata.get("data")
    if not isinstance(data, list):
        return []
    return sorted(str(entry.get("sha256")) for entry in data if isinstance(entry, Mapping))


def recent_recordings(directory: Path, last: int | None = None) -> list[Path]:
    """Return the newest ``last`` recordings in ``directory`` (all without ``last``), oldest first.

    Every regular file not starting with ``.`` counts, newest by modification
    time (then by name: the recorder's names sort in time).
    """
    if last is not None and last < 1:
        raise RetrainConfigError(f"last: at least 1, got {last}")
    if not directory.is_dir():
        raise RetrainError(f"{directory}: no such recording folder")
    found = []
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file():
                found.append((entry.stat().st_mtime_ns, entry.name, entry))
    if not found:
        raise RetrainError(f"{directory}: holds no recording")
    found.sort()
    chosen = found if last is None else found[-last:]
    return [entry for _, _, entry in chosen]


def derive_config(
    source: ModelVersion, files: Sequence[Path], repository: Path, checkpoints: Path
) -> dict[str, Any]:
    """Return the training configuration of ``source`` with new data, repository and checkpoints.

    Everything else — venue, symbol, levels, window, normalisation, feature
    set, horizon, threshold, network sizes, splits, training and export
    settings — is the source's own.
    """
    recorded = source.metadata.get("training_config")
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("data"), Mapping):
        raise RetrainConfigError(
            f"{source.name}:{source.version} cannot be retrained: its metadata.json does not "
            "record the training configuration (training_config; versions stored before "
            "retraining existed lack it); train it again with tradekernel train --config FILE"
        )
    table: dict[str, Any] = copy.deepcopy(dict(recorded))
    table["name"] = source.name
    table["repository"] = str(repository.resolve())
    table["checkpoint_dir"] = str(checkpoints)
    data = table["data"] = dict(table["data"])
    data["files"] = [str(path.resolve()) for path in files]
    # Name the book trained on: new recordings may carry several.
    if not data.get("symbol") and source.metadata.get("symbol"):
        data["symbol"] = source.metadata["symbol"]
    training = table["training"] = dict(table.get("training") or {})
    training["progress"] = False
    return table


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # 'inf', '-inf', '1e-05': all TOML floats
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, Mapping):
        items = [f"{_key(str(k))} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(item) for item in value]
    return value


def to_toml(table: Mapping[str, Any]) -> str:
    """Write a configuration table as TOML: top-level values, then one section per table.

    ``None`` values are left out (the field's default applies). The text is
    read back and compared, so a value TOML cannot hold fails here.
    """
    lines = [
        f"{_key(k)} = {_value(v)}"
        for k, v in table.items()
        if v is not None and not isinstance(v, Mapping)
    ]
    for name, section in table.items():
        if isinstance(section, Mapping):
            lines.append(f"\n[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in section.items() if v is not None)
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != _without_none(table):
        raise ValueError("the configuration does not survive a TOML round trip")
    return text


@dataclass
class RetrainJob:
    """One retraining ready to run: its configuration file and command, in a private folder."""

    source: ModelVersion
    files: list[Path]
    repository: ModelRepository
    command: list[str]
    config_path: Path
    _folder: tempfile.TemporaryDirectory[str] = field(repr=False)

    def finish(self, status: int, stdout: str, stderr: str, seconds: float) -> RetrainResult:
        """Return the stored version for the command's outcome; raise with the reason otherwise."""
        if status != 0:
            reason = _reason(status, stderr)
            if status == 2:
                raise RetrainConfigError(f"training refused: {reason}")
            raise RetrainError(f"training failed: {reason}")
        stored = next(
            (found for line in stdout.splitlines() if (found := _STORED.match(line.strip()))),
            None,
        )
        if stored is None:
            raise RetrainError(f"training printed no stored version: {stdout.strip()[-300:]!r}")
        try:
            version = self.repository.open(f"{stored.group(1)}:{stored.group(2)}")
        except (ModelFileError, ValueError) as error:
            raise RetrainError(f"the stored version cannot be opened: {error}") from None
        return RetrainResult(self.source, version, self.files, seconds, stderr)

    def close(self) -> None:
        """Remove the configuration file and the checkpoints."""
        self._folder.cleanup()


def _reason(status: int, stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if status < 0:
        return f"killed by signal {-status}" + (f" after: {lines[-1]}" if lines else "")
    said = [line for line in lines if line.startswith("tradekernel train:")]
    if said:
        return said[-1].removeprefix("tradekernel train:").strip()
    return " | ".join(lines[-_REASON_LINES:]) or f"exit status {status}, nothing on stderr"


def _command(config_path: Path, python: str, niceness: int) -> list[str]:
    if niceness <= 0:
        return [python, "-m", "kernel", "train", "--config", str(config_path)]
    # Lower the child's priority before it imports anything, so the kernel beside it keeps its CPU.
    boot = (
        f"import os, sys; os.nice({int(niceness)}); "
        "from kernel.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return [python, "-c", boot, "train", "--config", str(config_path)]


def prepare(
    reference: str | ModelVersion,
    files: Sequence[Path],
    repository: ModelRepository,
    *,
    python: str = sys.executable,
    niceness: int = 0,
) -> RetrainJob:
    """Open the source version, check the data and write the derived configuration.

    ``reference`` is ``NAME[:VERSION]`` in ``repository`` (the latest without
    a version) or an opened version. The new version goes to ``repository``.
    """
    if isinstance(reference, ModelVersion):
        source = reference
    else:
        try:
            source = repository.open(reference)
        except (ModelFileError, ValueError) as error:
            raise RetrainConfigError(str(error)) from None
    chosen = [Path(path) for path in files]
    if not chosen:
        raise RetrainError("no recording to train on")
    missing = [str(path) for path in chosen if not path.is_file()]
    if missing:
        raise RetrainError(f"no such file: {', '.join(missing)}")
    unreadable = [str(path) for path in chosen if not os.access(path, os.R_OK)]
    if unreadable:
        raise RetrainError(f"cannot read: {', '.join(unreadable)}")
    folder = tempfile.TemporaryDirectory(prefix="tradekernel-retrain-")
    try:
        base = Path(folder.name)
        checkpoints = base / "checkpoints"
        checkpoints.mkdir()
        table = derive_config(source, chosen, repository.root, checkpoints)
        config_path = base / "retrain.toml"
        try:
            config_path.write_text(to_toml(table))
        except (TypeError, ValueError) as error:
            raise RetrainConfigError(
                f"{source.name}:{source.version}: its training_config cannot be written "
                f"back: {error}"
            ) from None
    except BaseException:
        folder.cleanup()
        raise
    return RetrainJob(
        source,
        chosen,
        repository,
        _command(config_path, python, niceness),
        config_path,
        folder,
    )


def retrain(
    reference: str | ModelVersion,
    files: Sequence[Path],
    repository: ModelRepository,
    *,
    python: str = sys.executable,
    niceness: int = 0,
) -> RetrainResult:
    """Train ``reference``'s configuration on ``files``; return the new version (blocking)."""
    job = prepare(reference, files, repository, python=python, niceness=niceness)
    try:
        started = time.monotonic()
        done = subprocess.run(
            job.command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        return job.finish(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    finally:
        job.close()


async def retrain_async(
    reference: str | ModelVersion,
    files: Sequence[Path],
    repository: ModelRepository,
    *,
    python: str = sys.executable,
    niceness: int = 0,
    timeout_s: float = 0.0,
) -> RetrainResult:
    """Do :func:`retrain` without blocking the event loop; cancelling kills the training.

    A training still running after ``timeout_s`` seconds (0: no limit) is
    killed, and :class:`RetrainError` says so.
    """
    job = await asyncio.to_thread(
        prepare, reference, files, repository, python=python, niceness=niceness
    )
    try:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *job.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s or None)
        except BaseException as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
            if isinstance(error, TimeoutError):
                raise RetrainError(
                    f"training did not finish within {timeout_s:g} s and was stopped"
                ) from None
            raise
        seconds = time.monotonic() - started
        assert process.returncode is not None
        return await asyncio.to_thread(
            job.finish,
            process.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            seconds,
        )
    finally:
        job.close()
