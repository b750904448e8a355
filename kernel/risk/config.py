"""Risk limits: validated, frozen, with per-instrument overrides.

Amounts of money (notional, exposure, losses) are :class:`~decimal.Decimal` in
the instrument's quote currency and must be exact at
:data:`NOTIONAL_PRECISION` (8) decimals, the precision in which the engine
compares them with the fixed-point values of the :class:`RiskContext`. Sizes
(``max_position``) are Decimal in the instrument's base unit and are converted
to the instrument's fixed-point size when the instrument is first seen,
rounding towards zero (never looser than configured).

Every validation error is a :class:`RiskConfigError` whose message starts with
the field it is about, e.g. ``instruments."binance.BTCUSDT".max_position: must
be at least 0, got -1``. :func:`parse_risk_config` reads the ``[risk]`` table
of a TOML file (see ``docs/risk.md``) and prefixes its errors with ``risk.``.

Limits left at ``None`` are off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

from tradekernel_sdk.orders import FEE_PRECISION
from tradekernel_sdk.types import Instrument

__all__ = [
    "NOTIONAL_PRECISION",
    "NOTIONAL_SCALE",
    "InstrumentLimits",
    "RateLimit",
    "ResolvedLimits",
    "RiskConfig",
    "RiskConfigError",
    "decimal_to_fixed",
    "parse_risk_config",
]

NOTIONAL_PRECISION = FEE_PRECISION
"""Decimals of every amount of quote currency the engine compares (as fees: 8)."""
NOTIONAL_SCALE: int = 10**NOTIONAL_PRECISION


class RiskConfigError(ValueError):
    """The risk configuration is invalid; the message starts with the field's name."""


def decimal_to_fixed(value: Decimal, precision: int, *, exact: bool = True) -> int:
    """Return ``value`` in ``10**-precision`` units, exactly (or rounded towards zero).

    With ``exact`` a value with more decimals than ``precision`` raises
    :class:`ValueError`; without, it is truncated towards zero.
    """
    numerator, denominator = value.as_integer_ratio()
    unit: int = 10**precision
    scaled = numerator * unit
    quotient, remainder = divmod(abs(scaled), denominator)
    if remainder and exact:
        raise ValueError(f"{value} has more than {precision} decimals")
    return quotient if scaled >= 0 else -quotient


@dataclass(frozen=True, slots=True)
class InstrumentLimits:
    """Limits that apply to each instrument; ``None`` leaves a limit off.

    Used for :attr:`RiskConfig.defaults` and for per-instrument overrides, where
    a field left at ``None`` keeps the default.
    """

    max_position: Decimal | None = None
    """Largest absolute position in base units, counting working orders on the order's side."""
    min_order_notional: Decimal | None = None
    """Smallest order notional (price × quantity) in quote currency."""
    max_order_notional: Decimal | None = None
    """Largest order notional in quote currency."""
    max_open_orders: int | None = None
    """Most working orders on the instrument, the new one included."""
    price_band_bps: int | None = None
    """Furthest an order's price may be from mid, in basis points (the fat-finger band)."""

    def merged(self, override: InstrumentLimits) -> InstrumentLimits:
        """Return these limits with every field that ``override`` sets replaced."""
        changes = {
            item.name: getattr(override, item.name)
            for item in fields(self)
            if getattr(override, item.name) is not None
        }
        return replace(self, **changes)

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`RiskConfigError` naming the first invalid field."""
        _check_decimal(self.max_position, prefix + "max_position", minimum_zero=True, exact=False)
        _check_decimal(self.min_order_notional, prefix + "min_order_notional")
        _check_decimal(self.max_order_notional, prefix + "max_order_notional")
        _check_int(self.max_open_orders, prefix + "max_open_orders", minimum=0)
        _check_int(self.price_band_bps, prefix + "price_band_bps", minimum=1)
        low, high = self.min_order_notional, self.max_order_notional
        if low is not None and high is not None and low > high:
            raise RiskConfigError(
                f"{prefix}min_order_notional: {low} is above max_order_notional {high}"
            )


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate_per_s`` orders per second on average, ``burst`` at once."""

    rate_per_s: Decimal
    burst: int

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`RiskConfigError` naming the first invalid field."""
        _check_decimal(self.rate_per_s, prefix + "rate_per_s", exact=False)
        if self.rate_per_s is None:
            raise RiskConfigError(f"{prefix}rate_per_s: required")
        _check_int(self.burst, prefix + "burst", minimum=1)


@dataclass(frozen=True)
class RiskConfig:
    """Every limit the risk engine enforces.

    ``instruments`` maps ``"venue.symbol"`` (:attr:`Instrument.key`) to
    overrides of ``defaults``. ``venue_order_rates`` maps a venue to its own
    order rate instead of ``order_rate``.
    """

    defaults: InstrumentLimits = field(default_factory=InstrumentLimits)
    instruments: Mapping[str, InstrumentLimits] = field(default_factory=dict)
    max_gross_exposure: Decimal | None = None
    """Largest gross exposure (quote currency) an order may take the account to."""
    max_open_orders_per_venue: int | None = None
    """Most working orders on one venue, all instruments, the new one included."""
    order_rate: RateLimit | None = None
    venue_order_rates: Mapping[str, RateLimit] = field(default_factory=dict)
    self_trade_prevention: bool = True
    max_daily_loss: Decimal | None = None
    """Realised loss today (quote currency) that halts trading."""
    max_drawdown: Decimal | None = None
    """Fall of equity from its peak (quote currency) that halts trading."""
    max_drawdown_bps: int | None = None
    """Fall of equity from its peak, in basis points of the peak, that halts trading."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`RiskConfigError` naming the first invalid field."""
        if not isinstance(self.defaults, InstrumentLimits):
            raise RiskConfigError("defaults: expected InstrumentLimits")
        self.defaults.validate("defaults.")
        for key, limits in self.instruments.items():
            prefix = f'instruments."{key}".'
            venue, dot, symbol = key.partition(".")
            if not (venue and dot and symbol):
                raise RiskConfigError(f'instruments."{key}": expected "venue.symbol"')
            if not isinstance(limits, InstrumentLimits):
                raise RiskConfigError(f"{prefix[:-1]}: expected InstrumentLimits")
            limits.validate(prefix)
            self.defaults.merged(limits).validate(prefix)
        _check_decimal(self.max_gross_exposure, "max_gross_exposure")
        _check_int(self.max_open_orders_per_venue, "max_open_orders_per_venue", minimum=0)
        if self.order_rate is not None:
            self.order_rate.validate("order_rate.")
        for venue, rate in self.venue_order_rates.items():
            rate.validate(f"venue_order_rates.{venue}.")
        if not isinstance(self.self_trade_prevention, bool):
            raise RiskConfigError(
                f"self_trade_prevention: expected true or false, got {self.self_trade_prevention!r}"
            )
        _check_decimal(self.max_daily_loss, "max_daily_loss")
        _check_decimal(self.max_drawdown, "max_drawdown")
        _check_int(self.max_drawdown_bps, "max_drawdown_bps", minimum=1, maximum=10_000)

    def limits_for(self, instrument: Instrument) -> ResolvedLimits:
        """Return the instrument's limits (defaults with its overrides) in fixed point."""
        limits = self.defaults
        override = self.instruments.get(instrument.key)
        if override is not None:
            limits = limits.merged(override)
        return ResolvedLimits(instrument, limits, self.max_gross_exposure)

    def rate_for(self, venue: str) -> RateLimit | None:
        """Return the order rate of ``venue``: its own, else ``order_rate``."""
        return self.venue_order_rates.get(venue, self.order_rate)


class ResolvedLimits:
    """One instrument's limits as the integers the checks compare.

    Notional bounds are kept multiplied by ``scale`` (``10**(price_precision +
    size_precision)``) so a check compares ``price * quantity * NOTIONAL_SCALE``
    with them directly: no division, no rounding.
    """

    __slots__ = (
        "instrument",
        "max_gross_exposure",
        "max_gross_exposure_scaled",
        "max_open_orders",
        "max_order_notional",
        "max_order_notional_scaled",
        "max_position",
        "min_order_notional",
        "min_order_notional_scaled",
        "price_band_bps",
        "scale",
    )

    def __init__(
        self,
        instrument: Instrument,
        limits: InstrumentLimits,
        max_gross_exposure: Decimal | None,
    ) -> None:
        self.instrument = instrument
        scale: int = 10 ** (instrument.price_precision + instrument.size_precision)
        self.scale = scale
        self.max_position = (
            None
            if limits.max_position is None
            else decimal_to_fixed(limits.max_position, instrument.size_precision, exact=False)
        )
        self.min_order_notional = _money(limits.min_order_notional)
        self.max_order_notional = _money(limits.max_order_notional)
        self.max_gross_exposure = _money(max_gross_exposure)
        self.min_order_notional_scaled = _scaled(self.min_order_notional, scale)
        self.max_order_notional_scaled = _scaled(self.max_order_notional, scale)
        self.max_gross_exposure_scaled = _scaled(self.max_gross_exposure, scale)
        self.max_open_orders = limits.max_open_orders
        self.price_band_bps = limits.price_band_bps


def _money(value: Decimal | None) -> int | None:
    return None if value is None else decimal_to_fixed(value, NOTIONAL_PRECISION)


def _scaled(value: int | None, scale: int) -> int | None:
    return None if value is None else value * scale


def _check_decimal(
    value: object, name: str, *, minimum_zero: bool = False, exact: bool = True
) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise RiskConfigError(f"{name}: expected a finite decimal number, got {value!r}")
    if minimum_zero and value < 0:
        raise RiskConfigError(f"{name}: must be at least 0, got {value}")
    if not minimum_zero and value <= 0:
        raise RiskConfigError(f"{name}: must be greater than 0, got {value}")
    if exact:
        try:
            decimal_to_fixed(value, NOTIONAL_PRECISION)
        except ValueError:
            raise RiskConfigError(
                f"{name}: at most {NOTIONAL_PRECISION} decimals, got {value}"
            ) from None


def _check_int(value: object, name: str, *, minimum: int, maximum: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise RiskConfigError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise RiskConfigError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise RiskConfigError(f"{name}: must be at most {maximum}, got {value}")


# -- TOML ----------------------------------------------------------------------


def parse_risk_config(raw: Mapping[str, Any], path: str = "risk") -> RiskConfig:
    """Validate the ``[risk]`` table of a TOML configuration into a :class:`RiskConfig`.

    Amounts may be written as strings (``"50000.5"``, exact), integers or
    floats (read through their shortest decimal form). Errors name the field
    with ``path`` in front; unknown keys are errors.
    """
    table = _Table(raw, path)
    defaults = _limits(table.table("defaults"))
    instruments = {
        key: _limits(section) for key, section in table.tables("instruments", quote=True).items()
    }
    order_rate_table = table.optional_table("order_rate")
    venue_rates = {
        venue: _rate(section) for venue, section in table.tables("venue_order_rates").items()
    }
    order_rate = None if order_rate_table is None else _rate(order_rate_table)
    max_gross_exposure = table.decimal("max_gross_exposure")
    max_open_orders_per_venue = table.integer("max_open_orders_per_venue")
    self_trade_prevention = table.boolean("self_trade_prevention", True)
    max_daily_loss = table.decimal("max_daily_loss")
    max_drawdown = table.decimal("max_drawdown")
    max_drawdown_bps = table.integer("max_drawdown_bps")
    table.reject_unknown()
    try:
        return RiskConfig(
            defaults=defaults,
            instruments=instruments,
            max_gross_exposure=max_gross_exposure,
            max_open_orders_per_venue=max_open_orders_per_venue,
            order_rate=order_rate,
            venue_order_rates=venue_rates,
            self_trade_prevention=self_trade_prevention,
            max_daily_loss=max_daily_loss,
            max_drawdown=max_drawdown,
            max_drawdown_bps=max_drawdown_bps,
        )
    except RiskConfigError as error:
        raise RiskConfigError(f"{path}.{error}") from None


def _limits(table: _Table) -> InstrumentLimits:
    limits = InstrumentLimits(
        max_position=table.decimal("max_position"),
        min_order_notional=table.decimal("min_order_notional"),
        max_order_notional=table.decimal("max_order_notional"),
        max_open_orders=table.integer("max_open_orders"),
        price_band_bps=table.integer("price_band_bps"),
    )
    table.reject_unknown()
    return limits


def _rate(table: _Table) -> RateLimit:
    rate = table.decimal("rate_per_s")
    burst = table.integer("burst")
    table.reject_unknown()
    if rate is None:
        raise RiskConfigError(f"{table.name('rate_per_s')}: required")
    if burst is None:
        raise RiskConfigError(f"{table.name('burst')}: required")
    limit = RateLimit(rate_per_s=rate, burst=burst)
    try:
        limit.validate()
    except RiskConfigError as error:
        raise RiskConfigError(f"{table.path}.{error}") from None
    return limit


class _Table:
    """One TOML table, read key by key; remembers the keys read to reject the rest."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise RiskConfigError(f"{path}: expected a table")
        self.raw: Mapping[str, Any] = raw
        self.path = path
        self.read: set[str] = set()

    def name(self, key: str, quote: bool = False) -> str:
        return f'{self.path}."{key}"' if quote else f"{self.path}.{key}"

    def _get(self, key: str) -> Any:
        self.read.add(key)
        return self.raw.get(key)

    def table(self, key: str) -> _Table:
        value = self._get(key)
        return _Table({} if value is None else value, self.name(key))

    def optional_table(self, key: str) -> _Table | None:
        value = self._get(key)
        return None if value is None else _Table(value, self.name(key))

    def tables(self, key: str, quote: bool = False) -> dict[str, _Table]:
        outer = self.table(key)
        outer.read.update(outer.raw)
        return {
            str(name): _Table(value, outer.name(str(name), quote))
            for name, value in outer.raw.items()
        }

    def decimal(self, key: str) -> Decimal | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RiskConfigError(f"{self.name(key)}: expected a decimal number, got {value!r}")
        text = repr(value) if isinstance(value, float) else str(value)
        try:
            number = Decimal(text.strip())
        except ArithmeticError:
            raise RiskConfigError(
                f"{self.name(key)}: expected a decimal number, got {value!r}"
            ) from None
        if not number.is_finite():
            raise RiskConfigError(f"{self.name(key)}: expected a finite number, got {value!r}")
        return number

    def integer(self, key: str) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RiskConfigError(f"{self.name(key)}: expected an integer, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise RiskConfigError(f"{self.name(key)}: expected true or false, got {value!r}")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.raw) - self.read)
        if unknown:
            raise RiskConfigError(f"{self.name(unknown[0])}: unknown setting")
