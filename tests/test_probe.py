"""The drill's probe (probe.app.handler) against a real DNS server and the real local app.

The DNS server is started here on loopback: a small authoritative zone written with dnspython's message
parsing that answers the latency-routed TXT record and the domain's A record by the EDNS Client Subnet
each query carries (as Route 53 answers by it), records every query, and refuses queries without the
option. The local app (``start_local_app``) serves each region on its own loopback address with one port
for both, so the address the DNS answer gives decides which region's edge answers, as in AWS, and the
local edge's ``X-Served-Region`` header names it. "Failover" is the zone moving the target's subnet to
the other region, as Route 53 does when the target's health checks fail.

Also proven: TLS is verified for the domain (SNI and certificate name) at an address, UDP truncation
falls back to TCP, a silent or refusing server is skipped, timeouts and refusals become ``error`` texts,
a malformed event raises ``ValueError`` naming the key, and the probe's zips carry python3.13 bytecode.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import socket
import ssl
import subprocess
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg.conninfo import make_conninfo

from components.config import PROJECT
from components.probe_artifact import (
    PROBE_DIR,
    PROBE_ENTRY_POINT,
    PROBE_LOCK,
    ProbeArtifacts,
    ProbeArtifactsArgs,
)
from local.launcher import LocalApp, LocalAppError, start_local_app
from probe.app import handler
from probe.authoritative import LookupFailed, address_of
from probe.event import parse_event
from probe.served import RequestFailed, served_region
from scripts.build_artifacts import find_runtime_python, lay_out, lock_digest
from tests.pulumi_harness import ROOT, run_program
from tests.test_lambda_artifact import THIS_MACHINE
from tests.test_locks import read_lock

A, B = "us-east-1", "us-east-2"
ZONE = "example.test."
DOMAIN = "api.example.test"
RECORD = "_region.api.example.test"
SUBNET_HOSTS = {A: "10.1.0.7", B: "10.2.0.9"}  # addresses stand for hosts in each region
ADDRESSES = {A: "127.0.0.2", B: "127.0.0.3"}  # each region's edge on its own loopback address
NOWHERE = "127.0.0.4"  # nothing listens here
RUNTIME = "python3.13"


@dataclass
class Query:
    name: str
    rdtype: str
    subnet: str | None
    recursion_desired: bool
    transport: str


@dataclass
class FakeZone:
    """An authoritative server for ZONE that answers by the query's EDNS Client Subnet."""

    routes: dict[str, str]
    """client subnet -> region its latency records route to."""
    addresses: dict[str, str] = field(default_factory=lambda: dict(ADDRESSES))
    queries: list[Query] = field(default_factory=list)
    truncate_udp: bool = False
    host: str = "127.0.0.1"
    port: int = 0

    def answer(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        ecs = [option for option in query.options if isinstance(option, dns.edns.ECSOption)]
        subnet = f"{ecs[0].address}/{ecs[0].srclen}" if ecs else None
        self.queries.append(
            Query(
                question.name.to_text(),
                dns.rdatatype.to_text(question.rdtype),
                subnet,
                bool(query.flags & dns.flags.RD),
                transport,
            )
        )
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if subnet is None:  # the probe must always say whom it asks for
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        if not question.name.is_subdomain(dns.name.from_text(ZONE)):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        response.use_edns(0, options=[dns.edns.ECSOption(ecs[0].address, ecs[0].srclen, 24)])
        region = self.routes.get(subnet)
        name = question.name.to_text()
        records = {
            (RECORD + ".", "TXT"): [f'"{region}"'],
            (DOMAIN + ".", "A"): [self.addresses.get(region or "", NOWHERE)],
            ("www.example.test.", "A"): ["CNAME", DOMAIN + "."],  # the chain completed in the answer
            ("split.example.test.", "A"): ["CNAME-ONLY", DOMAIN + "."],  # the chain needs a second query
            ("elsewhere.example.test.", "A"): ["CNAME-ONLY", "api.example.invalid."],
            ("loop.example.test.", "A"): ["CNAME-ONLY", "loop.example.test."],
        }
        found = records.get((name, dns.rdatatype.to_text(question.rdtype)))
        if found is None:
            if not any(key[0] == name for key in records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        if found[0] in ("CNAME", "CNAME-ONLY"):
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", found[1]))
            if found[0] == "CNAME":
                response.answer.append(
                    dns.rrset.from_text(found[1], 60, "IN", "A", self.addresses[region or A])
                )
        else:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, *found))
        if transport == "udp" and self.truncate_udp:
            response.answer.clear()
            response.flags |= dns.flags.TC
        return response.to_wire()


@contextmanager
def serving(zone: FakeZone) -> Iterator[FakeZone]:
    """UDP and TCP on the same port, each on its own thread, until the block ends."""
    wanted = zone.port
    for _attempt in range(10):  # a free UDP port may be taken for TCP by another process: pick again
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((zone.host, wanted))
        zone.port = udp.getsockname()[1]
        try:
            tcp = socket.create_server((zone.host, zone.port))
            break
        except OSError:
            udp.close()
            if wanted:
                raise
    else:
        raise RuntimeError("no port free for both UDP and TCP on the fake zone's address")
    stop = threading.Event()

    def serve_udp() -> None:
        udp.settimeout(0.1)
        while not stop.is_set():
            try:
                wire, peer = udp.recvfrom(65535)
            except TimeoutError:
                continue
            udp.sendto(zone.answer(wire, "udp"), peer)

    def serve_tcp() -> None:
        tcp.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = tcp.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                length = int.from_bytes(connection.recv(2), "big")
                wire = b""
                while len(wire) < length:
                    wire += connection.recv(length - len(wire))
                answer = zone.answer(wire, "tcp")
                connection.sendall(len(answer).to_bytes(2, "big") + answer)

    threads = [threading.Thread(target=serve, daemon=True) for serve in (serve_udp, serve_tcp)]
    for thread in threads:
        thread.start()
    try:
        yield zone
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        udp.close()
        tcp.close()


@pytest.fixture
def zone() -> Iterator[FakeZone]:
    with serving(FakeZone(routes={"10.1.0.0/24": A, "10.2.0.0/24": B})) as started:
        yield started


def _free_port_on(*hosts: str) -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind((hosts[0], 0))
        return int(probe_socket.getsockname()[1])


@pytest.fixture(scope="module")
def regions(module_migrated_database_url: str) -> Iterator[int]:
    """Both local regions, each on its own loopback address, on one port: the port they share."""
    url = make_conninfo(module_migrated_database_url, user="users_api")
    for _attempt in range(3):
        port = _free_port_on(ADDRESSES[A])
        with ExitStack() as stack:
            try:
                apps: list[LocalApp] = [
                    stack.enter_context(
                        start_local_app(url, [(region, port)], host=address, env={"AUTH_MODE": "none"})
                    )
                    for region, address in ADDRESSES.items()
                ]
            except LocalAppError:  # the port was taken on the other address meanwhile: another one
                continue
            assert len(apps) == 2
            yield port
            return
    pytest.fail("could not start both local regions on one port")


def event(zone: FakeZone, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": A,
        "nameServers": [zone.host],
        "regionRecord": RECORD,
        "domain": DOMAIN,
        "path": "/health",
        "subnetHosts": dict(SUBNET_HOSTS),
        "timeoutSeconds": 2,
        "scheme": "http",
        "dnsPort": zone.port,
    }
    return {**base, **changes}


def test_dns_and_https_follow_the_zone_from_the_target_region_to_the_other_one(
    zone: FakeZone, regions: int
) -> None:
    before = handler(event(zone, port=regions))
    assert before["target"] == A and before["clientSubnet"] == "10.1.0.0/24"
    assert before["dns"] == {"region": A, "nameServer": "127.0.0.1", "error": None}
    assert before["https"] == {"region": A, "address": ADDRESSES[A], "status": 200, "error": None}
    assert isinstance(before["elapsedMs"], int) and before["elapsedMs"] >= 0

    zone.routes["10.1.0.0/24"] = B  # the target's health checks failed: its clients go to B
    after = handler(event(zone, port=regions))
    assert after["dns"] == {"region": B, "nameServer": "127.0.0.1", "error": None}
    assert after["https"] == {"region": B, "address": ADDRESSES[B], "status": 200, "error": None}
    json.dumps(after)  # what Lambda returns to the state machine

    # Every query said whom it asks for (the target's /24) and asked for no recursion.
    assert {(q.name, q.rdtype) for q in zone.queries} == {(RECORD + ".", "TXT"), (DOMAIN + ".", "A")}
    assert {q.subnet for q in zone.queries} == {"10.1.0.0/24"}
    assert not any(q.recursion_desired for q in zone.queries)


def test_another_target_is_asked_for_with_its_own_subnet(zone: FakeZone, regions: int) -> None:
    result = handler(event(zone, target=B, port=regions))
    assert (result["clientSubnet"], result["dns"]["region"], result["https"]["region"]) == (
        "10.2.0.0/24",
        B,
        B,
    )
    assert {q.subnet for q in zone.queries} == {"10.2.0.0/24"}


def test_an_address_where_nothing_listens_is_an_error_text_and_dns_still_observes(zone: FakeZone) -> None:
    zone.addresses[A] = NOWHERE
    port = _free_port_on(NOWHERE)
    result = handler(event(zone, port=port))
    assert result["dns"]["region"] == A
    assert result["https"] == {
        "region": None,
        "address": NOWHERE,
        "status": None,
        "error": f"connection to {NOWHERE}:{port} refused",
    }


def test_a_silent_http_server_times_out_into_an_error_text(zone: FakeZone) -> None:
    with socket.create_server((ADDRESSES[A], 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        result = handler(event(zone, port=port, timeoutSeconds=0.3))
    assert result["https"]["error"] == f"no answer from {ADDRESSES[A]}:{port} within 0.3 s"
    assert result["https"]["region"] is None and result["dns"]["region"] == A


def test_an_answer_without_the_header_is_an_error_that_keeps_its_status(zone: FakeZone) -> None:
    class NoHeader(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((ADDRESSES[A], 0), NoHeader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = handler(event(zone, port=server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
    assert result["https"]["status"] == 200 and result["https"]["region"] is None
    assert "has no X-Served-Region header" in result["https"]["error"]


def test_a_silent_name_server_is_skipped_for_the_next_one(zone: FakeZone) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.5", zone.port))  # same port, another address: it never answers
        result = handler(event(zone, nameServers=["127.0.0.5", "127.0.0.1"], timeoutSeconds=0.3))
    assert result["dns"] == {"region": A, "nameServer": "127.0.0.1", "error": None}


def test_no_answering_name_server_is_an_error_text_per_server(zone: FakeZone) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.5", zone.port))
        result = handler(event(zone, nameServers=["127.0.0.5"], timeoutSeconds=0.3))
    assert result["dns"] == {
        "region": None,
        "nameServer": None,
        "error": f"no name server answered {RECORD} TXT: 127.0.0.5: no answer within 0.3 s",
    }
    assert (
        result["https"]["error"] == f"no name server answered {DOMAIN}. A: 127.0.0.5: no answer within 0.3 s"
    )
    assert result["https"]["address"] is None


def test_a_refusing_name_server_and_an_unknown_name_server_host_are_skipped(zone: FakeZone) -> None:
    result = handler(event(zone, nameServers=["ns.invalid", "127.0.0.1"], regionRecord="_region.example.org"))
    assert result["dns"]["region"] is None
    assert result["dns"]["error"].startswith("no name server answered _region.example.org TXT: ns.invalid: ")
    assert result["dns"]["error"].endswith("; 127.0.0.1: REFUSED")


def test_a_missing_record_is_an_answer_that_names_it(zone: FakeZone) -> None:
    result = handler(event(zone, regionRecord="_nothing.example.test"))
    assert result["dns"] == {
        "region": None,
        "nameServer": None,
        "error": "127.0.0.1 has no TXT record for _nothing.example.test (NXDOMAIN)",
    }


def test_truncated_udp_answers_are_asked_again_over_tcp(zone: FakeZone) -> None:
    zone.truncate_udp = True
    result = handler(event(zone))
    assert result["dns"]["region"] == A
    assert [q.transport for q in zone.queries if q.rdtype == "TXT"] == ["udp", "tcp"]


def test_cname_chains_are_followed_within_the_zone(zone: FakeZone) -> None:
    subnet = ipaddress.IPv4Network("10.1.0.0/24")

    def lookup(name: str) -> tuple[str, str]:
        return address_of(["127.0.0.1"], name, subnet, port=zone.port, timeout=lambda: 2.0)

    assert lookup("www.example.test") == (ADDRESSES[A], "127.0.0.1")  # the answer holds the chain
    assert lookup("split.example.test") == (ADDRESSES[A], "127.0.0.1")  # the target asked again
    assert [q.name for q in zone.queries[-2:]] == ["split.example.test.", DOMAIN + "."]
    with pytest.raises(LookupFailed, match=r"api\.example\.invalid\. A: 127\.0\.0\.1: REFUSED"):
        lookup("elsewhere.example.test")
    with pytest.raises(LookupFailed, match="longer than 8 names"):
        lookup("loop.example.test")


def test_an_unresolvable_subnet_host_leaves_both_observations_with_the_reason(zone: FakeZone) -> None:
    result = handler(event(zone, subnetHosts={A: "host.invalid"}))
    assert result["clientSubnet"] is None and zone.queries == []
    for observation in ("dns", "https"):
        assert result[observation]["region"] is None
        assert result[observation]["error"].startswith(
            f"no client subnet for {A}: cannot resolve the subnet host"
        )


def test_the_invocation_s_remaining_time_bounds_every_step(zone: FakeZone) -> None:
    class AlmostOut:
        def get_remaining_time_in_millis(self) -> int:
            return 100  # less than the reserve kept to return the result

    result = handler(event(zone), AlmostOut())
    assert zone.queries == []
    for observation in ("dns", "https"):
        assert "ran out of time" in result[observation]["error"]


# --- TLS: verified for the domain at the address DNS gave ---------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on ADDRESSES[B] whose certificate names only DOMAIN; a context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    seen_sni: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)  # type: ignore[assignment,func-returns-value]

    class Served(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.headers["Host"].split(":")[0] == DOMAIN  # the domain, not the address
            self.send_response(200)
            self.send_header("X-Served-Region", B)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((ADDRESSES[B], 0), Served)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    try:
        yield server.server_address[1], client_context
        # SNI was always the name asked for (never absent, never the address).
        assert DOMAIN in seen_sni and set(seen_sni) <= {DOMAIN, "other.example.test"}
    finally:
        server.shutdown()
        server.server_close()


def test_https_is_verified_for_the_domain_at_the_address(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, trusting = tls_server
    served = served_region(
        ADDRESSES[B], DOMAIN, "/health", scheme="https", port=port, timeout=2, tls=trusting
    )
    assert (served.status, served.region) == (200, B)
    # The same server, asked for another name, fails verification: the certificate is checked for the domain.
    with pytest.raises(RequestFailed, match=r"TLS certificate of 127\.0\.0\.3:\d+ not valid: .*mismatch"):
        served_region(
            ADDRESSES[B], "other.example.test", "/", scheme="https", port=port, timeout=2, tls=trusting
        )


def test_the_handler_uses_the_system_trust_store(
    zone: FakeZone, tls_server: tuple[int, ssl.SSLContext]
) -> None:
    """A certificate no public authority signed is refused, as a client would refuse it."""
    port, _ = tls_server
    zone.routes["10.1.0.0/24"] = B
    result = handler(event(zone, scheme="https", port=port))
    assert result["https"]["region"] is None and result["https"]["address"] == ADDRESSES[B]
    assert result["https"]["error"].startswith(f"TLS certificate of {ADDRESSES[B]}:{port} not valid: ")


# --- malformed events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"target": None}, "target"),
        ({"target": ""}, "target"),
        ({"nameServers": []}, "nameServers"),
        ({"nameServers": "ns-1.awsdns-01.org"}, "nameServers"),
        ({"regionRecord": 7}, "regionRecord"),
        ({"domain": " "}, "domain"),
        ({"subnetHosts": {B: "10.2.0.9"}}, "subnetHosts"),
        ({"subnetHosts": ["10.1.0.7"]}, "subnetHosts"),
        ({"path": "health"}, "path"),
        ({"timeoutSeconds": 0}, "timeoutSeconds"),
        ({"timeoutSeconds": True}, "timeoutSeconds"),
        ({"timeoutSeconds": 600}, "timeoutSeconds"),
        ({"scheme": "ftp"}, "scheme"),
        ({"port": 70000}, "port"),
        ({"dnsPort": "53"}, "dnsPort"),
        ({"nameservers": ["ns"]}, "nameservers"),
    ],
)
def test_a_malformed_event_raises_naming_the_key(change: dict[str, Any], key: str) -> None:
    bad = {**event(FakeZone(routes={}, port=53)), **change}
    with pytest.raises(ValueError, match=f"event key '{key}'"):
        handler(bad)


def test_a_missing_key_or_a_non_object_raises() -> None:
    complete = event(FakeZone(routes={}, port=53))
    for key in ("target", "nameServers", "regionRecord", "domain", "subnetHosts"):
        with pytest.raises(ValueError, match=f"event key '{key}' is missing"):
            handler({k: v for k, v in complete.items() if k != key})
    with pytest.raises(ValueError, match="must be a JSON object"):
        handler(["us-east-2"])


def test_defaults_are_https_port_443_dns_port_53_and_health() -> None:
    parsed = parse_event(
        {
            k: v
            for k, v in event(FakeZone(routes={}, port=53)).items()
            if k not in ("scheme", "dnsPort", "path", "timeoutSeconds")
        }
    )
    assert (parsed.scheme, parsed.http_port, parsed.dns_port, parsed.path, parsed.timeout_seconds) == (
        "https",
        443,
        53,
        "/health",
        5.0,
    )


# --- the artifact ------------------------------------------------------------------------------------------


def test_the_probe_lock_holds_dnspython_only() -> None:
    assert set(read_lock(PROBE_LOCK)) == {"dnspython"}


def _probe_program() -> None:
    artifacts = ProbeArtifacts("drill-probe", ProbeArtifactsArgs(THIS_MACHINE, RUNTIME))
    pulumi.export("code", artifacts.code.path)
    pulumi.export("code_hash", artifacts.code_hash)
    pulumi.export("layer", artifacts.layer_archive.path)
    pulumi.export("layer_hash", artifacts.layer_hash)
    pulumi.export("layer_description", artifacts.layer_description)
    pulumi.export("entry_point", artifacts.entry_point)


@pytest.fixture(scope="module")
def probe_build() -> dict[str, Any]:
    """ProbeArtifacts under mocks, built (or reused from build/lambda/probe/) for this machine."""
    run = run_program(program=_probe_program)
    assert run.one(f"{PROJECT}:lambda:ProbeArtifacts").name == "drill-probe"
    return run.outputs


def test_probe_artifacts_are_zips_with_python313_bytecode_and_their_hashes(
    probe_build: dict[str, Any],
) -> None:
    assert probe_build["entry_point"] == PROBE_ENTRY_POINT == "probe.app.handler"
    assert probe_build["layer_description"].startswith(
        f"probe/requirements.txt sha256:{lock_digest(PROBE_LOCK)[:16]}"
    )
    tag = "cpython-313"
    for kind, root in (("code", "probe/"), ("layer", "python/")):
        relative = Path(probe_build[kind])
        assert not relative.is_absolute() and relative.parts[:3] == ("build", "lambda", "probe"), relative
        data = (ROOT / relative).read_bytes()
        assert probe_build[f"{kind}_hash"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        with zipfile.ZipFile(ROOT / relative) as archive:
            names = archive.namelist()
        assert all(name.startswith(root) for name in names), names[:5]
        sources = [name for name in names if name.endswith(".py")]
        for source in sources:
            folder, _, file = source.rpartition("/")
            assert f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc" in names, f"no bytecode for {source}"
        assert not [name for name in names if name.endswith(".pyc") and f".{tag}." not in name]
    code_names = set(zipfile.ZipFile(ROOT / probe_build["code"]).namelist())
    assert {name for name in code_names if not name.endswith(".pyc")} == {
        f"probe/{path.name}" for path in PROBE_DIR.glob("*.py")
    }
    layer_packages = {name.split("/")[1] for name in zipfile.ZipFile(ROOT / probe_build["layer"]).namelist()}
    # dnspython's package only (and uv's empty ``.lock`` of the target folder, as in the API's layer).
    assert {name for name in layer_packages if not name.endswith(".dist-info")} == {"dns", ".lock"}


def test_the_built_probe_runs_from_bytecode_on_python313(
    probe_build: dict[str, Any], zone: FakeZone, tmp_path: Path
) -> None:
    """Laid out as Lambda mounts it, every source replaced by a line that raises: the probe imports
    from the shipped bytecode only, with nothing but the layer (no boto3), and observes the zone."""
    opt_python, task = lay_out(ROOT / probe_build["layer"], ROOT / probe_build["code"], tmp_path)
    for source in [*opt_python.rglob("*.py"), *task.rglob("*.py")]:
        source.write_text("raise ImportError('the source ran: the shipped bytecode was not used')\n")
    python = find_runtime_python(RUNTIME.removeprefix("python"))
    run = textwrap.dedent(
        """
        import json, sys
        task, layer, event = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        sys.path[:0] = [task, layer]
        import probe.app
        result = probe.app.handler(event)
        result["modules"] = sorted(name.split(".")[0] for name in sys.modules)
        print(json.dumps(result))
        """
    )
    zone.addresses[A] = NOWHERE
    port = _free_port_on(NOWHERE)
    result = subprocess.run(
        [
            str(python.path),
            "-I",
            "-S",
            "-B",
            "-c",
            run,
            str(task),
            str(opt_python),
            json.dumps(event(zone, port=port)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["dns"] == {"region": A, "nameServer": "127.0.0.1", "error": None}
    assert outcome["https"]["error"] == f"connection to {NOWHERE}:{port} refused"
    assert not {"boto3", "botocore"} & set(outcome["modules"])
