"""One local "Lambda container" of one region: HTTP in, API Gateway event to the handler, HTTP out.

The launcher (``local.launcher``) runs each container as its own process, like Lambda does: its own
AWS_REGION, its own module state and database connection, one request at a time. The listening socket
is created by the launcher and inherited (``--fd``), so several containers of a region share a port and
the kernel hands each connection to an idle one.

    python -m local.server --fd 3 --region us-east-1      # normally started by python -m local
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from local.events import LambdaContext, api_gateway_event

# API Gateway refuses payloads over 10 MB before the function runs; so does the local stand-in.
API_GATEWAY_MAX_PAYLOAD = 10 * 1024 * 1024


class ContainerServer(HTTPServer):
    """An HTTPServer on an inherited, already listening socket, serving one request at a time."""

    def __init__(self, fd: int, region: str, stage: str, lambda_handler: Any) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = socket.socket(fileno=fd)
        # Every container of the region wakes up for a new connection; the losers of the race must
        # not block in accept(), so the shared socket is non-blocking (accepted ones are blocking).
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.region = region
        self.stage = stage
        self.lambda_handler = lambda_handler


class _RequestHandler(BaseHTTPRequestHandler):
    server: ContainerServer
    protocol_version = "HTTP/1.0"  # one request per connection: a busy container never pins a client

    def __getattr__(self, name: str) -> Any:
        # Every method goes to the handler, which answers 405 for what it does not serve.
        if name.startswith("do_"):
            return self._invoke
        raise AttributeError(name)

    def _invoke(self) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(400, {"Content-Type": "application/json"}, b'{"message":"Bad Request"}')
            self._log(400, started)
            return
        if length > API_GATEWAY_MAX_PAYLOAD:
            self._send(413, {"Content-Type": "application/json"}, b'{"message":"Request Too Long"}')
            self._log(413, started)
            return
        body = self.rfile.read(length) if length > 0 else None
        context = LambdaContext(region=self.server.region)
        event = api_gateway_event(
            self.command,
            url.path or "/",
            query_string=url.query,
            headers=list(self.headers.items()),
            body=body,
            stage=self.server.stage,
            request_id=context.aws_request_id,
            source_ip=self.client_address[0],
        )
        try:
            result = self.server.lambda_handler(event, context)
        except Exception:
            # What API Gateway answers when the function itself fails; the traceback goes to the log.
            traceback.print_exc()
            self._send(502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}')
            self._log(502, started)
            return
        payload = (result.get("body") or "").encode("utf-8")
        self._send(int(result["statusCode"]), result.get("headers") or {}, payload)
        self._log(int(result["statusCode"]), started)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def _log(self, status: int, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        sys.stderr.write(f"{self.server.region} {self.command} {self.path} {status} {elapsed:.1f}ms\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # _log writes the one line per request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--region", required=True)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args()
    os.environ["AWS_REGION"] = args.region
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "users-api")

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from handler import app  # a cold start, as in a fresh Lambda container

    server = ContainerServer(args.fd, args.region, args.stage, app.lambda_handler)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        app.reset()  # close the container's database connection
    return 0


if __name__ == "__main__":
    sys.exit(main())
