"""The asyncio client's rollout methods against a real API server on port 0 and a real registry.

Each call is checked against what the registry then holds and what the
synchronous client answers for the same version, and every refusal comes
back as the SDK's error for its status code, changing nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kernel.serving import Stage
from serving.test_model_service import ADMIN_TOKEN, READ_TOKEN, repository, serving_api
from tradekernel_sdk.client import (
    AlreadyExists,
    AsyncKernelClient,
    FailedPrecondition,
    InvalidArgument,
    KernelClient,
    ModelView,
    NotFound,
    PermissionDenied,
)


def test_the_async_client_loads_promotes_shadows_canaries_and_rolls_back(tmp_path: Path) -> None:
    root = repository(tmp_path)

    async def main() -> None:
        async with serving_api(tmp_path, root) as (registry, port):
            address = f"127.0.0.1:{port}"
            async with (
                AsyncKernelClient(address, ADMIN_TOKEN) as admin,
                AsyncKernelClient(address, READ_TOKEN) as reader,
            ):
                loaded = await admin.load_model("direction", "1")
                assert (loaded.stage, len(loaded.sha256)) == ("loaded", 64)
                assert loaded.metrics is not None and loaded.metrics.predictions == 0
                assert loaded.component is None  # in process
                again = await admin.load_model("direction", "1", sha256=loaded.sha256)
                assert again == loaded
                for version in ("2", "3"):
                    await admin.load_model("direction", version)
                promoted = await admin.promote_model("direction", "1")
                assert promoted.stage == "production"
                shadow = await admin.shadow_model("direction", "2")
                assert shadow.stage == "shadow"
                canary = await admin.canary_model(
                    "direction", "3", 250, instruments=["binance.ETHUSDT"]
                )
                assert (canary.stage, canary.canary_bps, canary.canary_instruments) == (
                    "canary",
                    250,
                    ("binance.ETHUSDT",),
                )
                assert (await admin.promote_model("direction", "2")).stage == "production"
                rolled = await admin.rollback_model("direction", "2")
                assert (rolled.version, rolled.stage) == ("1", "production")
                route = registry.route("direction")
                assert route.production is registry.get("direction", "1")
                assert route.canary is registry.get("direction", "3")
                assert registry.get("direction", "2").stage is Stage.RETIRED

                # The same answers as the synchronous client's (from a thread: the server
                # runs on this loop).
                listed = {m.version: m for m in await reader.models("direction")}

                def sync_listing() -> dict[str, ModelView]:
                    with KernelClient(address, READ_TOKEN) as sync:
                        return {m.version: m for m in sync.models("direction")}

                assert await asyncio.to_thread(sync_listing) == listed

                # Refusals: the SDK's error for the status code, and nothing changes.
                with pytest.raises(NotFound, match="no loaded version '9'"):
                    await admin.promote_model("direction", "9")
                with pytest.raises(FailedPrecondition, match="production already"):
                    await admin.shadow_model("direction", "1")
                with pytest.raises(FailedPrecondition, match="not production"):
                    await admin.rollback_model("direction", "2")
                with pytest.raises(InvalidArgument, match="canary_bps"):
                    await admin.canary_model("direction", "3", 20_000)
                with pytest.raises(AlreadyExists):
                    await admin.load_model("direction", "1", sha256="0" * 64)
                with pytest.raises(NotFound, match="no component 'remote' in"):
                    await admin.load_model("direction", "7", "component:remote")
                with pytest.raises(PermissionDenied):
                    await reader.promote_model("direction", "3")
                assert {m.version: m for m in await reader.models("direction")} == listed

    asyncio.run(main())
