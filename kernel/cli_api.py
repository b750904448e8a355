"""Command-line commands that talk to a running kernel over its gRPC API.

``tradekernel status``, ``orders``, ``positions``, ``halt``, ``resume``,
``models [list|load|promote|shadow|canary|rollback]`` and ``plugins
status|enable|disable`` connect to ``--address``
(default ``$TRADEKERNEL_API_ADDRESS`` or ``127.0.0.1:50051``) with the bearer
token of ``--token`` (default ``$TRADEKERNEL_API_TOKEN``; prefer the
variable, since arguments show in the process list). With ``--ca`` (default
``$TRADEKERNEL_API_CA``) they speak TLS, trusting that CA; ``--cert`` and
``--key`` (``$TRADEKERNEL_API_CERT``, ``$TRADEKERNEL_API_KEY``) add a client
certificate for mutual TLS. They print tables, or one JSON object with
``--json``, and exit 0 when the call succeeded, 1 when the API answered with
an error and 2 on a usage error such as a missing token. Tokens are never
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO

from tradekernel_sdk.client import (
    ApiError,
    KernelClient,
    KernelStatus,
    ModelView,
    OrderView,
    PluginView,
    PositionView,
    RiskState,
    TlsFiles,
    Unavailable,
)
from tradekernel_sdk.fixedpoint import from_fixed
from tradekernel_sdk.orders import FEE_PRECISION

__all__ = [
    "API_COMMANDS",
    "DEFAULT_ADDRESS",
    "PLUGIN_API_COMMANDS",
    "add_api_commands",
    "add_plugin_api_commands",
    "run_api_command",
]

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
ADDRESS_ENV: Final = "TRADEKERNEL_API_ADDRESS"
TOKEN_ENV: Final = "TRADEKERNEL_API_TOKEN"
CA_ENV: Final = "TRADEKERNEL_API_CA"
CERT_ENV: Final = "TRADEKERNEL_API_CERT"
KEY_ENV: Final = "TRADEKERNEL_API_KEY"
API_COMMANDS: Final = frozenset({"status", "orders", "positions", "halt", "resume", "models"})
"""The ``command`` values :func:`run_api_command` handles."""
PLUGIN_API_COMMANDS: Final = frozenset({"status", "enable", "disable"})
"""The ``tradekernel plugins`` subcommands that go through the API."""

_MAX_MESSAGE: Final = 300


def _connection(parser: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    # A subcommand's options leave unset what it was not given, so options put
    # before the subcommand (on its parent) still count.
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if inherit else {}
    parser.add_argument(
        "--address",
        help=f"the kernel's API, HOST:PORT (default ${ADDRESS_ENV} or {DEFAULT_ADDRESS})",
        **unset,
    )
    parser.add_argument(
        "--token",
        help=f"bearer token (default ${TOKEN_ENV}; the variable keeps it out of ps)",
        **unset,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object", **unset)
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds per call (default 10)",
        **(unset or {"default": 10.0}),
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help=f"speak TLS, trusting this CA's PEM file (default ${CA_ENV})",
        **unset,
    )
    parser.add_argument(
        "--cert",
        metavar="FILE",
        help=f"client certificate for mutual TLS (default ${CERT_ENV})",
        **unset,
    )
    parser.add_argument(
        "--key", metavar="FILE", help=f"the client certificate's key (default ${KEY_ENV})", **unset
    )


def _model_version(text: str) -> tuple[str, str]:
    name, _, version = text.partition(":")
    if not name or not version:
        raise argparse.ArgumentTypeError(f"expected NAME:VERSION, got {text!r}")
    return name, version


def _add_model_commands(models: argparse.ArgumentParser) -> None:
    """Add ``list``, ``load``, ``promote``, ``shadow``, ``canary`` and ``rollback``."""
    commands = models.add_subparsers(dest="models_command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list the model versions (API, scope read)")
    listing.add_argument("--name", default=argparse.SUPPRESS, help="only this model's versions")
    _connection(listing, inherit=True)
    load = commands.add_parser(
        "load",
        help="load and validate a version in the background; it starts loaded (API, scope admin)",
    )
    load.add_argument("model", type=_model_version, metavar="NAME:VERSION")
    load.add_argument("--uri", default="", help="where the kernel finds it (default: repository)")
    load.add_argument("--sha256", default="", help="the model file's expected SHA-256 (hex)")
    _connection(load, inherit=True)
    for action, does in (
        ("promote", "make a loaded version production; the previous one is retired"),
        ("shadow", "run a loaded version beside production, recorded, never acted on"),
    ):
        parser = commands.add_parser(action, help=f"{does} (API, scope admin)")
        parser.add_argument("model", type=_model_version, metavar="NAME:VERSION")
        _connection(parser, inherit=True)
    canary = commands.add_parser(
        "canary",
        help="route chosen instruments, or a share of them, to a version (API, scope admin)",
    )
    canary.add_argument("model", type=_model_version, metavar="NAME:VERSION")
    canary.add_argument(
        "--bps", type=int, default=0, help="share of instruments, in basis points (0 to 10000)"
    )
    canary.add_argument(
        "--instrument",
        action="append",
        default=[],
        metavar="VENUE.SYMBOL",
        help="an instrument it answers for (repeat for several)",
    )
    _connection(canary, inherit=True)
    rollback = commands.add_parser(
        "rollback", help="return to the production version before this one (API, scope admin)"
    )
    rollback.add_argument("name", help="the model's name")
    rollback.add_argument(
        "--from",
        dest="from_version",
        required=True,
        metavar="VERSION",
        help="the production version to leave (a repeated rollback then fails)",
    )
    _connection(rollback, inherit=True)


def add_api_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``status``, ``orders``, ``positions``, ``halt`` and ``resume`` on ``subparsers``."""
    status = subparsers.add_parser(
        "status",
        help="show a running kernel's components, books and trading state (API, scope read)",
    )
    _connection(status)

    orders = subparsers.add_parser(
        "orders", help="list a running kernel's orders, newest first (API, scope read)"
    )
    orders.add_argument("--open", action="store_true", help="only orders still working")
    orders.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    _connection(orders)

    positions = subparsers.add_parser(
        "positions", help="list a running kernel's positions and P&L (API, scope read)"
    )
    positions.add_argument("--all", action="store_true", help="include flat positions")
    _connection(positions)

    halt = subparsers.add_parser(
        "halt", help="halt trading and cancel every working order (API, scope trade)"
    )
    halt.add_argument("--reason", default="halted from the command line", help="recorded why")
    _connection(halt)

    resume = subparsers.add_parser("resume", help="resume trading (API, scope admin)")
    resume.add_argument("--reason", default="resumed from the command line", help="recorded why")
    resume.add_argument("--state", choices=("active", "reducing"), default="active")
    _connection(resume)

    models = subparsers.add_parser(
        "models",
        help="list a running kernel's model versions, or load, promote, shadow, canary or "
        "roll them back (API)",
    )
    models.add_argument("--name", default="", help="only this model's versions")
    _connection(models)
    _add_model_commands(models)


def add_plugin_api_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``plugins status``, ``enable`` and ``disable`` (over the API) on ``subparsers``."""
    status = subparsers.add_parser(
        "status", help="a running kernel's plug-ins and what became of each (API, scope read)"
    )
    _connection(status)
    for action, does in (
        ("enable", "switch a plug-in back on in a running kernel"),
        ("disable", "switch a plug-in off in a running kernel: its strategies stop"),
    ):
        parser = subparsers.add_parser(action, help=f"{does} (API, scope admin)")
        parser.add_argument("name", help="the plug-in's name, as plugins status shows it")
        _connection(parser)


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    """Return the TLS files of the flags or the environment; None for plaintext."""
    ca = args.ca or os.environ.get(CA_ENV)
    cert = args.cert or os.environ.get(CERT_ENV)
    key = args.key or os.environ.get(KEY_ENV)
    if (cert is None) != (key is None):
        raise ValueError("--cert and --key: give both for a client certificate, or neither")
    if ca is None and cert is None:
        return None
    return TlsFiles(ca_file=ca, cert_file=cert, key_file=key)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def run_api_command(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run one API command parsed by :func:`add_api_commands`; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    command: str = args.command
    if command == "plugins":
        command = f"plugins {args.plugins_command}"
    elif command == "models" and getattr(args, "models_command", None):
        command = f"models {args.models_command}"
    address = args.address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS
    token = args.token or os.environ.get(TOKEN_ENV)
    if command not in _RUNNERS:
        print(f"tradekernel: not an API command: {command}", file=err)
        return 2
    if not token:
        print(f"tradekernel {command}: no API token: set {TOKEN_ENV} or pass --token", file=err)
        return 2
    try:
        tls = _tls(args)
        client = KernelClient(address, token, timeout=args.timeout, tls=tls)
    except ValueError as error:
        print(f"tradekernel {command}: {_one_line(str(error))}", file=err)
        return 2
    try:
        with client:
            data, lines = _RUNNERS[command](client, args)
    except Unavailable as error:
        print(
            f"tradekernel {command}: cannot use the API at {address}: {_one_line(str(error))}",
            file=err,
        )
        return 1
    except ApiError as error:
        print(f"tradekernel {command}: {_one_line(str(error))}", file=err)
        return 1
    if args.json:
        print(json.dumps(data), file=out)
    else:
        for line in lines:
            print(line, file=out)
    return 0


# ---------------------------------------------------------------------------
# Commands: each returns (JSON data, lines of the human-readable table)

_Result = tuple[dict[str, Any], list[str]]


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def _duration(ns: int) -> str:
    seconds = ns // 1_000_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"


def _status(client: KernelClient, args: argparse.Namespace) -> _Result:
    status: KernelStatus = client.status()
    data: dict[str, Any] = {
        "trading_state": status.trading_state,
        "ts_started": status.ts_started,
        "uptime_ns": status.uptime_ns,
        "components": [
            {"name": c.name, "state": c.state, "detail": c.detail} for c in status.components
        ],
        "books": [
            {
                "venue": b.venue,
                "symbol": b.symbol,
                "state": b.state.value if b.state else "unknown",
                "sequence": b.sequence,
                "ts_recv": b.ts_recv,
                "bid_levels": b.bid_levels,
                "ask_levels": b.ask_levels,
            }
            for b in status.books
        ],
    }
    lines = [
        f"trading      {status.trading_state}",
        f"uptime       {_duration(status.uptime_ns)}",
        "",
        *_table(
            ["COMPONENT", "STATE", "DETAIL"],
            [[c.name, c.state, c.detail] for c in status.components],
        ),
        "",
        *_table(
            ["BOOK", "STATE", "SEQUENCE", "BIDS", "ASKS"],
            [
                [
                    f"{b.venue}.{b.symbol}",
                    b.state.value if b.state else "unknown",
                    str(b.sequence),
                    str(b.bid_levels),
                    str(b.ask_levels),
                ]
                for b in status.books
            ],
        ),
    ]
    return data, lines


def _order_data(view: OrderView) -> dict[str, Any]:
    order = view.order
    return {
        "client_order_id": order.client_order_id,
        "strategy": order.strategy,
        "venue": order.venue,
        "symbol": order.symbol,
        "side": order.side.value,
        "order_type": order.order_type.value,
        "quantity": view.quantity_text,
        "price": view.price_text or None,
        "status": order.status.value,
        "filled_quantity": view.filled_text,
        "fees": from_fixed(order.fees, FEE_PRECISION),
        "reason": order.reason,
        "ts_event": order.ts_event,
    }


def _orders(client: KernelClient, args: argparse.Namespace) -> _Result:
    views = client.list_orders(open_only=args.open, limit=max(args.limit, 0))
    rows = [
        [
            v.order.client_order_id,
            v.order.strategy,
            f"{v.order.venue}.{v.order.symbol}",
            v.order.side.value,
            v.order.order_type.value,
            v.quantity_text,
            v.price_text or "-",
            v.filled_text,
            v.order.status.value,
        ]
        for v in views
    ]
    headers = ["ID", "STRATEGY", "INSTRUMENT", "SIDE", "TYPE", "QTY", "PRICE", "FILLED", "STATUS"]
    lines = _table(headers, rows) if views else ["no orders"]
    return {"orders": [_order_data(v) for v in views]}, lines


def _position_data(position: PositionView) -> dict[str, Any]:
    return {
        "venue": position.venue,
        "symbol": position.symbol,
        "quantity": position.quantity_text,
        "cost": str(position.cost),
        "realised_pnl": str(position.realised_pnl),
        "unrealised_pnl": None if position.unrealised_pnl is None else str(position.unrealised_pnl),
        "fees": from_fixed(position.fees, FEE_PRECISION),
        "mark_price": position.mark_text or None,
    }


def _positions(client: KernelClient, args: argparse.Namespace) -> _Result:
    positions = client.positions(include_flat=args.all)
    rows = [
        [
            f"{p.venue}.{p.symbol}",
            p.quantity_text,
            str(p.cost),
            str(p.realised_pnl),
            "-" if p.unrealised_pnl is None else str(p.unrealised_pnl),
            p.mark_text or "-",
        ]
        for p in positions
    ]
    headers = ["INSTRUMENT", "QTY", "COST", "REALISED", "UNREALISED", "MARK"]
    lines = _table(headers, rows) if positions else ["no positions"]
    return {"positions": [_position_data(p) for p in positions]}, lines


def _risk_result(state: RiskState) -> _Result:
    data = {
        "state": state.state,
        "reason": state.reason,
        "approvals": state.approvals,
        "cancels": state.cancels,
        "denials": {name: count for name, count in state.denials.items() if count},
    }
    lines = [f"trading      {state.state}", f"reason       {state.reason or '-'}"]
    return data, lines


def _halt(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _risk_result(client.halt(args.reason))


def _resume(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _risk_result(client.resume(args.reason, args.state))


def _model_data(model: ModelView) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "stage": model.stage,
        "canary_bps": model.canary_bps,
        "canary_instruments": list(model.canary_instruments),
        "sha256": model.sha256,
        "uri": model.uri,
        "ts_loaded": model.ts_loaded,
        "ts_stage": model.ts_stage,
        "metrics": None if model.metrics is None else vars(model.metrics),
        "component": None if model.component is None else vars(model.component),
    }


def _model_uri(model: ModelView) -> str:
    """Return the uri, saying so when a component version's component is down."""
    component = model.component
    if component is None or component.up:
        return model.uri
    instead = f"{component.stand_in} answers" if component.stand_in else "down"
    return f"{model.uri} (down; {instead})"


def _models(client: KernelClient, args: argparse.Namespace) -> _Result:
    models = client.models(args.name)
    rows = [
        [
            m.name,
            m.version,
            m.stage + (f" {m.canary_bps} bps" if m.stage == "canary" else ""),
            m.sha256[:12] or "-",
            _model_uri(m),
        ]
        for m in models
    ]
    lines = (
        _table(["MODEL", "VERSION", "STAGE", "SHA256", "URI"], rows) if models else ["no models"]
    )
    return {"models": [_model_data(m) for m in models]}, lines


def _model_changed(model: ModelView) -> _Result:
    stage = model.stage
    if stage == "canary":
        chosen = ", ".join(model.canary_instruments)
        stage += f" {model.canary_bps} bps" + (f" + {chosen}" if chosen else "")
    row = [model.name, model.version, stage, model.sha256[:12] or "-", _model_uri(model)]
    return {"model": _model_data(model)}, _table(
        ["MODEL", "VERSION", "STAGE", "SHA256", "URI"], [row]
    )


def _models_load(client: KernelClient, args: argparse.Namespace) -> _Result:
    name, version = args.model
    return _model_changed(client.load_model(name, version, args.uri, args.sha256))


def _models_promote(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _model_changed(client.promote_model(*args.model))


def _models_shadow(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _model_changed(client.shadow_model(*args.model))


def _models_canary(client: KernelClient, args: argparse.Namespace) -> _Result:
    name, version = args.model
    return _model_changed(client.canary_model(name, version, args.bps, args.instrument))


def _models_rollback(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _model_changed(client.rollback_model(args.name, args.from_version))


def _plugin_data(plugin: PluginView) -> dict[str, Any]:
    return {
        "name": plugin.name,
        "status": plugin.status,
        "reason": plugin.reason,
        "source": plugin.source,
        "module": plugin.module,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "registers": {kind: list(names) for kind, names in plugin.registers.items()},
    }


def _plugin_row(plugin: PluginView) -> list[str]:
    registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in plugin.registers.items())
    return [plugin.name, plugin.status, plugin.reason or registers or "-"]


def _plugins_status(client: KernelClient, args: argparse.Namespace) -> _Result:
    plugins = client.plugins()
    rows = [_plugin_row(p) for p in plugins]
    lines = _table(["PLUG-IN", "STATUS", "REGISTERS / REASON"], rows) if plugins else ["none"]
    return {"plugins": [_plugin_data(p) for p in plugins]}, lines


def _plugin_switched(plugin: PluginView) -> _Result:
    return {"plugin": _plugin_data(plugin)}, _table(
        ["PLUG-IN", "STATUS", "REGISTERS / REASON"], [_plugin_row(plugin)]
    )


def _plugins_enable(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _plugin_switched(client.enable_plugin(args.name))


def _plugins_disable(client: KernelClient, args: argparse.Namespace) -> _Result:
    return _plugin_switched(client.disable_plugin(args.name))


_RUNNERS: Final[dict[str, Callable[[KernelClient, argparse.Namespace], _Result]]] = {
    "status": _status,
    "orders": _orders,
    "positions": _positions,
    "halt": _halt,
    "resume": _resume,
    "models": _models,
    "models list": _models,
    "models load": _models_load,
    "models promote": _models_promote,
    "models shadow": _models_shadow,
    "models canary": _models_canary,
    "models rollback": _models_rollback,
    "plugins status": _plugins_status,
    "plugins enable": _plugins_enable,
    "plugins disable": _plugins_disable,
}
