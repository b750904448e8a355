"""The model repository: ``<root>/<name>/<version>/`` with ``model.onnx`` and ``metadata.json``.

Versions are positive integers, assigned in order; a version is written into
a hidden temporary folder and renamed into place, so a reader never sees half
of one. ``metadata.json`` records the SHA-256 of ``model.onnx``; opening a
version checks it, so a damaged or swapped file is refused before any
inference (:class:`ModelFileError`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kernel.models.dataset import file_sha256

__all__ = [
    "DEFAULT_REPOSITORY",
    "METADATA_FILE",
    "MODEL_FILE",
    "REPOSITORY_ENV",
    "ModelFileError",
    "ModelRepository",
    "ModelVersion",
    "parse_reference",
]

MODEL_FILE: Final = "model.onnx"
METADATA_FILE: Final = "metadata.json"
REPOSITORY_ENV: Final = "TRADEKERNEL_MODELS"
DEFAULT_REPOSITORY: Final = "models"
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]+$")


class ModelFileError(Exception):
    """A stored version that cannot be used: missing, damaged or inconsistent files."""


def parse_reference(reference: str) -> tuple[str, int | None]:
    """Split ``NAME[:VERSION]``; no version means the latest."""
    name, _, version = reference.partition(":")
    if not _NAME.match(name):
        raise ValueError(f"bad model name {name!r}: use letters, digits, '_' and '-'")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"bad model version {version!r}: a positive integer")
    return name, int(version)


@dataclass(frozen=True)
class ModelVersion:
    """One stored version, its files checked against its metadata."""

    name: str
    version: int
    path: Path
    metadata: dict[str, Any]

    @property
    def model_path(self) -> Path:
        """Return the path of ``model.onnx``."""
        return self.path / MODEL_FILE


class ModelRepository:
    """Versions of named models under one root folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        """Use ``root``, else ``$TRADEKERNEL_MODELS``, else ``./models``."""
        self.root = Path(root or os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY)

    def versions(self, name: str) -> list[int]:
        """Return the stored versions of ``name``, oldest first."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(entry.name) for entry in folder.iterdir() if entry.name.isdigit())

    def names(self) -> list[str]:
        """Return every model name with at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if self.versions(entry.name))

    def add(self, name: str, files: Path, metadata: dict[str, Any]) -> ModelVersion:
        """Store the folder ``files`` (with ``model.onnx``) as the next version of ``name``.

        ``metadata`` gets ``name``, ``version`` and the model file's hash, and is
        written as ``metadata.json``. ``files`` is moved, not copied.
        """
        if not _NAME.match(name):
            raise ValueError(f"bad model name {name!r}: use letters, digits, '_' and '-'")
        if not (files / MODEL_FILE).is_file():
            raise ModelFileError(f"{files}: no {MODEL_FILE} to store")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
        for entry in files.iterdir():
            shutil.move(str(entry), staging / entry.name)
        while True:
            version = (self.versions(name) or [0])[-1] + 1
            stored = dict(metadata)
            stored.update(
                name=name,
                version=version,
                model_file=MODEL_FILE,
                model_sha256=file_sha256(staging / MODEL_FILE),
            )
            (staging / METADATA_FILE).write_text(json.dumps(stored, indent=2) + "\n")
            try:
                staging.rename(folder / str(version))
            except OSError:
                if (folder / str(version)).exists():
                    continue  # another writer took this number: take the next
                raise
            return ModelVersion(name, version, folder / str(version), stored)

    def open(self, reference: str) -> ModelVersion:
        """Return the version ``NAME[:VERSION]`` names, after checking its files."""
        name, version = parse_reference(reference)
        known = self.versions(name)
        if not known:
            raise ModelFileError(f"no model {name!r} in {self.root}")
        if version is None:
            version = known[-1]
        elif version not in known:
            raise ModelFileError(
                f"model {name!r} has no version {version} in {self.root} "
                f"(versions: {', '.join(map(str, known))})"
            )
        path = self.root / name / str(version)
        try:
            metadata = json.loads((path / METADATA_FILE).read_text())
        except FileNotFoundError:
            raise ModelFileError(f"{path}: no {METADATA_FILE}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelFileError(f"{path / METADATA_FILE}: not valid JSON ({error})") from None
        model_path = path / MODEL_FILE
        if not model_path.is_file():
            raise ModelFileError(f"{path}: no {MODEL_FILE}")
        expected = metadata.get("model_sha256")
        actual = file_sha256(model_path)
        if expected != actual:
            raise ModelFileError(
                f"{model_path} is damaged or was replaced: its SHA-256 is {actual}, "
                f"but {METADATA_FILE} records {expected}"
            )
        return ModelVersion(name, version, path, metadata)
