"""A stand-in of an AWS JSON 1.1 API (Cognito, Secrets Manager) on 127.0.0.1, for tests that drive the
real SDK or the real probe against it: each POST's ``X-Amz-Target``, JSON body and headers go to
``answer``, whose ``(status, body)`` is sent back as ``application/x-amz-json-1.1``; ``None`` sends
nothing (an endpoint that accepted the connection and went silent)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, dict[str, Any], Mapping[str, str]], "tuple[int, dict[str, Any]] | None"]


@contextmanager
def json_api_server(answer: Answer) -> Iterator[str]:
    """Serve ``answer`` from a thread; yields the endpoint's URL, shut down when the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            answered = answer(self.headers.get("X-Amz-Target", ""), body, self.headers)
            if answered is None:
                return
            status, reply = answered
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
