"""DNS answers from the hosted zone's own name servers, as a client in a given region would get them.

Route 53 picks a latency record by where the query comes from: the EDNS Client Subnet (RFC 7871) when
the query carries one, else the resolver's address. The probe runs in a surviving region, so without
the option every answer would be the one for the probe's own region. Asking the authoritative servers
directly (recursion off) leaves no resolver cache between the probe and Route 53's current choice,
which is where health checks act.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

SUBNET_PREFIX = 24  # RFC 7871 section 11.1 recommends truncating IPv4 client addresses to 24 bits
MAX_CNAME_HOPS = 8
# Answers that mean "this server cannot answer": try the next one. NOERROR and NXDOMAIN are answers.
_UNANSWERED = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP, dns.rcode.FORMERR})

Timeout = Callable[[], float]
"""Seconds the next network step may take (the probe's per-step timeout, cut to what time is left)."""


class LookupFailed(Exception):
    """An observation that did not succeed; the message is the ``error`` text of the result."""


@dataclass(frozen=True)
class Answer:
    """One authoritative answer and the server that gave it."""

    name_server: str
    response: dns.message.Message


def client_subnet(host: str) -> ipaddress.IPv4Network:
    """The /24 of ``host``'s IPv4 address (looked up with the normal resolver): a client in its region."""
    try:
        infos = socket.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise LookupFailed(f"cannot resolve the subnet host {host!r}: {error}") from error
    address = str(infos[0][4][0])
    return ipaddress.ip_network(f"{address}/{SUBNET_PREFIX}", strict=False)  # type: ignore[return-value]


def _server_address(server: str, port: int) -> str:
    infos = socket.getaddrinfo(server, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, dns.exception.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{type(error).__name__}: {error}".rstrip(": ")


def ask(
    name_servers: Sequence[str],
    name: str,
    rdtype: dns.rdatatype.RdataType,
    subnet: ipaddress.IPv4Network,
    *,
    port: int,
    timeout: Timeout,
) -> Answer:
    """Ask each name server in turn (UDP, TCP when truncated) until one answers; ``LookupFailed`` if none.

    The query carries the ECS option for ``subnet`` and no recursion-desired flag.
    """
    query = dns.message.make_query(
        name,
        rdtype,
        use_edns=0,
        options=[dns.edns.ECSOption(str(subnet.network_address), subnet.prefixlen)],
    )
    query.flags &= ~dns.flags.RD
    failures = []
    for server in name_servers:
        seconds = timeout()
        try:
            response, _ = dns.query.udp_with_fallback(
                query, _server_address(server, port), timeout=seconds, port=port
            )
        except (dns.exception.DNSException, OSError, UnicodeError) as error:
            failures.append(f"{server}: {_describe(error, seconds)}")
            continue
        if response.rcode() in _UNANSWERED:
            failures.append(f"{server}: {dns.rcode.to_text(response.rcode())}")
            continue
        return Answer(server, response)
    raise LookupFailed(
        f"no name server answered {name} {dns.rdatatype.to_text(rdtype)}: " + "; ".join(failures)
    )


def _rrset(answer: Answer, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    return answer.response.get_rrset(answer.response.answer, name, dns.rdataclass.IN, rdtype)


def _no_data(answer: Answer, name: dns.name.Name, rdtype: str) -> LookupFailed:
    rcode = dns.rcode.to_text(answer.response.rcode())
    return LookupFailed(
        f"{answer.name_server} has no {rdtype} record for {name.to_text(omit_final_dot=True)} ({rcode})"
    )


def region_of(
    name_servers: Sequence[str], record: str, subnet: ipaddress.IPv4Network, *, port: int, timeout: Timeout
) -> tuple[str, str]:
    """(region, name server): the value of the latency-routed TXT ``record`` for a client in ``subnet``."""
    answer = ask(name_servers, record, dns.rdatatype.TXT, subnet, port=port, timeout=timeout)
    rrset = _rrset(answer, dns.name.from_text(record), dns.rdatatype.TXT)
    if rrset is None:
        raise _no_data(answer, dns.name.from_text(record), "TXT")
    values = sorted({b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset})
    if len(values) != 1:
        raise LookupFailed(f"{answer.name_server} answered {record} TXT with {values}, not one region name")
    return values[0], answer.name_server


def address_of(
    name_servers: Sequence[str], domain: str, subnet: ipaddress.IPv4Network, *, port: int, timeout: Timeout
) -> tuple[str, str]:
    """(IPv4 address, name server): ``domain``'s A record for a client in ``subnet``.

    An alias record answers A directly; a CNAME chain is followed in the answer and, where the answer
    stops at a CNAME target, by asking the same servers for the target (a name outside the zone ends in
    an error).
    """
    name = dns.name.from_text(domain)
    for _ in range(MAX_CNAME_HOPS):
        answer = ask(name_servers, name.to_text(), dns.rdatatype.A, subnet, port=port, timeout=timeout)
        followed = False
        for _ in range(MAX_CNAME_HOPS):
            addresses = _rrset(answer, name, dns.rdatatype.A)
            if addresses is not None:
                return str(next(iter(addresses)).address), answer.name_server
            cname = _rrset(answer, name, dns.rdatatype.CNAME)
            if cname is None:
                break
            name, followed = next(iter(cname)).target, True
        if not followed:
            raise _no_data(answer, name, "A")
        # The answer stopped at a CNAME target without its records: ask the same servers for it.
    raise LookupFailed(f"the CNAME chain from {domain} is longer than {MAX_CNAME_HOPS} names")
