"""``ModelService`` over loopback gRPC: the model repository listed, the rollout not yet served."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
from test_server_api import ADMIN_TOKEN, READ_TOKEN, auth, code_of, frames, run, running

from kernel.adapters.base import RawFrame
from tradekernel_sdk.proto.tradekernel.v1 import models_pb2, models_pb2_grpc

__all__ = ["frames"]

DIGEST = "ab" * 32


def write_version(root: Path, name: str, version: str, metadata: object) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    (folder / "metadata.json").write_text(text)
    return folder


def test_list_models_reads_the_repository_by_name_then_load_time(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    root = tmp_path / "models"
    write_version(root, "spread", "v2", {"sha256": DIGEST, "stage": "production", "ts_loaded": 200})
    older = write_version(
        root, "spread", "v10", {"stage": "retired", "ts_loaded": 100, "ts_stage": 150}
    )
    (older / "model.onnx").write_bytes(b"onnx bytes")
    write_version(root, "alpha", "1", {"stage": "canary", "canary_bps": 500, "ts_loaded": 300})
    write_version(root, "alpha", "broken", "{not json")
    write_version(root, "alpha", "odd-stage", {"stage": "live"})
    (root / "alpha" / "no-metadata").mkdir()

    async def main() -> None:
        async with running(tmp_path, frames, model_dir=root) as api:
            models = models_pb2_grpc.ModelServiceStub(api.channel)
            answer = await models.ListModels(
                models_pb2.ListModelsRequest(), metadata=auth(READ_TOKEN)
            )
            listed = [(m.name, m.version, m.stage) for m in answer.models]
            assert listed == [
                ("alpha", "1", models_pb2.MODEL_STAGE_CANARY),
                ("spread", "v10", models_pb2.MODEL_STAGE_RETIRED),
                ("spread", "v2", models_pb2.MODEL_STAGE_PRODUCTION),
            ]
            alpha, retired, production = answer.models
            assert alpha.canary_bps == 500 and alpha.sha256 == ""  # no file, no digest given
            assert retired.sha256 == hashlib.sha256(b"onnx bytes").hexdigest()
            assert retired.uri == str(older / "model.onnx")
            assert (retired.ts_loaded, retired.ts_stage) == (100, 150)
            assert production.sha256 == DIGEST and production.ts_stage == 200
            one = await models.ListModels(
                models_pb2.ListModelsRequest(name="spread"), metadata=auth(READ_TOKEN)
            )
            assert [m.version for m in one.models] == ["v10", "v2"]
            assert await code_of(models.ListModels(models_pb2.ListModelsRequest())) is (
                grpc.StatusCode.UNAUTHENTICATED
            )

    run(main())


def test_list_models_without_a_repository_is_empty(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames, model_dir=tmp_path / "absent") as api:
            models = models_pb2_grpc.ModelServiceStub(api.channel)
            answer = await models.ListModels(
                models_pb2.ListModelsRequest(), metadata=auth(READ_TOKEN)
            )
            assert list(answer.models) == []

    run(main())


def test_model_rollout_answers_unimplemented_after_the_scope_check(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            models = models_pb2_grpc.ModelServiceStub(api.channel)
            calls = [
                (models.LoadModel, models_pb2.LoadModelRequest(name="m", version="1")),
                (models.PromoteModel, models_pb2.PromoteModelRequest(name="m", version="1")),
                (models.ShadowModel, models_pb2.ShadowModelRequest(name="m", version="1")),
                (models.CanaryModel, models_pb2.CanaryModelRequest(name="m", version="1")),
                (models.RollbackModel, models_pb2.RollbackModelRequest(name="m")),
            ]
            for method, request in calls:
                assert await code_of(method(request, metadata=auth(READ_TOKEN))) is (
                    grpc.StatusCode.PERMISSION_DENIED
                )
                with_admin = method(request, metadata=auth(ADMIN_TOKEN))
                assert await code_of(with_admin) is grpc.StatusCode.UNIMPLEMENTED
            assert "tradekernel.v1.ModelService" in api.server.services

    run(main())
