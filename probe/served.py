"""One request to the domain at a given address: which region served it (the ``X-Served-Region`` header).

The connection goes to the address the authoritative servers gave for a client in the drilled region,
not to whatever this function's own resolver would pick, with TLS verified for the domain (SNI and the
certificate's name) as a client's would be.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

SERVED_REGION_HEADER = "X-Served-Region"  # as handler/app.py sets it on every answer
USER_AGENT = "users-api-drill-probe"
MAX_BODY_BYTES = 64 * 1024


class RequestFailed(Exception):
    """No answer, or an answer that does not name its region; the message is the result's ``error``."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Served:
    status: int
    region: str


class _AddressedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a fixed address; the Host header still names the domain."""

    def __init__(self, domain: str, address: str, port: int, timeout: float) -> None:
        super().__init__(domain, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _AddressedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, TLS verified for the domain (SNI and certificate name)."""

    def __init__(self, domain: str, address: str, port: int, timeout: float, tls: ssl.SSLContext) -> None:
        super().__init__(domain, port, timeout=timeout, context=tls)
        self.address = address
        self.tls = tls

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def _describe(error: BaseException, where: str, timeout: float) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not valid: {error.verify_message}"
    if isinstance(error, TimeoutError):
        return f"no answer from {where} within {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return f"connection to {where} refused"
    return f"{where}: {type(error).__name__}: {error}"


def served_region(
    address: str,
    domain: str,
    path: str,
    *,
    scheme: str,
    port: int,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Served:
    """GET ``scheme://domain:port/path`` at ``address``; the status and the serving region it names."""
    if scheme == "https":
        connection: http.client.HTTPConnection = _AddressedHTTPSConnection(
            domain, address, port, timeout, tls or ssl.create_default_context()
        )
    else:
        connection = _AddressedHTTPConnection(domain, address, port, timeout)
    where = f"{address}:{port}"
    try:
        connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        response = connection.getresponse()
        response.read(MAX_BODY_BYTES)
        region = response.getheader(SERVED_REGION_HEADER)
    except (OSError, http.client.HTTPException) as error:
        raise RequestFailed(_describe(error, where, timeout)) from error
    finally:
        connection.close()
    if not region:
        raise RequestFailed(
            f"the answer from {where} ({response.status}) has no {SERVED_REGION_HEADER} header: it did not "
            "come from this API (or from a version that predates the header)",
            status=response.status,
        )
    return Served(response.status, region.strip())
