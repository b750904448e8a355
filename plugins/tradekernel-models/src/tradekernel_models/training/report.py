"""The training report: training curves and a confusion matrix as PNG, and one HTML page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, work without a display

import matplotlib.pyplot as plt
import numpy as np

from kernel.models.dataset import CLASS_NAMES

__all__ = ["CONFUSION_PNG", "CURVES_PNG", "REPORT_HTML", "write_report"]

CURVES_PNG = "training_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
REPORT_HTML = "report.html"

_BASELINES = ("majority", "persistence", "logistic_regression")


def _curves(folds: list[dict[str, Any]], path: Path) -> None:
    figure, (losses, accuracy) = plt.subplots(1, 2, figsize=(11, 4))
    for fold in folds:
        history = fold["history"]
        epochs = [entry["epoch"] for entry in history]
        line = losses.plot(
            epochs, [e["train_loss"] for e in history], label=f"fold {fold['fold']} train"
        )
        losses.plot(
            epochs,
            [e["validation_loss"] for e in history],
            linestyle="--",
            color=line[0].get_color(),
            label=f"fold {fold['fold']} validation",
        )
        accuracy.plot(
            epochs, [e["validation_accuracy"] for e in history], label=f"fold {fold['fold']}"
        )
    losses.set(title="loss (cross-entropy + weighted volatility MSE)", xlabel="epoch")
    accuracy.set(title="validation accuracy", xlabel="epoch")
    losses.legend(fontsize="small")
    accuracy.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _confusion(matrix: list[list[int]], title: str, path: Path) -> None:
    counts = np.asarray(matrix)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    figure, axes = plt.subplots(figsize=(4.8, 4.2))
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            axes.text(
                column,
                row,
                f"{counts[row, column]}\n{shares[row, column]:.0%}",
                ha="center",
                va="center",
            )
    axes.set(
        xticks=range(len(CLASS_NAMES)),
        yticks=range(len(CLASS_NAMES)),
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _row(name: str, figures: dict[str, Any]) -> str:
    return (
        f"<tr><td>{html.escape(name)}</td><td>{figures['n']}</td>"
        f"<td>{figures['accuracy']:.4f}</td><td>{figures['macro_f1']:.4f}</td></tr>"
    )


def _results_table(figures: dict[str, Any]) -> str:
    rows = [_row("model", figures)]
    rows += [_row(name, figures["baselines"][name]) for name in _BASELINES]
    return (
        "<table><tr><th></th><th>n</th><th>accuracy</th><th>macro-F1</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _per_class_table(figures: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{name}</td><td>{values['precision']:.4f}</td><td>{values['recall']:.4f}</td>"
        f"<td>{values['f1']:.4f}</td><td>{values['support']}</td></tr>"
        for name, values in figures["per_class"].items()
    )
    return (
        "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
        + rows
        + "</table>"
    )


def _volatility_table(figures: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{name}</td><td>{values['mae']:.4f}</td><td>{values['rmse']:.4f}</td></tr>"
        for name, values in figures["volatility_bps"].items()
    )
    return "<table><tr><th>predictor</th><th>MAE</th><th>RMSE</th></tr>" + rows + "</table>"


def write_report(folder: Path, metadata: dict[str, Any], folds: list[dict[str, Any]]) -> list[Path]:
    """Write the pictures and ``report.html`` into ``folder``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    _curves(folds, folder / CURVES_PNG)
    final = metadata["metrics"]["test"]
    _confusion(
        final["confusion"], f"test, fold {folds[-1]['fold']} (stored model)", folder / CONFUSION_PNG
    )
    label = metadata["label"]
    features = metadata["input"]
    sections = [
        f"<h1>{html.escape(metadata['name'])}: training report</h1>",
        "<p>"
        + html.escape(
            f"{metadata['venue']} {metadata['symbol']}, {metadata['events']:,} book events; "
            f"window {features['window']}, {features['levels']} levels, "
            f"normalisation {features['normalisation']['method']}; horizon {label['horizon']} "
            f"events, threshold {label['threshold']}; code {metadata['code_version']}"
        )
        + "</p>",
        "<h2>Test figures of the stored model (last walk-forward fold)</h2>",
        _results_table(final),
        _per_class_table(final),
        "<h3>Next-interval realised volatility (basis points)</h3>",
        _volatility_table(final),
        f'<img src="{CONFUSION_PNG}" alt="confusion matrix">',
        "<h2>Every walk-forward fold (test part)</h2>",
    ]
    for fold in folds:
        sections.append(
            f"<h3>fold {fold['fold']}: train {fold['samples']['train']}, validation "
            f"{fold['samples']['validation']}, test {fold['samples']['test']} samples; "
            f"best epoch {fold['best_epoch']} of {len(fold['history'])}</h3>"
        )
        sections.append(_results_table(fold["test"]))
    sections.append("<h2>Training curves</h2>")
    sections.append(f'<img src="{CURVES_PNG}" alt="training curves">')
    parity = metadata["parity"]
    sections.append(
        "<h2>ONNX export</h2><p>"
        + html.escape(
            f"opset {metadata['onnx']['opset']}; parity on {parity['samples']} held-out inputs: "
            f"largest probability difference {parity['max_probability_difference']:.3g}, "
            "largest relative volatility difference "
            f"{parity['max_volatility_relative_difference']:.3g} "
            f"(tolerance {parity['tolerance']})"
        )
        + "</p>"
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(metadata['name'])} training report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .6em}"
        "</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
    (folder / REPORT_HTML).write_text(page)
    return [folder / CURVES_PNG, folder / CONFUSION_PNG, folder / REPORT_HTML]
