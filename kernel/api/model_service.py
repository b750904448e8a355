"""``ModelService``: the model versions in the model repository.

The repository is a folder (``[api] model_dir``) holding one folder per
model and one per version inside it, each described by a ``metadata.json``::

    models/
      spread_predictor/
        2024-08-01/metadata.json   {"file": "model.onnx", "sha256": "…", "stage": "production"}

Recognised keys, all optional: ``file`` (the model file beside it, default
``model.onnx``), ``sha256`` (hex; else the file's digest when it exists, else
empty), ``stage`` (``loaded``, ``shadow``, ``canary``, ``production``,
``retired``; default ``loaded``), ``canary_bps``, ``ts_loaded`` and
``ts_stage`` (nanoseconds since the epoch; default the metadata file's
modification time). A version whose metadata does not parse is left out of
the list and logged with the reason.

Only ``ListModels`` is served: loading, promotion, shadow, canary and rollback
answer UNIMPLEMENTED until the kernel runs models.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from kernel.api.errors import ApiError, unary
from kernel.api.parts import ApiParts
from tradekernel_sdk.proto.tradekernel.v1 import models_pb2, models_pb2_grpc

__all__ = ["ModelServicer", "read_model_repository"]

log = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_STAGES = {
    "loaded": models_pb2.MODEL_STAGE_LOADED,
    "shadow": models_pb2.MODEL_STAGE_SHADOW,
    "canary": models_pb2.MODEL_STAGE_CANARY,
    "production": models_pb2.MODEL_STAGE_PRODUCTION,
    "retired": models_pb2.MODEL_STAGE_RETIRED,
}
_NOT_YET = (
    "{rpc}: the kernel does not run models yet; only ListModels is served "
    "(it reads the model repository)"
)


class _BadMetadata(ValueError):
    pass


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _nanoseconds(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadMetadata(f"{key}: expected nanoseconds since the epoch, got {value!r}")
    return value


def _version(name: str, folder: Path) -> models_pb2.ModelInfo:
    metadata = folder / "metadata.json"
    try:
        raw = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _BadMetadata(f"cannot read it: {error}") from None
    if not isinstance(raw, dict):
        raise _BadMetadata("expected a JSON object")
    file_name = raw.get("file", "model.onnx")
    if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
        raise _BadMetadata(f"file: expected a file name in the version folder, got {file_name!r}")
    model_file = folder / file_name
    sha256 = raw.get("sha256")
    if sha256 is None:
        sha256 = _file_digest(model_file) if model_file.is_file() else ""
    elif not isinstance(sha256, str) or len(sha256) != 64 or not _is_hex(sha256):
        raise _BadMetadata(f"sha256: expected 64 hex digits, got {sha256!r}")
    stage_text = raw.get("stage", "loaded")
    stage = _STAGES.get(stage_text) if isinstance(stage_text, str) else None
    if stage is None:
        raise _BadMetadata(f"stage: expected one of {', '.join(_STAGES)}, got {stage_text!r}")
    canary_bps = raw.get("canary_bps", 0)
    if (
        isinstance(canary_bps, bool)
        or not isinstance(canary_bps, int)
        or not 0 <= canary_bps <= 10_000
    ):
        raise _BadMetadata(f"canary_bps: expected 0 to 10000, got {canary_bps!r}")
    ts_loaded = _nanoseconds(raw, "ts_loaded", metadata.stat().st_mtime_ns)
    return models_pb2.ModelInfo(
        name=name,
        version=folder.name,
        uri=str(model_file),
        sha256=sha256.lower(),
        stage=stage,
        canary_bps=canary_bps,
        ts_loaded=ts_loaded,
        ts_stage=_nanoseconds(raw, "ts_stage", ts_loaded),
    )


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdefABCDEF" for character in text)


def read_model_repository(root: Path | None, name: str = "") -> list[models_pb2.ModelInfo]:
    """Return the versions under ``root`` (only model ``name`` when given), by name, then load time.

    A missing repository is an empty one.
    """
    if root is None or not root.is_dir():
        return []
    models: list[models_pb2.ModelInfo] = []
    for model_folder in sorted(root.iterdir()):
        if not model_folder.is_dir() or (name and model_folder.name != name):
            continue
        for version_folder in sorted(model_folder.iterdir()):
            if not (version_folder / "metadata.json").is_file():
                continue
            try:
                models.append(_version(model_folder.name, version_folder))
            except _BadMetadata as error:
                log.warning(
                    "model %s left out: %s/metadata.json: %s",
                    model_folder.name,
                    version_folder,
                    error,
                )
    models.sort(key=lambda info: (info.name, info.ts_loaded, info.version))
    return models


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    """List the model repository; the rollout rpcs wait for the kernel to run models."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    @unary
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: Context
    ) -> models_pb2.ListModelsResponse:
        """List the versions in the model repository, by name, then load time."""
        return models_pb2.ListModelsResponse(
            models=read_model_repository(self.parts.model_dir, request.name)
        )

    @unary
    async def LoadModel(
        self, request: models_pb2.LoadModelRequest, context: Context
    ) -> models_pb2.LoadModelResponse:
        """Answer UNIMPLEMENTED: the kernel does not run models yet."""
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_YET.format(rpc="LoadModel"))

    @unary
    async def PromoteModel(
        self, request: models_pb2.PromoteModelRequest, context: Context
    ) -> models_pb2.PromoteModelResponse:
        """Answer UNIMPLEMENTED: the kernel does not run models yet."""
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_YET.format(rpc="PromoteModel"))

    @unary
    async def ShadowModel(
        self, request: models_pb2.ShadowModelRequest, context: Context
    ) -> models_pb2.ShadowModelResponse:
        """Answer UNIMPLEMENTED: the kernel does not run models yet."""
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_YET.format(rpc="ShadowModel"))

    @unary
    async def CanaryModel(
        self, request: models_pb2.CanaryModelRequest, context: Context
    ) -> models_pb2.CanaryModelResponse:
        """Answer UNIMPLEMENTED: the kernel does not run models yet."""
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_YET.format(rpc="CanaryModel"))

    @unary
    async def RollbackModel(
        self, request: models_pb2.RollbackModelRequest, context: Context
    ) -> models_pb2.RollbackModelResponse:
        """Answer UNIMPLEMENTED: the kernel does not run models yet."""
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_YET.format(rpc="RollbackModel"))
