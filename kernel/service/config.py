"""Kernel configuration: a TOML file, validated into frozen dataclasses.

Every error names the field it is about (``replay[0].speed: ...``). Without a
file the kernel runs :func:`default_config`: the bundled real Binance data
replayed through verified books and the paper venue.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kernel.adapters.registry import REPLAY_VENUES
from kernel.api.tls import TlsConfig, TlsError
from kernel.live.component import LIVE_VENUES
from kernel.live.order_entry import ORDER_ENTRY_VENUES
from kernel.risk.config import RiskConfig, RiskConfigError, parse_risk_config
from kernel.serving.config import ServingConfig, parse_serving_config
from kernel.trading.runner import RunnerPolicy

__all__ = [
    "API_TOKENS_ENV",
    "BUNDLED_DATA",
    "ApiConfig",
    "ComponentSpec",
    "ConfigError",
    "JournalConfig",
    "KernelConfig",
    "LoggingConfig",
    "MetricsConfig",
    "PaperConfig",
    "PluginsConfig",
    "ReplayConfig",
    "StrategySpec",
    "default_config",
    "load_config",
    "parse_config",
]

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field."""


@dataclass(frozen=True)
class LoggingConfig:
    """Where logs go and how they look."""

    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class ReplayConfig:
    """One recorded source replayed through a venue feed."""

    venue: str
    files: tuple[Path, ...]
    speed: float | None = None  # None: as fast as possible
    verify: bool = True


@dataclass(frozen=True)
class LiveConfig:
    """One venue connected live; its frames go through the same verified feed as a replay."""

    venue: str
    symbols: tuple[str, ...]
    ws_url: str = ""  # empty: the venue's production address
    rest_url: str = ""
    ccxt_exchange: str = ""
    """For ``venue = "ccxt:ID"``: ccxt's exchange id; the venue is then named ID."""
    ccxt_options: Mapping[str, Any] = field(default_factory=dict)
    """The ``ccxt`` table: passed to ccxt's client as its configuration."""
    trade: bool = False
    """Route orders for this venue to the venue itself (live order entry), not to paper."""


@dataclass(frozen=True)
class PaperConfig:
    """The simulated exchange."""

    enabled: bool = True
    market_venue: str = "binance"
    maker_fee_bps: float = 1.0
    taker_fee_bps: float = 5.0
    latency_ms: float = 5.0


@dataclass(frozen=True)
class JournalConfig:
    """Where orders and events are journaled, and how durably."""

    fsync: str = "batch"
    batch_records: int = 256
    batch_interval_ms: float = 5.0
    background_sync: bool = True
    """With ``batch``: due batches are fsynced by a journal thread, never on the order's path."""


@dataclass(frozen=True)
class StrategySpec:
    """One strategy instance: its name, the registered strategy it runs, its raw settings."""

    name: str
    strategy: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class PluginsConfig:
    """Which installed plug-ins may load (None: all but the blocked ones)."""

    allow: tuple[str, ...] | None = None
    block: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiConfig:
    """The gRPC API. Tokens come from ``[api.tokens]`` and from the environment variable
    ``TRADEKERNEL_API_TOKENS`` (``token=read+trade,other=admin``), never from logs."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 50051
    tokens: Mapping[str, frozenset[str]] = field(default_factory=dict)
    tls: TlsConfig | None = None
    """``tls_cert`` and ``tls_key`` (and ``tls_client_ca`` for mutual TLS); None: plaintext."""
    model_dir: Path | None = None
    """The model repository ``ListModels`` reads (``<name>/<version>/metadata.json``)."""


@dataclass(frozen=True)
class ComponentSpec:
    """One out-of-process component: an endpoint to dial, or a command to spawn and supervise.

    ``entry_point`` names a command declared by an installed distribution in
    the ``tradekernel.components`` entry-point group. ``settings`` are sent to
    the component as its configuration.
    """

    name: str
    endpoint: str = ""
    command: tuple[str, ...] = ()
    entry_point: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    heartbeat_ms: int = 1000
    queue_size: int = 10_000
    backoff_initial_ms: int = 100
    backoff_max_ms: int = 10_000
    cancel_on_down: bool = True
    """Cancel the component's working orders while it is down (the quarantine policy)."""
    tls_ca: Path | None = None
    """Dial with TLS, trusting this CA for the component's certificate."""
    tls_cert: Path | None = None
    """The kernel's own certificate, for a component that requires mutual TLS."""
    tls_key: Path | None = None
    """The key of ``tls_cert``."""


API_TOKENS_ENV = "TRADEKERNEL_API_TOKENS"
_SCOPES = ("read", "trade", "admin")


def _api_tokens(table: _Section, environ: Mapping[str, str]) -> dict[str, frozenset[str]]:
    tokens: dict[str, frozenset[str]] = {}
    for token, scopes in table.raw.items():
        if not isinstance(scopes, list) or not all(scope in _SCOPES for scope in scopes):
            raise ConfigError(
                f"{table.path}.<token>: expected a list of scopes from {', '.join(_SCOPES)}"
            )
        tokens[token] = frozenset(scopes)
    for item in filter(None, environ.get(API_TOKENS_ENV, "").split(",")):
        token, _, scopes_text = item.partition("=")
        scopes = frozenset(filter(None, scopes_text.split("+")))
        if not token or not scopes or not scopes <= set(_SCOPES):
            raise ConfigError(
                f"{API_TOKENS_ENV}: expected token=scope+scope,... with scopes from "
                f"{', '.join(_SCOPES)}"
            )
        tokens[token.strip()] = scopes
    return tokens


@dataclass(frozen=True)
class KernelConfig:
    """Everything ``tradekernel run`` builds."""

    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    replay: tuple[ReplayConfig, ...] = ()
    live: tuple[LiveConfig, ...] = ()
    paper: PaperConfig = field(default_factory=PaperConfig)
    shutdown_timeout_s: float = 10.0
    exit_when_replay_done: bool = True
    state_dir: Path | None = None
    """Journal and venue state live here; None: a temporary folder removed at exit."""
    secrets_file: Path | None = None
    """Venue API keys (TOML, owner-only; see :mod:`kernel.live.credentials`)."""
    journal: JournalConfig = field(default_factory=JournalConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    strategies: tuple[StrategySpec, ...] = ()
    runner: RunnerPolicy = field(default_factory=RunnerPolicy)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    components: tuple[ComponentSpec, ...] = ()
    serving: ServingConfig = field(default_factory=ServingConfig)
    """Models served with onnxruntime (``[serving]``, :mod:`kernel.serving.config`)."""


def default_config() -> KernelConfig:
    """Return the embedded default: the first-party strategies on the bundled Binance slice.

    Bundled real data replays through verified books; the imbalance and
    Avellaneda-Stoikov strategies trade BTCUSDT and the momentum strategy
    ETHUSDT on the paper venue, under risk limits that make some denials
    likely; the journal and venue log live in a temporary folder.
    """
    path = BUNDLED_DATA / "default.toml"
    return load_config(path)


def load_config(path: str | Path) -> KernelConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(raw, base=path.parent)


def parse_config(
    raw: Mapping[str, Any], base: Path = Path(), environ: Mapping[str, str] | None = None
) -> KernelConfig:
    """Validate a configuration mapping; relative file paths resolve against ``base``."""
    reader = _Section(raw, "")
    kernel = reader.section("kernel")
    logging_section = reader.section("logging")
    metrics_section = reader.section("metrics")
    paper_section = reader.section("paper")
    replays = reader.array_of_tables("replay")
    lives = reader.array_of_tables("live")
    journal_section = reader.section("journal")
    runner_section = reader.section("runner")
    plugins_section = reader.section("plugins")
    strategies_section = reader.section("strategies")
    api_section = reader.section("api")
    component_sections = reader.array_of_tables("components")
    risk_raw = reader.raw.get("risk", {})
    reader.used.add("risk")
    serving_raw = reader.raw.get("serving")
    reader.used.add("serving")
    reader.reject_unknown()
    try:
        risk = parse_risk_config(risk_raw, "risk")
    except RiskConfigError as error:
        raise ConfigError(str(error)) from None
    try:
        serving = parse_serving_config(serving_raw, base)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    journal = JournalConfig(
        fsync=journal_section.choice("fsync", ("always", "batch", "never"), "batch"),
        batch_records=journal_section.integer("batch_records", 256, minimum=1, maximum=1 << 20),
        batch_interval_ms=journal_section.number(
            "batch_interval_ms", 5.0, minimum=0.0, maximum=60_000.0
        ),
        background_sync=journal_section.boolean("background_sync", True),
    )
    journal_section.reject_unknown()
    runner = RunnerPolicy(
        max_errors=runner_section.integer("max_errors", 10, minimum=0, maximum=10**9),
        budget_ns=round(
            runner_section.number("budget_ms", 1.0, minimum=0.001, maximum=60_000.0) * 1e6
        ),
        max_overruns=runner_section.integer("max_overruns", 0, minimum=0, maximum=10**9),
        cancel_on_quarantine=runner_section.boolean("cancel_on_quarantine", True),
    )
    runner_section.reject_unknown()
    allow = plugins_section.raw.get("allow")
    plugins = PluginsConfig(
        allow=None if allow is None else tuple(plugins_section.strings("allow", None)),
        block=tuple(plugins_section.strings("block", ())),
    )
    plugins_section.reject_unknown()
    api_tokens = api_section.section("tokens")
    api = ApiConfig(
        enabled=api_section.boolean("enabled", False),
        host=api_section.string("host", "127.0.0.1"),
        port=api_section.integer("port", 50051, minimum=0, maximum=65535),
        tokens=_api_tokens(api_tokens, environ if environ is not None else os.environ),
        tls=_api_tls(api_section, base),
        model_dir=_optional_path(api_section.string("model_dir", ""), base),
    )
    api_section.reject_unknown()
    strategies = []
    for name, table in strategies_section.raw.items():
        section = _Section(table, f"strategies.{name}")
        strategy = section.string("strategy", "")
        if not strategy:
            raise ConfigError(f"strategies.{name}.strategy: required (a registered strategy name)")
        settings = {key: value for key, value in section.raw.items() if key != "strategy"}
        strategies.append(StrategySpec(name=name, strategy=strategy, settings=settings))

    log_config = LoggingConfig(
        level=logging_section.choice(
            "level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
        ),
        json=logging_section.boolean("json", False),
    )
    logging_section.reject_unknown()
    metrics = MetricsConfig(
        enabled=metrics_section.boolean("enabled", True),
        host=metrics_section.string("host", "127.0.0.1"),
        port=metrics_section.integer("port", 9464, minimum=0, maximum=65535),
    )
    metrics_section.reject_unknown()
    paper = PaperConfig(
        enabled=paper_section.boolean("enabled", True),
        market_venue=paper_section.choice("market_venue", REPLAY_VENUES, "binance"),
        maker_fee_bps=paper_section.number("maker_fee_bps", 1.0, minimum=-100.0, maximum=1000.0),
        taker_fee_bps=paper_section.number("taker_fee_bps", 5.0, minimum=-100.0, maximum=1000.0),
        latency_ms=paper_section.number("latency_ms", 5.0, minimum=0.0, maximum=60_000.0),
    )
    paper_section.reject_unknown()
    replay_configs = []
    for index, section in enumerate(replays):
        prefix = f"replay[{index}]"
        files = tuple(base / name for name in section.strings("files", None))
        if not files:
            raise ConfigError(f"{prefix}.files: at least one file is required")
        missing = [str(path) for path in files if not path.exists()]
        if missing:
            raise ConfigError(f"{prefix}.files: no such file: {', '.join(missing)}")
        replay_configs.append(
            ReplayConfig(
                venue=section.choice("venue", REPLAY_VENUES, None),
                files=files,
                speed=section.speed("speed"),
                verify=section.boolean("verify", True),
            )
        )
        section.reject_unknown()
    live_configs: list[LiveConfig] = []
    for index, section in enumerate(lives):
        prefix = f"live[{index}]"
        symbols = tuple(section.strings("symbols", None))
        if not symbols:
            raise ConfigError(f"{prefix}.symbols: at least one symbol is required")
        named = section.string("venue", "")
        if named.startswith("ccxt:"):
            exchange = _ccxt_exchange(named.removeprefix("ccxt:"), f"{prefix}.venue")
            options = section.raw.get("ccxt", {})
            section.used.add("ccxt")
            if not isinstance(options, Mapping):
                raise ConfigError(f"{prefix}.ccxt: must be a table of ccxt client settings")
            live_config = LiveConfig(
                venue=exchange,
                symbols=symbols,
                ccxt_exchange=exchange,
                ccxt_options=dict(options),
            )
        else:
            live_config = LiveConfig(
                venue=section.choice("venue", tuple(LIVE_VENUES), None),
                symbols=symbols,
                ws_url=section.string("ws_url", ""),
                rest_url=section.string("rest_url", ""),
            )
        if section.boolean("trade", False):
            if live_config.ccxt_exchange or live_config.venue not in ORDER_ENTRY_VENUES:
                raise ConfigError(
                    f"{prefix}.trade: no live order entry for {named};"
                    f" venues that trade live: {', '.join(ORDER_ENTRY_VENUES)}"
                )
            live_config = replace(live_config, trade=True)
        section.reject_unknown()
        if any(other.venue == live_config.venue for other in live_configs) or any(
            replay.venue == live_config.venue for replay in replay_configs
        ):
            raise ConfigError(f"{prefix}.venue: {live_config.venue} is already a data source")
        live_configs.append(live_config)
    paper = _paper_beside_live(paper, paper_section, live_configs)
    config = KernelConfig(
        logging=log_config,
        metrics=metrics,
        replay=tuple(replay_configs),
        live=tuple(live_configs),
        paper=paper,
        shutdown_timeout_s=kernel.number("shutdown_timeout_s", 10.0, minimum=0.1, maximum=600.0),
        exit_when_replay_done=kernel.boolean("exit_when_replay_done", True),
        state_dir=_optional_path(kernel.string("state_dir", ""), base),
        secrets_file=_optional_path(kernel.string("secrets_file", ""), base),
        journal=journal,
        risk=risk,
        strategies=tuple(strategies),
        runner=runner,
        plugins=plugins,
        api=api,
        components=_components(component_sections, {spec.name for spec in strategies}, base),
        serving=serving,
    )
    kernel.reject_unknown()
    return config


def _paper_beside_live(
    paper: PaperConfig, section: _Section, lives: list[LiveConfig]
) -> PaperConfig:
    """Keep paper off a venue that trades live: quietly by default, an error when asked for."""
    for index, live in enumerate(lives):
        if not live.trade or not paper.enabled or paper.market_venue != live.venue:
            continue
        if "market_venue" not in section.raw and "enabled" not in section.raw:
            return replace(paper, enabled=False)
        raise ConfigError(
            f"paper.market_venue: {live.venue} trades live (live[{index}].trade = true) and"
            " cannot also be the paper venue's market; choose another market_venue"
            " or set paper.enabled = false"
        )
    return paper


def _components(
    sections: list[_Section], strategy_names: set[str], base: Path
) -> tuple[ComponentSpec, ...]:
    specs: list[ComponentSpec] = []
    for section in sections:
        name = section.string("name", "")
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{section.path}.name: required, letters, digits, - and _ only")
        if name in strategy_names or any(spec.name == name for spec in specs):
            raise ConfigError(f"{section.path}.name: {name!r} is already a strategy or component")
        endpoint = section.string("endpoint", "")
        command = tuple(section.strings("command", ()))
        entry_point = section.string("entry_point", "")
        if sum(map(bool, (endpoint, command, entry_point))) != 1:
            raise ConfigError(
                f"{section.path}: give exactly one of endpoint, command and entry_point"
            )
        if endpoint and not endpoint.rpartition(":")[2].isdigit():
            raise ConfigError(f"{section.path}.endpoint: expected host:port, got {endpoint!r}")
        settings = section.section("settings")
        backoff_initial = section.integer("backoff_initial_ms", 100, minimum=1, maximum=600_000)
        specs.append(
            ComponentSpec(
                name=name,
                endpoint=endpoint,
                command=command,
                entry_point=entry_point,
                settings=dict(settings.raw),
                heartbeat_ms=section.integer("heartbeat_ms", 1000, minimum=10, maximum=600_000),
                queue_size=section.integer("queue_size", 10_000, minimum=1, maximum=10_000_000),
                backoff_initial_ms=backoff_initial,
                backoff_max_ms=section.integer(
                    "backoff_max_ms", 10_000, minimum=backoff_initial, maximum=3_600_000
                ),
                cancel_on_down=section.boolean("cancel_on_down", True),
                **_component_tls(section, base),
            )
        )
        section.reject_unknown()
    return tuple(specs)


def _api_tls(section: _Section, base: Path) -> TlsConfig | None:
    """Return the API's TLS files, each read once so a bad one fails at start naming its field."""
    cert = _optional_path(section.string("tls_cert", ""), base)
    key = _optional_path(section.string("tls_key", ""), base)
    client_ca = _optional_path(section.string("tls_client_ca", ""), base)
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError(f"{section.path}.tls_client_ca: needs tls_cert and tls_key")
        return None
    if cert is None or key is None:
        missing = "tls_cert" if cert is None else "tls_key"
        raise ConfigError(f"{section.path}.{missing}: required with the other TLS file")
    tls = TlsConfig(cert, key, client_ca, section=section.path)
    try:
        tls.check()
    except TlsError as error:
        raise ConfigError(str(error)) from None
    return tls


def _component_tls(section: _Section, base: Path) -> dict[str, Path | None]:
    paths = {
        key: _optional_path(section.string(key, ""), base)
        for key in ("tls_ca", "tls_cert", "tls_key")
    }
    if (paths["tls_cert"] is None) != (paths["tls_key"] is None):
        raise ConfigError(f"{section.path}.tls_cert: give tls_cert and tls_key together")
    if paths["tls_cert"] is not None and paths["tls_ca"] is None:
        raise ConfigError(f"{section.path}.tls_ca: mutual TLS needs the component's CA")
    for key, path in paths.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"{section.path}.{key}: no such file: {path}")
    return paths


def _ccxt_exchange(exchange: str, field_name: str) -> str:
    """Check that ccxt has a websocket client called ``exchange``."""
    import ccxt.pro  # noqa: PLC0415 - ccxt is slow to import; only ccxt venues pay for it

    if not exchange or not hasattr(ccxt.pro, exchange):
        raise ConfigError(
            f"{field_name}: ccxt has no websocket client {exchange!r}"
            " (see ccxt.pro.exchanges for the ids)"
        )
    return exchange


def _optional_path(text: str, base: Path) -> Path | None:
    return base / text if text else None


class _Section:
    """Typed access to one table of the configuration, remembering which keys were read."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path or 'configuration'}: expected a table")
        self.raw = raw
        self.path = path
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> Any:
        self.used.add(key)
        return self.raw.get(key)

    def section(self, key: str) -> _Section:
        value = self._get(key)
        return _Section({} if value is None else value, self._name(key))

    def array_of_tables(self, key: str) -> list[_Section]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self._name(key)}: expected an array of tables ([[{key}]])")
        return [_Section(item, f"{self._name(key)}[{index}]") for index, item in enumerate(value)]

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)}: expected true or false, got {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{self._name(key)}: expected a string, got {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...] | None) -> list[str]:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self._name(key)}: required")
            return list(default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{self._name(key)}: expected a list of strings, got {value!r}")
        return value

    def choice(
        self, key: str, choices: tuple[str, ...], default: str | None, upper: bool = False
    ) -> str:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self._name(key)}: required, one of {', '.join(choices)}")
            return default
        if isinstance(value, str) and upper:
            value = value.upper()
        if value not in choices:
            raise ConfigError(
                f"{self._name(key)}: expected one of {', '.join(choices)}, got {value!r}"
            )
        return str(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._name(key)}: expected an integer, got {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(
                f"{self._name(key)}: must be between {minimum} and {maximum}, got {value}"
            )
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._name(key)}: expected a number, got {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(
                f"{self._name(key)}: must be between {minimum} and {maximum}, got {value}"
            )
        return float(value)

    def speed(self, key: str) -> float | None:
        value = self._get(key)
        if value is None or value == "max":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(
                f'{self._name(key)}: expected a positive number or "max", got {value!r}'
            )
        return float(value)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"{self._name(unknown[0])}: unknown setting")
