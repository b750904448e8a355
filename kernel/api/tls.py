"""TLS for the kernel's gRPC servers and channels, from PEM files.

A server needs a certificate chain and its private key; with a client CA it
also requires every client to present a certificate that CA signed (mutual
TLS). A channel trusts a CA (the system roots when none is given) and, for
mutual TLS, presents its own certificate and key.

Every error names the configuration field whose file is at fault, so an
operator reads ``api.tls_key: cannot read /etc/tk/key.pem: ...`` rather than
a handshake failure at the first call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TlsConfig", "TlsError", "channel_credentials", "read_pem", "server_credentials"]


class TlsError(ValueError):
    """A certificate or key file is missing, unreadable or not PEM; the message names the field."""


@dataclass(frozen=True)
class TlsConfig:
    """Where a server's certificate, key and (for mutual TLS) client CA are.

    ``section`` is the configuration table the paths came from; errors name
    its fields (``api.tls_cert``, ``api.tls_key``, ``api.tls_client_ca``).
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    section: str = "api"

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate signed by ``client_ca_file``."""
        return self.client_ca_file is not None

    def check(self) -> None:
        """Read every file once, raising :class:`TlsError` naming the first one at fault."""
        server_credentials(self)


_PEM_MARKERS = {
    "certificate": b"-----BEGIN CERTIFICATE-----",
    "private key": b"PRIVATE KEY-----",
}


def read_pem(path: str | Path, field: str, kind: str = "certificate") -> bytes:
    """Return the bytes of a PEM file holding a ``kind`` ("certificate" or "private key").

    Raises :class:`TlsError` starting with ``field`` when the file is missing,
    unreadable, or holds no PEM block of that kind.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{field}: no such file: {path}") from None
    except OSError as error:
        raise TlsError(f"{field}: cannot read {path}: {error.strerror or error}") from None
    if _PEM_MARKERS[kind] not in data:
        raise TlsError(f"{field}: {path} holds no PEM {kind}")
    return data


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Return server credentials; with a client CA, clients without its certificate are refused."""
    prefix = f"{tls.section}." if tls.section else ""
    cert = read_pem(tls.cert_file, f"{prefix}tls_cert")
    key = read_pem(tls.key_file, f"{prefix}tls_key", "private key")
    client_ca = None
    if tls.client_ca_file is not None:
        client_ca = read_pem(tls.client_ca_file, f"{prefix}tls_client_ca")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Return channel credentials trusting ``ca_file`` (None: the system roots).

    ``cert_file`` and ``key_file`` come together: the client's own
    certificate for a server that requires mutual TLS.
    """
    if (cert_file is None) != (key_file is None):
        raise TlsError("tls_cert and tls_key: give both for a client certificate, or neither")
    ca = None if ca_file is None else read_pem(ca_file, "tls_ca")
    cert = None if cert_file is None else read_pem(cert_file, "tls_cert")
    key = None if key_file is None else read_pem(key_file, "tls_key", "private key")
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
