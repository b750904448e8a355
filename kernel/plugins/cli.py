"""Output of ``tradekernel plugins list``: every plug-in found, and what became of it."""

from __future__ import annotations

from collections import Counter

import orjson

from kernel.plugins.manager import ENTRY_POINT_GROUP, PluginHost, PluginInfo, PluginStatus

__all__ = ["plugins_list"]

_HEADER = ("NAME", "STATUS", "DISTRIBUTION", "API", "REGISTERS / REASON")


def _detail(info: PluginInfo) -> str:
    """Return what an enabled plug-in registers, or why another one is not enabled."""
    if info.status is not PluginStatus.ENABLED:
        return info.reason
    if not info.registers:
        return "(registers nothing)"
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registers.items())


def _row(info: PluginInfo) -> tuple[str, str, str, str, str]:
    """Return one table row for ``info``."""
    if info.distribution is not None:
        distribution = f"{info.distribution} {info.version or ''}".strip()
    else:
        distribution = f"({info.source})"
    return (info.name, info.status.value, distribution, info.api_version or "-", _detail(info))


def plugins_list(host: PluginHost, json: bool) -> str:
    """Return the plug-in listing as an aligned table, or as JSON when ``json`` is true."""
    infos = host.describe()
    if json:
        document = {
            "api_version": host.api_version,
            "plugins": [info.to_dict() for info in infos],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    if not infos:
        return (
            f"no plug-ins found (entry-point group {ENTRY_POINT_GROUP!r}; "
            f"kernel plug-in API {host.api_version})"
        )
    rows = [_HEADER, *(_row(info) for info in infos)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADER) - 1)]
    lines = [
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    ]
    counts = Counter(info.status for info in infos)
    summary = ", ".join(
        f"{counts[status]} {status.value}" for status in PluginStatus if counts[status]
    )
    noun = "plug-in" if len(infos) == 1 else "plug-ins"
    lines.append("")
    lines.append(f"{len(infos)} {noun} ({summary}); kernel plug-in API {host.api_version}")
    return "\n".join(lines)
