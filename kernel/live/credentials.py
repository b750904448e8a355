"""Venue API credentials: from the environment or a secrets file, never logged.

Each venue has up to two key sets, kept apart on purpose: ``read`` (account
and order queries, the user-data stream) and ``trade`` (placing and cancelling
orders). A read-only deployment simply has no trade keys, and code that only
reads never holds a key that can trade.

Environment, per venue and purpose (``binance-usdm`` becomes ``BINANCE_USDM``)::

    TRADEKERNEL_BINANCE_TRADE_KEY, TRADEKERNEL_BINANCE_TRADE_SECRET
    TRADEKERNEL_OKX_READ_KEY, TRADEKERNEL_OKX_READ_SECRET, TRADEKERNEL_OKX_READ_PASSPHRASE

Secrets file (TOML, readable by its owner only, like an ssh key)::

    [okx.trade]
    key = "..."
    secret = "..."
    passphrase = "..."

The environment wins over the file, field set by field set. Every value loaded
is registered with the log redactor, so it is masked in any log line.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kernel.logs import register_secret

__all__ = ["ApiKey", "CredentialsError", "Secret", "VenueCredentials", "load_credentials"]

Purpose = Literal["read", "trade"]
_PURPOSES: tuple[Purpose, ...] = ("read", "trade")


class CredentialsError(ValueError):
    """Credentials are incomplete, unreadable or too widely readable."""


class Secret:
    """A string that does not print itself: ``repr`` and ``str`` show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the value, for signing a request."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ApiKey:
    """One key set: the public key, its secret, and OKX's passphrase."""

    key: Secret
    secret: Secret
    passphrase: Secret | None = None


@dataclass(frozen=True)
class VenueCredentials:
    """A venue's read and trade keys; either may be absent."""

    venue: str
    read: ApiKey | None = None
    trade: ApiKey | None = field(default=None)

    def for_reading(self) -> ApiKey:
        """Return the read keys, falling back to the trade keys (they can read too)."""
        keys = self.read or self.trade
        if keys is None:
            raise CredentialsError(f"no API keys for {self.venue}: set {_env_prefix(self.venue)}*")
        return keys

    def for_trading(self) -> ApiKey:
        """Return the trade keys; read keys never stand in for them."""
        if self.trade is None:
            raise CredentialsError(
                f"no trading keys for {self.venue}: set {_env_prefix(self.venue)}TRADE_KEY and"
                f" {_env_prefix(self.venue)}TRADE_SECRET (read-only keys cannot trade)"
            )
        return self.trade


def _env_prefix(venue: str) -> str:
    return "TRADEKERNEL_" + venue.upper().replace("-", "_") + "_"


def _from_env(venue: str, purpose: Purpose, environ: Mapping[str, str]) -> dict[str, str]:
    prefix = _env_prefix(venue) + purpose.upper() + "_"
    fields = {}
    for name in ("key", "secret", "passphrase"):
        value = environ.get(prefix + name.upper())
        if value:
            fields[name] = value
    return fields


def _read_secrets_file(path: Path) -> dict[str, object]:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialsError(f"secrets file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"secrets file {path} is readable by others (mode {stat.filemode(mode)}):"
            f" run chmod 600 {path}"
        )
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # Say where, never what: the offending text may be a secret.
        line = re.search(r"line (\d+)", str(exc))
        where = f" (line {line.group(1)})" if line else ""
        raise CredentialsError(f"secrets file {path} is not valid TOML{where}") from None


def _from_file(venue: str, purpose: Purpose, document: Mapping[str, object]) -> dict[str, str]:
    table = document.get(venue, {})
    if not isinstance(table, Mapping):
        raise CredentialsError(f"secrets file: [{venue}] must be a table")
    keys = table.get(purpose, {})
    if not isinstance(keys, Mapping):
        raise CredentialsError(f"secrets file: [{venue}.{purpose}] must be a table")
    unknown = set(keys) - {"key", "secret", "passphrase"}
    if unknown:
        raise CredentialsError(
            f"secrets file: [{venue}.{purpose}] has unknown field(s) {', '.join(sorted(unknown))}"
        )
    fields = {}
    for name, value in keys.items():
        if not isinstance(value, str) or not value:
            raise CredentialsError(f"secrets file: {venue}.{purpose}.{name} must be a string")
        fields[name] = value
    return fields


def _key_set(venue: str, purpose: Purpose, fields: dict[str, str]) -> ApiKey | None:
    if not fields:
        return None
    missing = [name for name in ("key", "secret") if name not in fields]
    if missing:
        raise CredentialsError(
            f"{venue} {purpose} keys are incomplete: {' and '.join(missing)} missing"
        )
    for value in fields.values():
        register_secret(value)
    passphrase = fields.get("passphrase")
    return ApiKey(
        key=Secret(fields["key"]),
        secret=Secret(fields["secret"]),
        passphrase=Secret(passphrase) if passphrase else None,
    )


def load_credentials(
    venue: str,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_file: str | Path | None = None,
) -> VenueCredentials:
    """Load ``venue``'s read and trade keys from the environment and the secrets file."""
    environ = os.environ if environ is None else environ
    document = _read_secrets_file(Path(secrets_file)) if secrets_file else {}
    sets: dict[Purpose, ApiKey | None] = {}
    for purpose in _PURPOSES:
        env_fields = _from_env(venue, purpose, environ)
        fields = env_fields or _from_file(venue, purpose, document)
        sets[purpose] = _key_set(venue, purpose, fields)
    return VenueCredentials(venue=venue, read=sets["read"], trade=sets["trade"])
