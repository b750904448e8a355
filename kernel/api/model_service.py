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

When the kernel serves models (``ApiParts.serving``), the versions its
registry has loaded are listed with their live stage, in place of the same
name and version found on disk, and ``LoadModel``, ``PromoteModel``,
``ShadowModel``, ``CanaryModel`` and ``RollbackModel`` drive the registry
(:mod:`kernel.serving.registry`): loading runs in a worker thread, every
change is journaled before it acts. Registry refusals map to status codes:
unknown name or version NOT_FOUND, a version contradicting its metadata or a
malformed field INVALID_ARGUMENT, a damaged or nonsensical version or a
command that does not fit the current stages FAILED_PRECONDITION, a version
loaded again with another file ALREADY_EXISTS. A kernel serving no models
answers those five with UNIMPLEMENTED.

``LoadModel`` with ``uri = "component:NAME"`` (and no ``sha256``) loads a
version answered by the model component NAME of ``[[components]]``; the same
four commands then move it through the stages. A served version's listing
carries its metrics (answers, agreement with production, errors, latency)
and, for a component version, whether its component is up and which version
answers in its place while it is down.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from kernel.api.errors import ApiError, unary
from kernel.api.parts import ApiParts
from tradekernel_sdk.proto.tradekernel.v1 import models_pb2, models_pb2_grpc

if TYPE_CHECKING:  # serving imports onnxruntime and numpy; the API loads it when it serves
    from kernel.serving import ModelRegistry, VersionState

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
_COMPONENT_URI = "component:"  # kernel.serving.registry.COMPONENT_URI, without importing serving
_NOT_SERVING = (
    "{rpc}: this kernel serves no models; only ListModels is served (it reads the model repository)"
)
_CODES = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "exists": grpc.StatusCode.ALREADY_EXISTS,
}


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


def _info(state: VersionState, registry: ModelRegistry) -> models_pb2.ModelInfo:
    metrics = state.metrics
    info = models_pb2.ModelInfo(
        name=state.name,
        version=state.version,
        uri=state.model.uri,
        sha256=state.model.sha256,
        stage=_STAGES[state.stage.value],
        canary_bps=state.canary_bps,
        ts_loaded=state.model.loaded_ns,
        ts_stage=state.ts_stage,
        canary_instruments=sorted(state.canary_instruments),
        metrics=models_pb2.ModelVersionMetrics(
            predictions=metrics.predictions,
            compared=metrics.compared,
            agreed=metrics.agreed,
            errors=metrics.errors,
            latency_p50_ns=metrics.latency.quantile(0.5),
            latency_p99_ns=metrics.latency.quantile(0.99),
            published=metrics.published,
        ),
    )
    component = state.component
    if component is not None:
        up = component.up()
        stand_in = ""
        if not up:
            route = registry.route(state.name)
            if state is route.production:
                found = registry.stand_in(state.name)
                stand_in = found.version if found is not None else ""
            elif state is route.canary and route.production is not None:
                stand_in = route.production.version
        info.component.CopyFrom(
            models_pb2.ModelComponentState(
                name=component.component,
                up=up,
                down_reason=component.down_reason(),
                stand_in=stand_in,
            )
        )
    return info


def _required(field: str, value: str) -> str:
    if not value:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: required")
    return value


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    """List the model repository and the served versions; drive the registry's rollout."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    def _registry(self, rpc: str) -> ModelRegistry:
        registry = self.parts.serving()
        if registry is None:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, _NOT_SERVING.format(rpc=rpc))
        return registry

    @staticmethod
    def _refused(error: Exception) -> ApiError:
        reason = getattr(error, "reason", "precondition")
        return ApiError(_CODES.get(reason, grpc.StatusCode.FAILED_PRECONDITION), str(error))

    @unary
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: Context
    ) -> models_pb2.ListModelsResponse:
        """List the repository's versions and the served ones, by name, then load time."""
        listed = {
            (info.name, info.version): info
            for info in read_model_repository(self.parts.model_dir, request.name)
        }
        registry = self.parts.serving()
        if registry is not None:
            for state in registry.versions(request.name):
                listed[(state.name, state.version)] = _info(state, registry)
        models = sorted(listed.values(), key=lambda i: (i.name, i.ts_loaded, i.version))
        return models_pb2.ListModelsResponse(models=models)

    @unary
    async def LoadModel(
        self, request: models_pb2.LoadModelRequest, context: Context
    ) -> models_pb2.LoadModelResponse:
        """Load and validate a version in the background; it starts LOADED."""
        from kernel.serving import RegistryError  # noqa: PLC0415 - numpy, onnxruntime

        registry = self._registry("LoadModel")
        name, version = _required("name", request.name), _required("version", request.version)
        if request.uri and not request.sha256 and not request.uri.startswith(_COMPONENT_URI):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "sha256: required with uri")
        try:
            state = await registry.load(name, version, request.uri, request.sha256)
        except RegistryError as error:
            raise self._refused(error) from None
        return models_pb2.LoadModelResponse(model=_info(state, registry))

    @unary
    async def PromoteModel(
        self, request: models_pb2.PromoteModelRequest, context: Context
    ) -> models_pb2.PromoteModelResponse:
        """Make a loaded version production; the one before is retired."""
        from kernel.serving import RegistryError  # noqa: PLC0415

        registry = self._registry("PromoteModel")
        name, version = _required("name", request.name), _required("version", request.version)
        try:
            state = registry.promote(name, version)
        except RegistryError as error:
            raise self._refused(error) from None
        return models_pb2.PromoteModelResponse(model=_info(state, registry))

    @unary
    async def ShadowModel(
        self, request: models_pb2.ShadowModelRequest, context: Context
    ) -> models_pb2.ShadowModelResponse:
        """Run a loaded version in shadow beside production."""
        from kernel.serving import RegistryError  # noqa: PLC0415

        registry = self._registry("ShadowModel")
        name, version = _required("name", request.name), _required("version", request.version)
        try:
            state = registry.shadow(name, version)
        except RegistryError as error:
            raise self._refused(error) from None
        return models_pb2.ShadowModelResponse(model=_info(state, registry))

    @unary
    async def CanaryModel(
        self, request: models_pb2.CanaryModelRequest, context: Context
    ) -> models_pb2.CanaryModelResponse:
        """Route chosen instruments, and a share of the rest, to a loaded version."""
        from kernel.serving import RegistryError  # noqa: PLC0415

        registry = self._registry("CanaryModel")
        name, version = _required("name", request.name), _required("version", request.version)
        try:
            state = registry.canary(name, version, request.canary_bps, list(request.instruments))
        except RegistryError as error:
            raise self._refused(error) from None
        return models_pb2.CanaryModelResponse(model=_info(state, registry))

    @unary
    async def RollbackModel(
        self, request: models_pb2.RollbackModelRequest, context: Context
    ) -> models_pb2.RollbackModelResponse:
        """Leave production ``from_version`` for the production version before it."""
        from kernel.serving import RegistryError  # noqa: PLC0415

        registry = self._registry("RollbackModel")
        name = _required("name", request.name)
        from_version = _required("from_version", request.from_version)
        try:
            state = registry.rollback(name, from_version)
        except RegistryError as error:
            raise self._refused(error) from None
        return models_pb2.RollbackModelResponse(model=_info(state, registry))
