"""The local server's edge, over raw sockets against real containers: slow and idle clients never hold up
other clients of the region, malformed requests get JSON errors with a status line, a body that does not
arrive in time gets 408, HEAD answers like GET without a body, and the log has one escaped line per
request, early disconnects included."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from psycopg.conninfo import make_conninfo

from local.launcher import LocalApp, start_local_app

REGION = "edge-1"


def port_of(app: LocalApp) -> int:
    return int(app.urls[REGION].rpartition(":")[2])


def exchange(port: int, data: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), raw[:200]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def app_with_log(database_url: str, log_path: Path, env: dict[str, str]) -> tuple[LocalApp, IO[Any]]:
    output = log_path.open("ab")
    app = start_local_app(
        make_conninfo(database_url, user="users_api"), [(REGION, 0)], containers=1, env=env, output=output
    )
    return app, output


@pytest.fixture(scope="module")
def edge(
    module_migrated_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalApp, Path]]:
    """One region of ONE container (the case where a blocked server blocks everything), default timeouts."""
    log_path = tmp_path_factory.mktemp("edge") / "containers.log"
    app, output = app_with_log(module_migrated_database_url, log_path, {"AUTH_MODE": "none"})
    yield app, log_path
    app.stop()
    output.close()


@pytest.fixture(scope="module")
def impatient(
    module_migrated_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalApp, Path]]:
    """The same with read and idle timeouts of 1 s, so that the timeouts themselves can be seen quickly."""
    log_path = tmp_path_factory.mktemp("impatient") / "containers.log"
    env = {"AUTH_MODE": "none", "LOCAL_IDLE_TIMEOUT_S": "1", "LOCAL_READ_TIMEOUT_S": "1"}
    app, output = app_with_log(module_migrated_database_url, log_path, env)
    yield app, log_path
    app.stop()
    output.close()


def log_lines(log_path: Path, needle: str, timeout: float = 10) -> list[str]:
    """The container log's lines containing ``needle``, waiting for the first to be written."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_slow_and_idle_clients_do_not_hold_up_a_health_check(edge: tuple[LocalApp, Path]) -> None:
    app, _ = edge
    port = port_of(app)
    held = []
    try:
        for _ in range(3):  # connected, silent
            held.append(socket.create_connection(("127.0.0.1", port)))
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(
            b'POST /users HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na'
        )
        held.append(slow_body)
        slow_head = socket.create_connection(("127.0.0.1", port))
        slow_head.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        held.append(slow_head)
        time.sleep(0.3)  # the container has accepted them all by now
        started = time.monotonic()
        status, _, body = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
        elapsed = time.monotonic() - started
        assert status == 200 and json.loads(body)["status"] == "ok"
        # Generous: the held connections would make it wait their full 10 s timeout if they blocked it.
        assert elapsed < 2, f"a health check took {elapsed:.1f} s while five clients were slow"
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health\r\n\r\n", 400),  # HTTP/0.9: http.server answered it with no status line at all
        (b"POST /users\r\n\r\n", 400),
        (b"\r\n\r\n", 400),
        (b"GET /health HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /health HTTP/9.9\r\n\r\n", 505),
        (b"GET /health HTTP/1.1\r\nbroken header line\r\n\r\n", 200),  # http.server ignores it, like a proxy
        (b"GET health HTTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * 11_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 11_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /users HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde", 400),
        (b"POST /users HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /users HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"POST /users HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
def test_malformed_requests_get_json_errors_with_a_status_line(
    edge: tuple[LocalApp, Path], request_bytes: bytes, status: int
) -> None:
    got, headers, body = exchange(port_of(edge[0]), request_bytes)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert b"<html" not in body.lower()
    if status >= 400:
        error = json.loads(body)["error"]
        assert error["code"] == ("bad_request" if status < 500 else "internal_error") and error["message"]


def test_edge_errors_have_the_shape_of_the_deployed_apis_gateway_responses() -> None:
    """The deployed API gives API Gateway's own errors the handler's shape (components/openapi.py)."""
    from components.openapi import api_gateway_body, load_document
    from local.server import gateway_error_body

    invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn/invocations"
    deployed = api_gateway_body(load_document(), invoke_arn, user_pool_arn=None)
    templates = deployed["x-amazon-apigateway-gateway-responses"]
    for kind, status in (("DEFAULT_4XX", 400), ("DEFAULT_5XX", 502), ("THROTTLED", 429)):
        rendered = templates[kind]["responseTemplates"]["application/json"].replace(
            "$context.error.messageString",
            json.dumps("some message"),  # API Gateway's quoted form
        )
        template = json.loads(rendered)
        local = json.loads(gateway_error_body(status, "some message"))
        assert local.keys() == template.keys() and local["error"].keys() == template["error"].keys()
        assert local["error"]["code"] == template["error"]["code"], kind


def test_a_chunked_body_reaches_the_function(edge: tuple[LocalApp, Path]) -> None:
    payload = json.dumps({"name": "Chunked", "email": f"chunked-{time.monotonic_ns()}@example.com"}).encode()
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:7], payload[7:])) + b"0\r\n\r\n"
    )
    status, _, body = exchange(
        port_of(edge[0]),
        b"POST /users HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks,
    )
    assert status == 201, body
    assert json.loads(body)["name"] == "Chunked"


def test_head_answers_like_get_without_a_body(edge: tuple[LocalApp, Path]) -> None:
    port = port_of(edge[0])
    for path in ("/health", "/users?limit=2"):
        get_status, get_headers, _ = exchange(port, f"GET {path} HTTP/1.1\r\n\r\n".encode())
        head_status, head_headers, head_body = exchange(port, f"HEAD {path} HTTP/1.1\r\n\r\n".encode())
        assert (head_status, head_body) == (get_status, b"")
        assert head_headers["content-type"] == get_headers["content-type"] == "application/json"
        assert int(head_headers["content-length"]) > 0
    status, _, body = exchange(port, b"HEAD /elsewhere HTTP/1.1\r\n\r\n")
    assert (status, body) == (404, b"")


def test_a_body_that_does_not_arrive_in_time_gets_a_json_408(impatient: tuple[LocalApp, Path]) -> None:
    app, log_path = impatient
    status, headers, body = exchange(
        port_of(app),
        b"POST /users HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\nabcd",
    )
    assert (status, json.loads(body)) == (
        408,
        {"error": {"code": "bad_request", "message": "Request Timeout"}},
    )
    assert headers["content-type"] == "application/json"
    assert log_lines(log_path, "POST /users 408")[0].endswith("(4 of 100 body bytes within 1 s)")


def test_a_head_that_does_not_arrive_in_time_gets_408_and_silence_gets_closed(
    impatient: tuple[LocalApp, Path],
) -> None:
    port = port_of(impatient[0])
    status, _, _ = exchange(port, b"GET /health HTTP/1.1\r\nX-Slow: ")
    assert status == 408
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server, without a word
        assert time.monotonic() - started < 9


def test_control_bytes_and_non_utf8_in_the_path_are_escaped_in_one_log_line(
    edge: tuple[LocalApp, Path],
) -> None:
    app, log_path = edge
    marker = f"m{time.monotonic_ns()}"
    status, _, body = exchange(
        port_of(app), b"GET /" + marker.encode() + b"\x00\xff\x1b[31m\\x HTTP/1.1\r\n\r\n"
    )
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_request"
    [line] = log_lines(log_path, marker)
    assert f"{REGION} GET /{marker}\\x00\\xff\\x1b[31m\\\\x 400 " in line
    raw = log_path.read_bytes()
    assert b"\x00" not in raw and b"\xff" not in raw and b"\x1b" not in raw


def test_a_client_that_leaves_early_is_one_log_line_without_a_traceback(edge: tuple[LocalApp, Path]) -> None:
    app, log_path = edge
    port = port_of(app)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /users HTTP/1.1\r\nContent-Length: 100\r\nX-Tag: early\r\n\r\nabcd")
    lines = log_lines(log_path, "client disconnected after 4 of 100 body bytes")
    assert len(lines) == 1 and lines[0].startswith(f"{REGION} POST /users - ")
    assert "Traceback" not in log_path.read_text(errors="replace")
    assert exchange(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 200


def test_past_its_connection_limit_a_container_answers_429_at_once(edge: tuple[LocalApp, Path]) -> None:
    from local.server import MAX_CONNECTIONS

    port = port_of(edge[0])
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # every one accepted and waiting for its request line
        status, headers, body = exchange(port, b"GET /health HTTP/1.1\r\n\r\n", timeout=5)
        assert (status, json.loads(body)["error"]["code"]) == (429, "throttled")
        assert headers["content-type"] == "application/json"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert exchange(port, b"GET /health HTTP/1.1\r\n\r\n")[0] == 200  # the slots are free again
