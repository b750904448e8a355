"""``ModelService`` over loopback gRPC and ``tradekernel models …``: the registry's rollout."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from trading_stack import TradingStack

from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.api import ApiParts, ApiServer
from kernel.cli_api import add_api_commands, run_api_command
from kernel.models.cli import add_models_eval_command, is_models_eval
from kernel.serving import ModelRegistry
from serving.support import write_book_version
from tradekernel_sdk.proto.tradekernel.v1 import models_pb2, models_pb2_grpc

READ_TOKEN = "read-token-models"
ADMIN_TOKEN = "admin-token-models"
TOKENS = {READ_TOKEN: frozenset({"read"}), ADMIN_TOKEN: frozenset({"read", "admin"})}
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
READ = (("authorization", f"Bearer {READ_TOKEN}"),)
Code = grpc.StatusCode


@asynccontextmanager
async def serving_api(tmp_path: Path, root: Path) -> AsyncIterator[tuple[ModelRegistry, int]]:
    stack = TradingStack(tmp_path / "journal.tkj")
    registry = ModelRegistry(root, stack.journal)
    parts = ApiParts(
        bus=stack.bus,
        market=stack.market,
        venues=stack.venues,
        instruments=lambda: list(KNOWN_INSTRUMENTS["binance"].values()),
        model_dir=root,
        serving=lambda: registry,
    )
    server = ApiServer(parts, tokens=TOKENS, grace_s=0.5)
    port = await server.start()
    try:
        yield registry, port
    finally:
        await server.stop()
        registry.close()
        stack.close()


async def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value.code(), raised.value.details() or ""


def repository(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for version in ("1", "2", "3"):
        write_book_version(root, "direction", version)
    write_book_version(root, "direction", "4", graph_window=9)
    write_book_version(root, "direction", "5", nan=True)
    return root


def test_every_rpc_answers_with_the_stage_or_the_status_code_that_says_why(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path)

    async def main() -> None:
        async with serving_api(tmp_path, root) as (registry, port):
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            models = models_pb2_grpc.ModelServiceStub(channel)
            pb = models_pb2

            loaded = await models.LoadModel(
                pb.LoadModelRequest(name="direction", version="1"), metadata=ADMIN
            )
            assert loaded.model.stage == pb.MODEL_STAGE_LOADED and len(loaded.model.sha256) == 64
            again = await models.LoadModel(
                pb.LoadModelRequest(name="direction", version="1", sha256=loaded.model.sha256),
                metadata=ADMIN,
            )
            assert again.model == loaded.model  # idempotent
            await models.LoadModel(
                pb.LoadModelRequest(name="direction", version="2"), metadata=ADMIN
            )
            await models.LoadModel(
                pb.LoadModelRequest(name="direction", version="3"), metadata=ADMIN
            )
            promoted = await models.PromoteModel(
                pb.PromoteModelRequest(name="direction", version="1"), metadata=ADMIN
            )
            assert promoted.model.stage == pb.MODEL_STAGE_PRODUCTION
            shadow = await models.ShadowModel(
                pb.ShadowModelRequest(name="direction", version="2"), metadata=ADMIN
            )
            assert shadow.model.stage == pb.MODEL_STAGE_SHADOW
            canary = await models.CanaryModel(
                pb.CanaryModelRequest(
                    name="direction", version="3", canary_bps=500, instruments=["binance.ETHUSDT"]
                ),
                metadata=ADMIN,
            )
            assert canary.model.stage == pb.MODEL_STAGE_CANARY
            assert (canary.model.canary_bps, list(canary.model.canary_instruments)) == (
                500,
                ["binance.ETHUSDT"],
            )
            listed = await models.ListModels(pb.ListModelsRequest(name="direction"), metadata=READ)
            stages = {m.version: m.stage for m in listed.models}
            assert stages == {
                "1": pb.MODEL_STAGE_PRODUCTION,
                "2": pb.MODEL_STAGE_SHADOW,
                "3": pb.MODEL_STAGE_CANARY,
                "4": pb.MODEL_STAGE_LOADED,  # on disk, not loaded: as the repository lists it
                "5": pb.MODEL_STAGE_LOADED,
            }
            await models.PromoteModel(
                pb.PromoteModelRequest(name="direction", version="2"), metadata=ADMIN
            )
            rolled = await models.RollbackModel(
                pb.RollbackModelRequest(name="direction", from_version="2"), metadata=ADMIN
            )
            assert (rolled.model.version, rolled.model.stage) == ("1", pb.MODEL_STAGE_PRODUCTION)

            load, promote, shadow_, canary_, rollback = (
                models.LoadModel,
                models.PromoteModel,
                models.ShadowModel,
                models.CanaryModel,
                models.RollbackModel,
            )
            first = str(root / "direction" / "1")
            refusals = [
                (load(pb.LoadModelRequest(name="direction", version="9"), metadata=ADMIN),
                 Code.NOT_FOUND, "no version '9'"),
                (load(pb.LoadModelRequest(name="nobody", version="1"), metadata=ADMIN),
                 Code.NOT_FOUND, "has no version"),
                (load(pb.LoadModelRequest(name="direction", version="4"), metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "input shape"),
                (load(pb.LoadModelRequest(name="direction", version="5"), metadata=ADMIN),
                 Code.FAILED_PRECONDITION, "non-finite"),
                (load(pb.LoadModelRequest(name="direction", version="1", sha256="ab" * 32),
                      metadata=ADMIN),
                 Code.ALREADY_EXISTS, "is loaded with SHA-256"),
                (load(pb.LoadModelRequest(name="direction", version="6", uri=first),
                      metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "sha256: required with uri"),
                (load(pb.LoadModelRequest(name="direction"), metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "version: required"),
                (promote(pb.PromoteModelRequest(name="direction", version="4"), metadata=ADMIN),
                 Code.NOT_FOUND, "no loaded version '4'"),
                (shadow_(pb.ShadowModelRequest(name="direction", version="1"), metadata=ADMIN),
                 Code.FAILED_PRECONDITION, "production already"),
                (canary_(pb.CanaryModelRequest(name="direction", version="3"), metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "choose whom it answers"),
                (canary_(pb.CanaryModelRequest(name="direction", version="3", canary_bps=10_001),
                         metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "canary_bps"),
                (rollback(pb.RollbackModelRequest(name="direction", from_version="2"),
                          metadata=ADMIN),
                 Code.FAILED_PRECONDITION, "not production"),
                (rollback(pb.RollbackModelRequest(name="direction"), metadata=ADMIN),
                 Code.INVALID_ARGUMENT, "from_version: required"),
                (promote(pb.PromoteModelRequest(name="direction", version="2"), metadata=READ),
                 Code.PERMISSION_DENIED, ""),
            ]  # fmt: skip
            for call, code, words in refusals:
                found, details = await code_of(call)
                assert (found, words in details) == (code, True), details
            route = registry.route("direction")
            assert route.production is registry.get("direction", "1")
            assert route.shadow is None  # version 2 left shadow when it was promoted
            assert route.canary is registry.get("direction", "3")
            await channel.close()

    asyncio.run(main())


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="tradekernel")
    commands = result.add_subparsers(dest="command", required=True)
    add_api_commands(commands)
    add_models_eval_command(commands.choices["models"])
    return result


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_api_command(parser().parse_args(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_models_commands_drive_the_registry_over_the_api(tmp_path: Path) -> None:
    root = repository(tmp_path)

    async def main() -> None:
        async with serving_api(tmp_path, root) as (registry, port):
            connection = ["--address", f"127.0.0.1:{port}", "--token", ADMIN_TOKEN]

            async def run(*argv: str) -> tuple[int, str, str]:
                return await asyncio.to_thread(cli, [*argv, *connection])

            for version in ("1", "2", "3"):
                code, out, err = await run("models", "load", f"direction:{version}", "--json")
                assert code == 0, err
                assert json.loads(out)["model"]["stage"] == "loaded"
            code, out, err = await run("models", "promote", "direction:1")
            assert code == 0 and "production" in out, err
            code, out, err = await run("models", "shadow", "direction:2")
            assert code == 0 and "shadow" in out, err
            code, out, err = await run(
                "models", "canary", "direction:3", "--instrument", "binance.ETHUSDT", "--json"
            )
            assert code == 0, err
            assert json.loads(out)["model"]["canary_instruments"] == ["binance.ETHUSDT"]
            code, out, err = await run("models", "promote", "direction:2")
            assert code == 0, err
            code, out, err = await run("models", "rollback", "direction", "--from", "2")
            assert code == 0 and out.splitlines()[1].split()[:3] == ["direction", "1", "production"]
            code, out, err = await run("models", "rollback", "direction", "--from", "2")
            assert code == 1 and "not production" in err
            code, out, err = await run("models", "load", "direction:4")
            assert code == 1 and "input shape" in err
            code, out, err = await run("models", "list", "--json")
            assert code == 0, err
            stages = {m["version"]: m["stage"] for m in json.loads(out)["models"]}
            assert stages == {
                "1": "production",
                "2": "retired",
                "3": "canary",
                "4": "loaded",
                "5": "loaded",
            }
            code, plain, _ = await run("models")  # the listing without a subcommand still works
            assert code == 0 and "direction  1        production" in plain
            assert registry.route("direction").production is registry.get("direction", "1")

    asyncio.run(main())


def test_models_eval_still_parses_beside_the_rollout_commands() -> None:
    args = parser().parse_args(
        ["models", "eval", "--model", "direction:1", "--data", "x.gz", "--venue", "binance"]
    )
    assert is_models_eval(args) and args.model == "direction:1"
