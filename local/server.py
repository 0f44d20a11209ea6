"""One local "Lambda container" of one region: API Gateway's edge in front, the handler behind it.

The launcher (``local.launcher``) runs each container as its own process, like Lambda does: its own
AWS_REGION, its own module state and database connection. The listening socket is created by the
launcher and inherited (``--fd``), so several containers of a region share a port.

Inside a container, each connection gets a thread for its I/O with the client, as API Gateway's edge
talks to clients independently of the function: a slow or idle client costs its own thread and never
delays another client. The handler itself runs one invocation at a time per container (a lock), which
is Lambda's model; a container whose invocation is running stops accepting new connections, so the
kernel hands them to an idle container of the region. Edge rules, as API Gateway's (REST) documented
quotas where one exists:

* the request line and headers within IDLE_TIMEOUT_S of connecting (silence: the connection is
  closed) and the whole request within READ_TIMEOUT_S of its first byte (else a JSON 408);
* request line and headers at most 10240 bytes (431/414), body at most 10 MB (413), a malformed
  request or target a JSON 400, a function that fails a JSON 502, an invocation that cannot start
  within 29 s (the integration timeout) a JSON 504; every answer has a status line, never HTML, and
  these errors have the shape the deployed API's gateway responses give them ({"error": {"code",
  "message"}}, components/openapi.py);
* HEAD on a GET route runs GET and sends its headers without the body;
* one log line per request, with control and non-ASCII bytes of the path escaped; a client that goes
  away early is one line too, never a traceback.

    python -m local.server --fd 3 --region us-east-1      # normally started by python -m local
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit

from local.auth import SERVED_REGION_HEADER, TokenVerifier, authorize, unauthorized_response
from local.events import LambdaContext, api_gateway_event

# API Gateway's REST API quotas: payload 10 MB, request line and headers 10240 bytes, integration 29 s.
API_GATEWAY_MAX_PAYLOAD = 10 * 1024 * 1024
MAX_HEAD_BYTES = 10240
INTEGRATION_TIMEOUT_S = 29.0
# How long a client may take; API Gateway does not document its own, these are generous for loopback.
# The environment may shorten them (the tests of the timeouts do, so as not to wait 10 s).
IDLE_TIMEOUT_S = float(os.environ.get("LOCAL_IDLE_TIMEOUT_S") or 10)
READ_TIMEOUT_S = float(os.environ.get("LOCAL_READ_TIMEOUT_S") or 10)
WRITE_TIMEOUT_S = 10.0
# Connections one container serves at once; beyond it a client gets 429 at once (API Gateway throttles).
MAX_CONNECTIONS = 128


class ClientGone(Exception):
    """The client closed the connection (or reset it) before the exchange was complete."""


class RequestTimeout(Exception):
    """The client did not send the request in time."""


class HeadTooLarge(Exception):
    """The request line and headers are longer than API Gateway accepts."""


class ContainerServer(ThreadingMixIn, HTTPServer):
    """An HTTP server on an inherited, already listening socket: a thread per connection, one handler
    invocation at a time."""

    daemon_threads = True  # a stuck client must never hold up the container's exit
    verifier: TokenVerifier | None = None  # the authorizer's key; None: started with --no-auth

    def __init__(self, fd: int, region: str, stage: str, lambda_handler: Any) -> None:
        super().__init__(("127.0.0.1", 0), EdgeConnection, bind_and_activate=False)
        self.socket.close()
        self.socket = socket.socket(fileno=fd)
        # Every container of the region wakes up for a new connection; the losers of the race must
        # not block in accept(), so the shared socket is non-blocking (accepted ones get timeouts).
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.region = region
        self.stage = stage
        self.lambda_handler = lambda_handler
        self._invocation = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def get_request(self) -> tuple[socket.socket, Any]:
        # While this container's function runs, leave new connections to an idle container of the
        # region (Lambda routes an invocation to a free execution environment).
        self._idle.wait(INTEGRATION_TIMEOUT_S)
        return self.socket.accept()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            _refuse(request, self.region)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @contextmanager
    def invocation(self) -> Iterator[bool]:
        """One invocation at a time; yields False when none could start within the integration timeout."""
        if not self._invocation.acquire(timeout=INTEGRATION_TIMEOUT_S):
            yield False
            return
        self._idle.clear()
        try:
            yield True
        finally:
            self._idle.set()
            self._invocation.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection-level failure that escaped the handler: one line, not socketserver's traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log(f"{self.region} connection error: {type(exc).__name__}: {exc}")
        else:
            traceback.print_exc()


def _refuse(request: socket.socket, region: str) -> None:
    try:
        request.settimeout(1)
        body = gateway_error_body(429, "Too Many Requests")
        request.sendall(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n%s: %s\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (SERVED_REGION_HEADER.encode(), region.encode(), len(body), body)
        )
    except OSError:
        pass
    log(f"{region} - - 429 over {MAX_CONNECTIONS} connections")


def gateway_error_body(status: int, message: str) -> bytes:
    """The body of an error API Gateway answers itself. The deployed API's gateway responses
    (components/openapi.py) give these the handler's shape: DEFAULT_4XX, DEFAULT_5XX and THROTTLED."""
    code = "throttled" if status == 429 else "bad_request" if status < 500 else "internal_error"
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def printable(text: str) -> str:
    """``text`` (a request line, decoded byte for byte) with anything but printable ASCII escaped, so a
    log line stays one line and shows exactly which bytes came."""
    return "".join(
        ch if "!" <= ch <= "~" and ch != "\\" else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


class EdgeConnection(BaseHTTPRequestHandler):
    """One client connection: read one request under the edge's rules, invoke, answer, close."""

    server: ContainerServer
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # so that even an error about the request line has a status line

    def setup(self) -> None:
        super().setup()
        self.started = time.perf_counter()
        self.command = ""
        self.path = ""
        self.note = ""

    def handle(self) -> None:
        try:
            reader = _DeadlineReader(self.connection)
            head = reader.read_head()
            if head is None:
                return  # connected and said nothing until the idle timeout: close quietly
            self.reader = reader
            self.rfile = io.BytesIO(head)
            self.raw_requestline = self.rfile.readline(MAX_HEAD_BYTES + 1)
            words = self.raw_requestline.split()
            if len(words) < 3:
                self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
                self.send_error(HTTPStatus.BAD_REQUEST, "the request line needs METHOD TARGET HTTP/1.1")
                return
            if not self.parse_request():
                return
            self.handle_request()
        except RequestTimeout as exc:
            self.note = str(exc)
            self.reply(HTTPStatus.REQUEST_TIMEOUT, "Request Timeout")
        except HeadTooLarge as exc:
            line_too_long = exc.args[0]
            self.requestline = str(reader.buffer[:200].split(b"\r\n", 1)[0], "iso-8859-1") + "..."
            status = (
                HTTPStatus.REQUEST_URI_TOO_LONG
                if line_too_long
                else HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            )
            self.send_error(status, f"request line and headers over {MAX_HEAD_BYTES} bytes")
        except ClientGone as exc:
            self.log_line("-", f"client disconnected {exc}")

    def handle_request(self) -> None:
        target = urlsplit(self.path)
        if not _is_valid_target(self.path) or not target.path.startswith("/"):
            self.send_error(HTTPStatus.BAD_REQUEST, "the request target must be an absolute path in ASCII")
            return
        body = self.read_body()
        if body is None:
            return  # answered already
        method = "GET" if self.command == "HEAD" else self.command
        with self.server.invocation() as started:
            if not started:
                self.reply(HTTPStatus.GATEWAY_TIMEOUT, "Endpoint request timed out")
                return
            try:
                result = self.invoke_function(method, target.path or "/", target.query, body)
            except Exception:
                # What API Gateway answers when the function itself fails; the traceback goes to the log.
                traceback.print_exc()
                self.reply(HTTPStatus.BAD_GATEWAY, "Internal server error")
                return
        payload = (result.get("body") or "").encode("utf-8")
        self.send(int(result["statusCode"]), result.get("headers") or {}, payload)

    def invoke_function(self, method: str, path: str, query: str, body: bytes | None) -> dict[str, Any]:
        """API Gateway's proxy event for this request, handed to the function; its proxy result back."""
        context = LambdaContext(region=self.server.region)
        event = api_gateway_event(
            method,
            path,
            query_string=query,
            headers=list(self.headers.items()),
            body=body,
            stage=self.server.stage,
            request_id=context.aws_request_id,
            source_ip=self.client_address[0],
        )
        if not authorize(event, self.server.verifier):  # API Gateway's Cognito authorizer (local/auth.py)
            return unauthorized_response(event)
        return self.server.lambda_handler(event, context)

    def read_body(self) -> bytes | None:
        """The request body (b"" when none); None after answering a request whose body is refused."""
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        length_header = self.headers.get("Content-Length")
        if encoding:
            if encoding != "chunked" or length_header is not None:
                self.send_error(
                    HTTPStatus.BAD_REQUEST, "only Transfer-Encoding: chunked, without Content-Length"
                )
                return None
            self._continue()
            try:
                body = self.reader.read_chunked(API_GATEWAY_MAX_PAYLOAD)
            except ValueError:
                self.send_error(HTTPStatus.BAD_REQUEST, "malformed chunked body")
                return None
            if body is None:
                self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long")
            return body
        lengths = self.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1 or (lengths and not lengths[0].strip().isdigit()):
            self.send_error(HTTPStatus.BAD_REQUEST, "Content-Length must be one non-negative integer")
            return None
        length = int(lengths[0]) if lengths else 0
        if length > API_GATEWAY_MAX_PAYLOAD:
            self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long")
            return None
        if length:
            self._continue()
        return self.reader.read_exactly(length)

    def _continue(self) -> None:
        if (
            self.headers.get("Expect") or ""
        ).lower() == "100-continue" and self.request_version == "HTTP/1.1":
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ------------------------------------------------------------ answers

    def handle_expect_100(self) -> bool:
        return True  # "100 Continue" only once the body is really wanted (read_body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header lines too long or too many), and ours, as
        API Gateway's JSON error body instead of an HTML page."""
        status = HTTPStatus(code)
        self.note = message or ""
        self.reply(status, status.phrase)

    def reply(self, status: int, message: str) -> None:
        """An error the edge answers itself, before or instead of the function."""
        self.send(status, {"Content-Type": "application/json"}, gateway_error_body(status, message))

    def send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.request_version = "HTTP/1.1"  # a status line, whatever the request line said
        lines = [f"HTTP/1.1 {status} {_phrase(status)}"]
        # The edge's own answers name the region too, as the deployed gateway responses do.
        headers = {SERVED_REGION_HEADER: self.server.region, **headers}
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        lines += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
        data = "\r\n".join(lines).encode("latin-1", "replace")
        if self.command != "HEAD":
            data += payload
        try:
            self._write(data)
        except ClientGone as exc:
            self.note = f"client disconnected before the response was sent {exc}"
        self.log_line(str(status), self.note)

    def _write(self, data: bytes) -> None:
        try:
            self.connection.settimeout(WRITE_TIMEOUT_S)
            self.connection.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone(f"({type(exc).__name__})") from None
        except TimeoutError:
            raise ClientGone(f"(not reading for {WRITE_TIMEOUT_S:.0f} s)") from None

    def log_line(self, status: str, note: str = "") -> None:
        elapsed = (time.perf_counter() - self.started) * 1000
        if self.command:
            what = f"{printable(self.command)} {printable(self.path)}"
        elif getattr(self, "requestline", ""):
            what = printable(self.requestline[:300])
        else:
            what = "- -"
        log(f"{self.server.region} {what} {status} {elapsed:.1f}ms" + (f" ({note})" if note else ""))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # log_line writes the one line per request


class _DeadlineReader:
    """Reads a request from a socket under the edge's deadlines: IDLE_TIMEOUT_S for the first byte,
    then READ_TIMEOUT_S for the whole request, however slowly the bytes come."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.deadline = time.monotonic() + IDLE_TIMEOUT_S
        self.received = 0

    def _recv(self) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(f"{self.received} bytes received within {READ_TIMEOUT_S:g} s")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise RequestTimeout(f"{self.received} bytes received within {READ_TIMEOUT_S:g} s") from None
        except ConnectionResetError:
            raise ClientGone(f"after {self.received} bytes (reset)") from None
        if not chunk:
            raise ClientGone(f"after {self.received} bytes")
        if not self.received:
            self.deadline = time.monotonic() + READ_TIMEOUT_S
        self.received += len(chunk)
        return chunk

    def read_head(self) -> bytes | None:
        """The request line and headers (up to the empty line); None when nothing came before the idle
        timeout or the client closed without a byte."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end + 4 > MAX_HEAD_BYTES or (end < 0 and len(self.buffer) > MAX_HEAD_BYTES):
                raise HeadTooLarge(b"\r\n" not in self.buffer[:MAX_HEAD_BYTES])
            if end >= 0:
                head, self.buffer = self.buffer[: end + 4], self.buffer[end + 4 :]
                return head
            try:
                self.buffer += self._recv()
            except (RequestTimeout, ClientGone):
                if not self.received:
                    return None
                raise

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            try:
                self.buffer += self._recv()
            except ClientGone:
                raise ClientGone(f"after {len(self.buffer)} of {size} body bytes") from None
            except RequestTimeout:
                raise RequestTimeout(
                    f"{len(self.buffer)} of {size} body bytes within {READ_TIMEOUT_S:g} s"
                ) from None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_line(self, limit: int) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > limit:
                raise ValueError("line too long")
            self.buffer += self._recv()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_chunked(self, limit: int) -> bytes | None:
        """A chunked body; None when it grows past ``limit``; ValueError when it is malformed."""
        body = bytearray()
        while True:
            size = int(self.read_line(1024).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self.read_line(MAX_HEAD_BYTES):  # trailers, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > limit:
                return None
            body += self.read_exactly(size)
            if self.read_exactly(2) != b"\r\n":
                raise ValueError("chunk without CRLF")


def _is_valid_target(target: str) -> bool:
    # RFC 3986: anything outside printable ASCII must be percent-encoded in a request target.
    return all("!" <= ch <= "~" for ch in target)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _exit_with_launcher() -> None:
    """End this container when the launcher that started it is gone (even killed with SIGKILL), so no
    container outlives it holding a port."""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--region", required=True)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args()
    os.environ["AWS_REGION"] = args.region
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "users-api")
    verifier = TokenVerifier.from_env()  # no authorizer key: an API without an authorizer (AUTH_MODE none)
    os.environ.setdefault("AUTH_MODE", "cognito" if verifier else "none")

    def stop(*_: object) -> None:
        raise SystemExit(0)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    _exit_with_launcher()
    from handler import app  # a cold start, as in a fresh Lambda container

    server = ContainerServer(args.fd, args.region, args.stage, app.lambda_handler)
    server.verifier = verifier
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        with server.invocation():  # let a running invocation finish before closing its connection
            app.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
