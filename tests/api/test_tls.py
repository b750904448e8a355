"""TLS and mutual TLS on the API server, with throwaway certificates (``support.certs``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from test_server_api import READ_TOKEN, auth, code_of, frames, run, running

from kernel.adapters.base import RawFrame
from kernel.api.tls import TlsConfig, TlsError, channel_credentials, server_credentials
from kernel.service.config import ConfigError, parse_config
from support.certs import Certificates, make_certificates
from tradekernel_sdk.client import KernelClient, TlsFiles, Unavailable
from tradekernel_sdk.proto.tradekernel.v1 import kernel_pb2, kernel_pb2_grpc

__all__ = ["frames"]


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    """A CA and the server and client certificates it signed."""
    return make_certificates(tmp_path / "pki")


@pytest.fixture
def other_certs(tmp_path: Path) -> Certificates:
    """A second, unrelated CA with its own server and client certificates."""
    return make_certificates(tmp_path / "other-pki", ca_name="some other CA")


def tls_only(certs: Certificates) -> TlsConfig:
    return TlsConfig(certs.server_cert, certs.server_key)


def mutual(certs: Certificates) -> TlsConfig:
    return TlsConfig(certs.server_cert, certs.server_key, client_ca_file=certs.ca)


async def version(channel: grpc.aio.Channel) -> kernel_pb2.GetVersionResponse:
    stub = kernel_pb2_grpc.KernelServiceStub(channel)
    answer: kernel_pb2.GetVersionResponse = await stub.GetVersion(
        kernel_pb2.GetVersionRequest(), metadata=auth(READ_TOKEN), timeout=10
    )
    return answer


def version_call(channel: grpc.aio.Channel) -> object:
    stub = kernel_pb2_grpc.KernelServiceStub(channel)
    return stub.GetVersion(kernel_pb2.GetVersionRequest(), metadata=auth(READ_TOKEN), timeout=10)


def test_a_client_trusting_the_ca_is_served_over_tls(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates
) -> None:
    async def main() -> None:
        credentials = channel_credentials(certs.ca)
        async with running(tmp_path, frames, tls=tls_only(certs), credentials=credentials) as api:
            assert (await version(api.channel)).api_version == "v1"

    run(main())


def test_a_plaintext_client_is_refused_by_a_tls_server(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames, tls=tls_only(certs)) as api:
            assert await code_of(version_call(api.channel)) is grpc.StatusCode.UNAVAILABLE
            assert api.server.metrics.calls == {}  # refused before any rpc ran

    run(main())


def test_a_client_trusting_another_ca_is_refused(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates, other_certs: Certificates
) -> None:
    async def main() -> None:
        credentials = channel_credentials(other_certs.ca)
        async with running(tmp_path, frames, tls=tls_only(certs), credentials=credentials) as api:
            assert await code_of(version_call(api.channel)) is grpc.StatusCode.UNAVAILABLE

    run(main())


def test_mutual_tls_serves_a_client_with_a_certificate_from_the_client_ca(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates
) -> None:
    async def main() -> None:
        credentials = channel_credentials(certs.ca, certs.client_cert, certs.client_key)
        async with running(tmp_path, frames, tls=mutual(certs), credentials=credentials) as api:
            assert (await version(api.channel)).api_version == "v1"

    run(main())


def test_mutual_tls_refuses_a_client_without_a_certificate(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates
) -> None:
    async def main() -> None:
        credentials = channel_credentials(certs.ca)
        async with running(tmp_path, frames, tls=mutual(certs), credentials=credentials) as api:
            assert await code_of(version_call(api.channel)) is grpc.StatusCode.UNAVAILABLE
            assert api.server.metrics.calls == {}

    run(main())


def test_mutual_tls_refuses_a_client_certificate_from_another_ca(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates, other_certs: Certificates
) -> None:
    async def main() -> None:
        credentials = channel_credentials(certs.ca, other_certs.client_cert, other_certs.client_key)
        async with running(tmp_path, frames, tls=mutual(certs), credentials=credentials) as api:
            assert await code_of(version_call(api.channel)) is grpc.StatusCode.UNAVAILABLE

    run(main())


def test_the_sync_client_speaks_mutual_tls_with_tls_files(
    tmp_path: Path, frames: list[RawFrame], certs: Certificates
) -> None:
    files = TlsFiles(str(certs.ca), str(certs.client_cert), str(certs.client_key))

    def status(address: str, tls: TlsFiles | None) -> str:
        with KernelClient(address, READ_TOKEN, timeout=5, tls=tls) as client:
            return client.status().trading_state

    async def main() -> None:
        async with running(tmp_path, frames, tls=mutual(certs)) as api:
            address = f"127.0.0.1:{api.port}"
            assert await asyncio.to_thread(status, address, files) == "active"
            with pytest.raises(Unavailable):
                await asyncio.to_thread(status, address, TlsFiles(str(certs.ca)))

    run(main())


def test_a_missing_or_unreadable_file_is_an_error_naming_its_field(
    tmp_path: Path, certs: Certificates
) -> None:
    with pytest.raises(TlsError, match=r"^api\.tls_cert: no such file"):
        server_credentials(TlsConfig(tmp_path / "absent.pem", certs.server_key))
    with pytest.raises(TlsError, match=r"^api\.tls_key: .* holds no PEM private key"):
        server_credentials(TlsConfig(certs.server_cert, certs.server_cert))
    with pytest.raises(TlsError, match=r"^api\.tls_client_ca: cannot read"):
        server_credentials(TlsConfig(certs.server_cert, certs.server_key, tmp_path))
    with pytest.raises(TlsError, match=r"^tls_cert and tls_key"):
        channel_credentials(certs.ca, cert_file=certs.client_cert)


def test_the_api_config_reads_tls_files_and_names_a_bad_one(
    tmp_path: Path, certs: Certificates
) -> None:
    config = parse_config(
        {
            "api": {
                "tls_cert": "pki/server.pem",
                "tls_key": "pki/server.key",
                "tls_client_ca": "pki/ca.pem",
            }
        },
        base=tmp_path,
        environ={},
    )
    assert config.api.tls == TlsConfig(certs.server_cert, certs.server_key, certs.ca)
    assert config.api.tls.mutual
    assert parse_config({"api": {}}, base=tmp_path, environ={}).api.tls is None
    with pytest.raises(ConfigError, match=r"^api\.tls_key: required"):
        parse_config({"api": {"tls_cert": "pki/server.pem"}}, base=tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"^api\.tls_client_ca: needs tls_cert"):
        parse_config({"api": {"tls_client_ca": "pki/ca.pem"}}, base=tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"^api\.tls_cert: no such file"):
        parse_config(
            {"api": {"tls_cert": "pki/nope.pem", "tls_key": "pki/server.key"}},
            base=tmp_path,
            environ={},
        )
