"""Venue credentials: where they come from, what is refused, and that no log line shows them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from kernel.live.credentials import CredentialsError, load_credentials
from kernel.logs import setup_logging

READ_KEY, READ_SECRET = "rk-9f2a71c0de", "rs-4be1907ac3d2"
TRADE_KEY, TRADE_SECRET, TRADE_PASS = "tk-1c33f08e2a", "ts-77aa019bc4e5", "pp-secret-phrase"
TRADE_FILE = (
    f'[okx.trade]\nkey = "{TRADE_KEY}"\nsecret = "{TRADE_SECRET}"\npassphrase = "{TRADE_PASS}"\n'
)


def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_keys_come_from_the_environment_per_venue_and_purpose() -> None:
    creds = load_credentials(
        "binance-usdm",
        environ={
            "TRADEKERNEL_BINANCE_USDM_READ_KEY": READ_KEY,
            "TRADEKERNEL_BINANCE_USDM_READ_SECRET": READ_SECRET,
        },
    )
    assert creds.for_reading().key.reveal() == READ_KEY
    assert creds.for_reading().secret.reveal() == READ_SECRET
    assert creds.trade is None


def test_read_only_keys_never_trade() -> None:
    creds = load_credentials(
        "binance",
        environ={
            "TRADEKERNEL_BINANCE_READ_KEY": READ_KEY,
            "TRADEKERNEL_BINANCE_READ_SECRET": "x" * 9,
        },
    )
    with pytest.raises(CredentialsError, match="read-only keys cannot trade"):
        creds.for_trading()


def test_trade_keys_can_also_read() -> None:
    creds = load_credentials(
        "binance",
        environ={
            "TRADEKERNEL_BINANCE_TRADE_KEY": TRADE_KEY,
            "TRADEKERNEL_BINANCE_TRADE_SECRET": TRADE_SECRET,
        },
    )
    assert creds.for_reading() is creds.for_trading()


def test_no_keys_at_all_names_the_variables_to_set() -> None:
    with pytest.raises(CredentialsError, match="TRADEKERNEL_OKX_"):
        load_credentials("okx", environ={}).for_reading()


def test_keys_come_from_an_owner_only_secrets_file(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, TRADE_FILE)
    keys = load_credentials("okx", environ={}, secrets_file=path).for_trading()
    assert keys.passphrase is not None
    assert keys.passphrase.reveal() == TRADE_PASS


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, f'[okx.read]\nkey = "{READ_KEY}"\nsecret = "{READ_SECRET}"\n')
    creds = load_credentials(
        "okx",
        environ={
            "TRADEKERNEL_OKX_READ_KEY": "env-key-0001",
            "TRADEKERNEL_OKX_READ_SECRET": "e" * 12,
        },
        secrets_file=path,
    )
    assert creds.for_reading().key.reveal() == "env-key-0001"


def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = secrets_file(
        tmp_path, f'[okx.read]\nkey = "{READ_KEY}"\nsecret = "{READ_SECRET}"\n', 0o644
    )
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_credentials("okx", environ={}, secrets_file=path)


def test_a_broken_secrets_file_says_where_without_quoting_it(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, f'[okx.read]\nkey = "{READ_KEY}"\nsecret = {READ_SECRET}\n')
    with pytest.raises(CredentialsError, match="line 3") as failure:
        load_credentials("okx", environ={}, secrets_file=path)
    assert READ_SECRET not in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[okx.read]\nkey = "{READ_KEY}"\n', "secret missing"),
        (f'[okx.read]\nkey = "{READ_KEY}"\nsecret = "{READ_SECRET}"\nsecert = "x"\n', "secert"),
        ('[okx]\nread = "oops"\n', r"\[okx.read\] must be a table"),
        (
            f'[okx.read]\nkey = "{READ_KEY}"\nsecret = 12345678\n',
            "okx.read.secret must be a string",
        ),
    ],
)
def test_incomplete_or_misspelled_key_sets_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(CredentialsError, match=message):
        load_credentials("okx", environ={}, secrets_file=secrets_file(tmp_path, text))


def test_no_log_line_shows_a_credential(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, TRADE_FILE)
    creds = load_credentials("okx", environ={}, secrets_file=path)
    keys = creds.for_trading()
    for json_lines in (False, True):
        stream = io.StringIO()
        setup_logging("DEBUG", json_lines=json_lines, stream=stream)
        log = logging.getLogger("venue")
        log.info("loaded %r", creds)
        log.info("keys %s / %s", keys.key, keys.secret)
        log.debug("GET https://127.0.0.1/api?apiKey=%s&x=1", keys.key.reveal())
        log.warning(
            "header OK-ACCESS-PASSPHRASE: %s", keys.passphrase.reveal() if keys.passphrase else ""
        )
        try:
            raise RuntimeError(f"signing failed for {keys.secret.reveal()}")
        except RuntimeError:
            log.exception("order refused")
        output = stream.getvalue()
        assert output.count("order refused") == 1
        for value in (TRADE_KEY, TRADE_SECRET, TRADE_PASS):
            assert value not in output
    setup_logging("WARNING")
