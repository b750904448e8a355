"""``inference``: serving latency of the DeepLOB-style model, onnxruntime against torch eager.

The network is the models plug-in's ``DeepLOB`` at the paper's sizes (window
100, 10 levels, about 61,000 parameters) with seeded weights; latency does
not depend on training. It is exported to ONNX as training exports it and
loaded through the serving registry (validation and warm-up included), so the
onnxruntime figures are those of the session the kernel serves with: one
intra-op thread. Torch runs the same module eagerly under ``inference_mode``
with one thread, on the same inputs, in the same process, interleaved run by
run. Each figure is the median run's nearest-rank p50 and p99 over single
calls timed with ``perf_counter_ns``.

Also measured: the batching gain (cost per input when several instruments
are due in the same tick and go to onnxruntime in one call), and the hot
swap: how long loading and validating a version takes off the loop, and how
long ``promote`` takes, after which every new inference uses the new version.
Without torch only the onnxruntime side is measured, and the output says so.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import Context, fmt_ns, have, median, note, percentile, table
from kernel.serving import ModelRegistry, VersionFiles, open_version
from kernel.serving.registry import LoadingWindow, background_priority
from kernel.serving.spec import book_column_names

NAME = "inference"
WINDOW = 100
LEVELS = 10
CLASSES = ("down", "stationary", "up")
INPUTS = 256
BATCHES = (1, 4, 16, 64)


def _export_deeplob(folder: Path) -> Callable[[npt.NDArray[np.float32]], Any]:
    """Write a version folder holding DeepLOB as ONNX; return the torch eager predictor."""
    import torch

    from tradekernel_models.models.deeplob import DeepLOB, DeepLOBConfig, ExportWrapper

    torch.manual_seed(0)
    torch.set_num_threads(1)
    wrapper = ExportWrapper(DeepLOB(DeepLOBConfig(levels=LEVELS)), 1.0, 1.0).eval()
    example = torch.zeros((1, WINDOW, LEVELS * 4), dtype=torch.float32)
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (example,),
            str(folder / "model.onnx"),
            opset_version=17,
            dynamo=False,
            input_names=["book"],
            output_names=["direction_probabilities", "volatility_bps"],
            dynamic_axes={
                "book": {0: "batch"},
                "direction_probabilities": {0: "batch"},
                "volatility_bps": {0: "batch"},
            },
        )
    metadata = {
        "input": {
            "name": "book",
            "dtype": "float32",
            "shape": [None, WINDOW, LEVELS * 4],
            "window": WINDOW,
            "levels": LEVELS,
            "columns": book_column_names(LEVELS),
        },
        "outputs": [
            {"name": "direction_probabilities", "shape": [None, 3], "classes": list(CLASSES)},
            {"name": "volatility_bps", "shape": [None, 1]},
        ],
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))

    def eager(inputs: npt.NDArray[np.float32]) -> Any:
        with torch.inference_mode():
            return wrapper(torch.from_numpy(inputs))

    return eager


def _timed(call: Callable[[npt.NDArray[np.float32]], Any], inputs: list[Any]) -> list[int]:
    clock = time.perf_counter_ns
    costs = []
    gc.collect()
    gc.disable()
    try:
        for item in inputs:
            started = clock()
            call(item)
            costs.append(clock() - started)
    finally:
        gc.enable()
    return costs


def _median_run(runs: list[list[int]]) -> dict[str, float]:
    runs.sort(key=lambda costs: percentile(costs, 50))
    costs = runs[len(runs) // 2]
    return {"calls": len(costs), "p50_ns": percentile(costs, 50), "p99_ns": percentile(costs, 99)}


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    print(f"\n[inference] DeepLOB, window {WINDOW}, {LEVELS} levels; {ctx.runs} runs")
    if not have("torch") or not have("tradekernel_models"):
        note("torch is not installed: the model is exported by the training extra; skipped")
        return {"skipped": "torch (the models plug-in's train extra) is not installed"}
    figures: dict[str, Any] = {}
    calls = 300 if ctx.quick else 2_000
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        eager = _export_deeplob(root / "deeplob" / "1")
        _export_deeplob(root / "deeplob" / "2")
        registry = ModelRegistry(root)
        # The registry logs every stage change; the log line is not what is timed here.
        logging.getLogger("kernel.serving.registry").setLevel(logging.ERROR)

        async def load(version: str) -> int:
            started = time.perf_counter_ns()
            await registry.load("deeplob", version)
            return time.perf_counter_ns() - started

        load_ns = [asyncio.run(load(version)) for version in ("1", "2")]
        registry.promote("deeplob", "1")
        served = registry.get("deeplob", "1").model
        generator = np.random.default_rng(0)
        pool = generator.normal(size=(INPUTS, WINDOW, LEVELS * 4)).astype(np.float32)
        singles = [pool[index % INPUTS][None, ...] for index in range(calls)]

        # Same answers first: a latency comparison of two different computations means nothing.
        onnx_answer = served.predict(pool[:8])
        torch_answer = eager(pool[:8])[0].numpy()
        largest_difference = float(np.abs(onnx_answer - torch_answer).max())

        onnx_runs, torch_runs = [], []
        for _ in range(ctx.runs):
            onnx_runs.append(_timed(served.predict, singles))
            torch_runs.append(_timed(eager, singles))
        onnx = _median_run(onnx_runs)
        eager_figures = _median_run(torch_runs)
        figures["batch_1"] = {
            "onnxruntime": onnx,
            "torch_eager": eager_figures,
            "speedup_p50": eager_figures["p50_ns"] / onnx["p50_ns"],
            "speedup_p99": eager_figures["p99_ns"] / onnx["p99_ns"],
            "largest_probability_difference": largest_difference,
        }
        table(
            "inference at batch 1: ns per call, p50 / p99 (one thread each)",
            ["engine", "p50", "p99", "torch / onnxruntime"],
            [
                ["onnxruntime", fmt_ns(onnx["p50_ns"]), fmt_ns(onnx["p99_ns"]), ""],
                [
                    "torch eager",
                    fmt_ns(eager_figures["p50_ns"]),
                    fmt_ns(eager_figures["p99_ns"]),
                    f"{figures['batch_1']['speedup_p50']:.2f}x p50, "
                    f"{figures['batch_1']['speedup_p99']:.2f}x p99",
                ],
            ],
        )

        batching = {}
        rows = []
        for size in BATCHES:
            batches = [pool[(i * size) % INPUTS : (i * size) % INPUTS + size] for i in range(64)]
            batches = [batch for batch in batches if len(batch) == size]
            runs = [_timed(served.predict, batches) for _ in range(ctx.runs)]
            per_call = _median_run(runs)
            per_input = per_call["p50_ns"] / size
            batching[str(size)] = {**per_call, "per_input_p50_ns": per_input}
            rows.append(
                [
                    str(size),
                    fmt_ns(per_call["p50_ns"]),
                    fmt_ns(per_input),
                    f"{batching['1']['per_input_p50_ns'] / per_input:.2f}x",
                ]
            )
        figures["batching"] = batching
        print(
            f"  same inputs, same answers: largest probability difference {largest_difference:.1e}"
        )
        table(
            "onnxruntime batching: instruments due in the same tick, one call",
            ["batch", "p50 per call", "p50 per input", "gain per input"],
            rows,
        )

        # Latency while versions load in a worker thread and promotions switch the route,
        # against the same calls with nothing else going on; each call reads the route,
        # as the serving engine does.
        stop = threading.Event()

        def keep_loading() -> None:
            background_priority()  # as the registry's loading thread does
            folder = root / "deeplob" / "2"
            files = VersionFiles(folder / "model.onnx", folder / "metadata.json")
            while not stop.is_set():
                open_version("deeplob", "2", files, "")

        def routed(inputs: npt.NDArray[np.float32]) -> Any:
            production = registry.route("deeplob").production
            assert production is not None
            return production.model.predict(inputs)

        steady_runs, swapping_runs = [], []
        for _ in range(ctx.runs):
            steady_runs.append(_timed(routed, singles))
            loader = threading.Thread(target=keep_loading)
            costs = []
            with LoadingWindow():  # what the registry does around each load
                loader.start()
                for start in range(0, len(singles), 100):
                    registry.promote("deeplob", "2" if start % 200 == 0 else "1")
                    costs += _timed(routed, singles[start : start + 100])
                stop.set()
                loader.join()
            stop.clear()
            swapping_runs.append(costs)
        steady, swapping = _median_run(steady_runs), _median_run(swapping_runs)
        figures["during_swaps"] = {
            "steady": steady,
            "loading_and_promoting": swapping,
            "p99_ratio": swapping["p99_ns"] / steady["p99_ns"],
        }
        table(
            "onnxruntime at batch 1 while versions load (worker thread) and promotions switch",
            ["", "p50", "p99"],
            [
                ["steady", fmt_ns(steady["p50_ns"]), fmt_ns(steady["p99_ns"])],
                ["during swaps", fmt_ns(swapping["p50_ns"]), fmt_ns(swapping["p99_ns"])],
            ],
        )
        print(f"  p99 during swaps / steady: {figures['during_swaps']['p99_ratio']:.2f}x")

        promotions = []
        for turn in range(200):
            version = "2" if turn % 2 == 0 else "1"
            started = time.perf_counter_ns()
            registry.promote("deeplob", version)
            promotions.append(time.perf_counter_ns() - started)
        registry.close()
        figures["hot_swap"] = {
            "load_and_validate_ms": median([ns / 1e6 for ns in load_ns]),
            "promote_p50_ns": percentile(promotions, 50),
            "promote_p99_ns": percentile(promotions, 99),
        }
        table(
            "hot swap",
            ["load + validate (worker thread)", "promote p50", "promote p99"],
            [
                [
                    f"{figures['hot_swap']['load_and_validate_ms']:.1f} ms",
                    fmt_ns(figures["hot_swap"]["promote_p50_ns"]),
                    fmt_ns(figures["hot_swap"]["promote_p99_ns"]),
                ]
            ],
        )
        print(
            "  after promote returns, every new inference reads the new route; "
            "inferences already under way finish on the old version"
        )
    return figures
