"""A canary's answers on its routed instruments are compared with production's on the same input.

The bundled BTCUSDT and ETHUSDT recordings replay through the verifying feed;
ETHUSDT is routed to the canary. Production's answer for each routed input is
computed in the same pass (never published), and the canary's agreement is
checked against the test's own numpy recomputation of both versions from its
own record of the book, in process and with the canary served by a component
over loopback gRPC.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from serving.support import (
    ReferenceRows,
    bundled_frames,
    reference_probabilities,
    write_book_version,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components"))
from component_harness import link_to, served_in_thread
from trading_stack import TradingStack

from kernel.components import ComponentLink
from kernel.service.config import ComponentSpec
from kernel.serving import ModelRegistry, ServingEngine
from kernel.serving.registry import Components
from kernel.serving.remote import ComponentModels, ModelComponent
from tradekernel_sdk.predictions import Prediction

WINDOW = 5
ETH = ("binance", "ETHUSDT")
BTC = ("binance", "BTCUSDT")


def recomputed_agreement(
    reference: ReferenceRows, key: tuple[str, str], events: int | None = None
) -> tuple[int, int]:
    """Return (compared, agreed) of version 2 against version 1 on the full windows of ``key``
    among its first ``events`` events (default: all)."""
    compared = agreed = 0
    for event in range(WINDOW, (events or len(reference.rows[key])) + 1):
        rows = reference.window(key, event, WINDOW)
        compared += 1
        agreed += int(
            reference_probabilities(2, rows).argmax() == reference_probabilities(1, rows).argmax()
        )
    return compared, agreed


def test_an_in_process_canary_is_compared_with_production_on_its_instruments(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    for version in ("1", "2", "3"):
        write_book_version(root, "direction", version, window=WINDOW)
    stack = TradingStack(tmp_path / "journal.tkj")
    reference = ReferenceRows(stack.bus)
    registry = ModelRegistry(root)
    engine = ServingEngine(stack.bus, registry, "direction", books=stack.market.book)
    engine.start()
    published: list[Prediction] = []
    stack.bus.subscribe("model.prediction.>", published.append)

    async def main() -> None:
        for version in ("1", "2", "3"):
            await registry.load("direction", version)
        registry.promote("direction", "1")
        registry.canary("direction", "2", instruments=["binance.ETHUSDT"])
        registry.shadow("direction", "3")

    asyncio.run(main())
    for frame in bundled_frames(6_000):
        stack.feed.on_frame(frame)
    engine.stop()
    registry.close()
    stack.close()

    # Who acts: the canary on ETHUSDT, production elsewhere; production's ETH answers never show.
    by_symbol: dict[str, set[str]] = {}
    for prediction in published:
        by_symbol.setdefault(prediction.symbol, set()).add(prediction.version)
    assert by_symbol == {"BTCUSDT": {"1"}, "ETHUSDT": {"2"}}

    canary = registry.get("direction", "2").metrics
    compared, agreed = recomputed_agreement(reference, ETH)
    assert (canary.compared, canary.agreed) == (compared, agreed)
    assert 0 < agreed < compared  # the two versions do disagree: the count can tell
    assert engine.stats.reference_scored == compared  # production scored beside each of them
    assert registry.get("direction", "1").metrics.compared == 0

    # The shadow is compared with production, not with the canary acting on ETHUSDT.
    shadow_compared = shadow_agreed = 0
    for key in (BTC, ETH):
        for event in range(WINDOW, len(reference.rows[key]) + 1):
            rows = reference.window(key, event, WINDOW)
            shadow_compared += 1
            shadow_agreed += int(
                reference_probabilities(3, rows).argmax()
                == reference_probabilities(1, rows).argmax()
            )
    shadow = registry.get("direction", "3").metrics
    assert (shadow.compared, shadow.agreed) == (shadow_compared, shadow_agreed)


def test_a_component_canary_is_compared_with_the_in_process_production(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for version in ("1", "2"):
        write_book_version(root, "direction", version, window=WINDOW)
    stack = TradingStack(tmp_path / "journal.tkj")
    reference = ReferenceRows(stack.bus)
    links: dict[str, ComponentLink] = {}
    registry = ModelRegistry(
        root, components=Components(frozenset({"direction_v2"}), lambda: links)
    )
    models = ComponentModels(stack.bus, registry, "direction")
    engine = ServingEngine(
        stack.bus, registry, "direction", books=stack.market.book, batching=False, remote=models
    )
    engine.start()
    published: list[Prediction] = []
    stack.bus.subscribe("model.prediction.>", published.append)
    frames = bundled_frames(8_000)
    before_stop: list[int] = []

    async def main() -> None:
        await registry.load("direction", "1")
        registry.promote("direction", "1")
        with served_in_thread(ModelComponent(root / "direction" / "2", [BTC, ETH])) as (
            address,
            _,
        ):
            link = link_to(stack, ComponentSpec(name="direction_v2", endpoint=address))
            links["direction_v2"] = link
            link.start()
            await link.wait_up(10)
            state = await registry.load("direction", "2", "component:direction_v2")
            assert state.classes == registry.get("direction", "1").classes  # taken from 1
            registry.canary("direction", "2", instruments=["binance.ETHUSDT"])
            for frame in frames[:6_000]:
                stack.feed.on_frame(frame)
                await link.settle()
            await link.stop()
        # The canary's component is gone: production answers for its instrument again.
        before_stop.extend([len(published), len(reference.rows[ETH])])
        for frame in frames[6_000:]:
            stack.feed.on_frame(frame)

    asyncio.run(main())
    engine.stop()
    models.close()
    registry.close()
    stack.close()

    after = published[before_stop[0] :]
    assert {p.version for p in after} == {"1"} and any(p.symbol == "ETHUSDT" for p in after)
    assert models.down == {"2": "production answers for its instruments"}
    assert models.stats.fallbacks == 1
    published[before_stop[0] :] = []
    eth = [p for p in published if p.symbol == "ETHUSDT"]
    btc = [p for p in published if p.symbol == "BTCUSDT"]
    assert {p.version for p in eth} == {"2"} and {p.version for p in btc} == {"1"}
    for prediction in eth:  # the component's answers, published for the routed instrument
        rows = reference.window(ETH, prediction.event, WINDOW)
        assert np.allclose(prediction.probabilities, reference_probabilities(2, rows), atol=1e-6)
    canary = registry.get("direction", "2").metrics
    compared, agreed = recomputed_agreement(reference, ETH, before_stop[1])
    assert (canary.compared, canary.agreed) == (compared, agreed)
    assert 0 < agreed < compared
    # It answered BTCUSDT too (it subscribes to both); those answers are neither acted on
    # nor compared: a canary is judged on the instruments routed to it.
    assert canary.predictions == compared + len(btc)
    assert canary.latency.count == canary.predictions
    assert models.stats.published == len(eth)
