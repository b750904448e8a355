"""The ``tradekernel`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

import kernel
from kernel.adapters.base import STAT_NAMES
from kernel.adapters.registry import REPLAY_VENUES, create_feed
from kernel.bus import Bus
from kernel.cli_api import (
    API_COMMANDS,
    PLUGIN_API_COMMANDS,
    add_api_commands,
    add_plugin_api_commands,
    run_api_command,
)
from kernel.emulator.cli import serve as serve_emulator
from kernel.journal import verify as verify_journal
from kernel.live.record import add_record_command, run_record_command
from kernel.logs import setup_logging
from kernel.metrics import StageLatency
from kernel.models.cli import (
    add_models_eval_command,
    add_models_retrain_command,
    add_train_command,
    is_models_eval,
    is_models_retrain,
    run_eval,
    run_retrain,
    run_train,
)
from kernel.plugins import PluginHost
from kernel.plugins.cli import plugins_list
from kernel.recording import CODECS, RecordingWriter, merge_frames, open_reader
from kernel.replay import Progress, ReplayReport, replay
from kernel.service import ConfigError, StartupError, default_config, load_config, run

__all__ = ["console_main", "main"]


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or 'max', got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"speed must be positive, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradekernel",
        description="A trading kernel: verified order books, risk, routing and a journal.",
    )
    parser.add_argument("--version", action="version", version=f"tradekernel {kernel.__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    parser.add_argument("--log-json", action="store_true", help="write logs as JSON lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the kernel (without --config: the first-party strategies on bundled data)",
        description="Run the kernel. Without --config it replays the bundled Binance spot "
        "slice through verified books into the first-party strategies, which trade on the "
        "paper venue under risk limits, then prints a summary.",
    )
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument("--no-progress", action="store_true", help="hide the progress indicator")

    rep = commands.add_parser(
        "replay",
        help="replay recorded frames through a venue's sync and book",
        description="Replay recorded frames through a venue feed. Reads tradekernel recordings, "
        "hftbacktest '<ns> <json>' captures and cryptofeed captures (gzip or plain).",
    )
    rep.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rep.add_argument("--venue", required=True, choices=REPLAY_VENUES)
    rep.add_argument(
        "--verify",
        action="store_true",
        help="check every oracle the data carries (bookTicker, checksums, sequence)",
    )
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="N|max",
        help="replay at N times recorded speed, or 'max' (default)",
    )
    rep.add_argument("--no-progress", action="store_true", help="hide the progress indicator")
    add_record_command(commands)
    plugins = commands.add_parser(
        "plugins", help="installed plug-ins", description="Inspect installed plug-ins."
    )
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    listing = plugin_commands.add_parser(
        "list",
        help="every plug-in, its distribution and version, what it registers, whether enabled",
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    add_plugin_api_commands(plugin_commands)

    journal = commands.add_parser(
        "journal", help="inspect a journal", description=("Inspect the order journal.")
    )
    journal_commands = journal.add_subparsers(dest="journal_command", required=True)
    verify_journal = journal_commands.add_parser(
        "verify", help="check every record's CRC and sequence; exit 1 on damage"
    )
    verify_journal.add_argument("path", type=Path, metavar="FILE")
    verify_journal.add_argument("--json", action="store_true", help="print one JSON object")

    convert = commands.add_parser(
        "convert",
        help="write captures as one tradekernel recording (TKR1)",
        description="Merge captures (any format replay reads) by receive time into a TKR1 "
        "recording; appends when OUT exists.",
    )
    convert.add_argument("files", nargs="+", type=Path, metavar="FILE")
    convert.add_argument("--out", required=True, type=Path, help="the TKR1 file to write")
    convert.add_argument("--codec", default="zstd", choices=sorted(CODECS))
    emulator = commands.add_parser(
        "emulator",
        help="serve a venue emulator on 127.0.0.1 that replays recordings",
        description="Serve Binance spot or OKX wire formats on 127.0.0.1 (REST and "
        "websockets), replaying recorded frames and matching signed orders against the "
        "replayed book. See docs/emulator.md.",
    )
    emulator.add_argument("--venue", required=True, choices=("binance", "binance-usdm", "okx"))
    emulator.add_argument("--data", nargs="+", required=True, type=Path, metavar="FILE")
    emulator.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    emulator.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X|max",
        help="replay at X times recorded speed, or 'max' (default: as fast as clients read)",
    )
    emulator.add_argument(
        "--loop",
        action="store_true",
        help="replay again and again; each pass restarts the market (connections closed)",
    )
    add_api_commands(commands)
    add_models_eval_command(commands.choices["models"])
    add_models_retrain_command(commands.choices["models"])
    add_train_command(commands)
    return parser


def _emulator_command(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.data if not path.exists()]
    if missing:
        print(f"tradekernel emulator: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    passes = None if args.loop else 1
    return uvloop.run(
        serve_emulator(args.venue, args.data, port=args.port, speed=args.speed, passes=passes)
    )


def _convert_command(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.files if not path.exists()]
    if missing:
        print(f"tradekernel convert: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    readers = [open_reader(path) for path in args.files]
    with RecordingWriter(args.out, codec=args.codec) as writer:
        for frame in merge_frames(*readers):
            writer.write(frame)
    skipped = sum(getattr(reader, "malformed_lines", 0) for reader in readers)
    written = writer.frames_written
    print(f"wrote {written:,} frames to {args.out} ({skipped:,} malformed lines skipped)")
    return 0


def _journal_verify_command(args: argparse.Namespace) -> int:
    if not args.path.is_file():
        print(f"tradekernel journal verify: no such file: {args.path}", file=sys.stderr)
        return 2
    report = verify_journal(args.path)
    data = {
        "path": str(report.path),
        "ok": report.ok,
        "records": report.records,
        "last_sequence": report.last_sequence,
        "bytes": report.size,
        "torn_tail_bytes": report.torn_tail_bytes,
        "error": report.error,
        "error_offset": report.error_offset,
    }
    if args.json:
        print(json.dumps(data))
    else:
        for key, value in data.items():
            print(f"{key:<16} {value}")
    return 0 if report.ok else 1


def _replay_command(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.files if not path.exists()]
    if missing:
        print(f"tradekernel replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    bus = Bus()
    latency = StageLatency()
    feed = create_feed(args.venue, bus, verify=args.verify, latency=latency)
    readers = [open_reader(path) for path in args.files]
    progress = None if args.no_progress or args.json else Progress("replay")
    report: ReplayReport = uvloop.run(
        replay(merge_frames(*readers), feed, speed=args.speed, progress=progress, latency=latency)
    )
    report.reader_malformed = sum(getattr(reader, "malformed_lines", 0) for reader in readers)
    data = report.as_json()
    if args.json:
        print(json.dumps(data))
    else:
        for key in STAT_NAMES:
            print(f"{key:<20} {data[key]:>12,}")
        print(f"{'seconds':<20} {data['seconds']:>12.3f}")
        print(f"{'level updates/s':<20} {data['level_updates_per_second']:>12,}")
        for symbol, book in data["books"].items():
            best = f"best bid {book['best_bid']}, best ask {book['best_ask']}"
            print(f"{symbol}: {book['state']}, {best}")
    return 1 if report.mismatches else 0


def _run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as error:
        print(f"tradekernel run: {error}", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, json_lines=config.logging.json or args.log_json)
    try:
        return run(config, json_summary=args.json, progress=not args.no_progress)
    except (ConfigError, StartupError) as error:
        print(f"tradekernel run: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, json_lines=args.log_json)
    if is_models_eval(args):
        return run_eval(args)
    if is_models_retrain(args):
        return run_retrain(args)
    if args.command == "train":
        return run_train(args)
    if args.command in API_COMMANDS or (
        args.command == "plugins" and args.plugins_command in PLUGIN_API_COMMANDS
    ):
        return run_api_command(args)
    if args.command == "replay":
        return _replay_command(args)
    if args.command == "record":
        return run_record_command(args)
    if args.command == "convert":
        return _convert_command(args)
    if args.command == "emulator":
        return _emulator_command(args)
    if args.command == "journal":
        return _journal_verify_command(args)
    if args.command == "plugins":
        host = PluginHost()
        host.load()
        print(plugins_list(host, json=args.json))
        return 0
    return _run_command(args)


def console_main() -> None:
    """Entry point of the ``tradekernel`` console script."""
    sys.exit(main())
