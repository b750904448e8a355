"""`tradekernel models`, `plugins status|enable|disable` and the TLS flags, against a server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_client_sync import LiveServer, frames
from test_server_api import ADMIN_TOKEN, READ_TOKEN

from kernel.adapters.base import RawFrame
from kernel.api.tls import TlsConfig
from kernel.cli import _parser
from kernel.cli_api import CA_ENV, CERT_ENV, KEY_ENV, run_api_command
from kernel.plugins import PluginHost
from support.certs import Certificates, make_certificates

__all__ = ["frames"]


def call(argv: list[str]) -> tuple[int, str, str]:
    """Parse ``argv`` as ``tradekernel`` does, run it; return exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = run_api_command(_parser().parse_args(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "pki")


@pytest.fixture
def served(tmp_path: Path, frames: list[RawFrame], certs: Certificates) -> Iterator[LiveServer]:
    """A server with mutual TLS, the installed plug-ins and a one-version model repository."""
    models = tmp_path / "models"
    (models / "spread" / "v1").mkdir(parents=True)
    (models / "spread" / "v1" / "metadata.json").write_text('{"stage": "production"}')
    tls = TlsConfig(certs.server_cert, certs.server_key, client_ca_file=certs.ca)
    with LiveServer(
        tmp_path, frames, tls=tls, plugins=PluginHost(environ={}), model_dir=models
    ) as server:
        yield server


def test_commands_speak_mutual_tls_from_flags_or_environment(
    served: LiveServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = ["--address", served.address, "--token", READ_TOKEN, "--timeout", "5"]
    code, _, err = call(["status", *connect])
    assert code == 1 and "cannot use the API" in err  # plaintext against a TLS port
    code, _, err = call(["status", *connect, "--ca", str(certs.ca)])
    assert code == 1 and "cannot use the API" in err  # no client certificate
    tls = ["--ca", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    code, out, err = call(["status", *connect, *tls])
    assert code == 0, err
    assert out.startswith("trading      active")
    monkeypatch.setenv(CA_ENV, str(certs.ca))
    monkeypatch.setenv(CERT_ENV, str(certs.client_cert))
    monkeypatch.setenv(KEY_ENV, str(certs.client_key))
    code, _, err = call(["status", *connect])
    assert code == 0, err


def test_tls_usage_errors_exit_2_naming_the_flag(served: LiveServer, certs: Certificates) -> None:
    connect = ["--address", served.address, "--token", READ_TOKEN]
    code, _, err = call(["status", *connect, "--cert", str(certs.client_cert)])
    assert code == 2 and "--cert and --key" in err
    code, _, err = call(["status", *connect, "--ca", str(certs.ca) + ".absent"])
    assert code == 2 and err.startswith("tradekernel status: ca_file: cannot read")


def test_models_lists_the_repository(served: LiveServer, certs: Certificates) -> None:
    tls = ["--ca", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    connect = ["--address", served.address, "--token", READ_TOKEN, *tls]
    code, out, err = call(["models", *connect])
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["MODEL", "VERSION", "STAGE", "SHA256", "URI"]
    assert row.split()[:3] == ["spread", "v1", "production"]
    code, out, _ = call(["models", *connect, "--name", "other", "--json"])
    assert code == 0 and json.loads(out) == {"models": []}


def test_plugins_status_disable_and_enable(served: LiveServer, certs: Certificates) -> None:
    tls = ["--ca", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    read = ["--address", served.address, "--token", READ_TOKEN, *tls]
    admin = ["--address", served.address, "--token", ADMIN_TOKEN, *tls]
    code, out, err = call(["plugins", "status", *read, "--json"])
    assert code == 0, err
    (plugin,) = [p for p in json.loads(out)["plugins"] if p["name"] == "strategies"]
    assert plugin["status"] == "enabled" and "imbalance" in plugin["registers"]["strategies"]
    code, _, err = call(["plugins", "disable", "strategies", *read])
    assert code == 1 and "PERMISSION_DENIED" in err
    code, out, err = call(["plugins", "disable", "strategies", *admin])
    assert code == 0, err
    assert "disabled while running" in out
    code, out, _ = call(["plugins", "status", *read])
    assert "strategies  disabled" in out
    code, out, err = call(["plugins", "enable", "strategies", *admin, "--json"])
    assert code == 0 and json.loads(out)["plugin"]["status"] == "enabled"
    code, _, err = call(["plugins", "enable", "nope", *admin])
    assert code == 1 and "NOT_FOUND" in err
