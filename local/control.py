"""The launcher's control endpoint: see the local regions, take one down and bring it back, on a loopback
port of its own (CONTROL_PORT, default 8000). ``python -m tools.drill`` and the tests use it.

    curl http://127.0.0.1:8000/regions
    curl -X POST -H 'Content-Type: application/json' -d '{"state": "down"}' http://127.0.0.1:8000/regions/us-east-1
    curl -X POST -H 'Content-Type: application/json' -d '{"state": "up"}'   http://127.0.0.1:8000/regions/us-east-1

    curl -X POST -H 'Content-Type: application/json' -d '{"state": "down"}' http://127.0.0.1:8000/identity/us-east-1

GET /regions answers ``{"regions": {name: {"url", "state", "containers": [pid, ...], "replaced"}}, "run": id}``
(``run``: the id in the run file of ``python -m local``, local/auth.py; null when started otherwise).
GET /identity answers the regions' identity (local/identity.py ``describe``: each region's state, the
managed-login domain and the region serving it, the regional endpoints) or 404 without authentication;
POST /identity/<name> takes that region's Cognito down or brings it back, at once.
POST /regions/<name> answers with that region's entry once the change is done: "down" once its
containers are killed and its port is closed, "up" once it answers GET /health with 200 (502 when it
cannot start). A POST must be JSON, which a web page cannot send to another origin without a CORS
preflight this endpoint never approves: a page open in a browser cannot take a region down. Every
request must also name this endpoint in its ``Host`` header, exactly as its URL does
(``127.0.0.1:<port>``): a page on a domain that an attacker points at 127.0.0.1 (DNS rebinding) sends
its own name, and is answered 421 with a JSON body, before anything is read or changed.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from local.identity import LocalIdentity
from local.launcher import LocalApp, LocalAppError
from local.loopback import LoopbackServer

MAX_BODY = 1024


class ControlServer(LoopbackServer):
    """Bound at once (so a port in use fails before anything else starts), serving once ``serve(app)``."""

    app: LocalApp
    run_id: str | None = None
    identity: LocalIdentity | None = None

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, _ControlRequest)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, app: LocalApp, run_id: str | None = None, identity: LocalIdentity | None = None) -> None:
        """Answer for ``app`` (and its regions' ``identity``) from a thread; ``close()`` ends it.
        ``run_id`` is the id ``python -m local`` wrote in its run file; GET /regions names it, so a tool
        can tell which run answers."""
        self.app = app
        self.run_id = run_id
        self.identity = identity
        self.start_serving()


class _ControlRequest(BaseHTTPRequestHandler):
    server: ControlServer
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"
    timeout = 10  # a client that stalls holds only its own thread, and not for long

    def _host_refused(self) -> bool:
        """Answer 421 (and True) unless the Host header is this endpoint's own address and port."""
        host = (self.headers.get("Host") or "").strip().lower()
        expected = self.server.url.removeprefix("http://")
        if host == expected:
            return False
        self.answer(
            HTTPStatus.MISDIRECTED_REQUEST,
            {
                "message": f"this control endpoint answers only requests to http://{expected} (Host: {expected})"
            },
        )
        return True

    def do_GET(self) -> None:
        if self._host_refused():
            return
        path = self.path.rstrip("/")
        if path == "/identity" and self.server.identity is not None:
            self.answer(HTTPStatus.OK, self.server.identity.describe())
        elif path == "/identity":
            self.answer(
                HTTPStatus.NOT_FOUND, {"message": "this run has no identity (started with --no-auth)"}
            )
        elif path == "/regions":
            self.answer(HTTPStatus.OK, {"regions": self.server.app.status(), "run": self.server.run_id})
        else:
            self.answer(
                HTTPStatus.NOT_FOUND, {"message": "GET /regions, GET /identity or POST /regions/<name>"}
            )

    def do_POST(self) -> None:
        if self._host_refused():
            return
        kind, _, name = self.path.strip("/").partition("/")
        identity = self.server.identity
        known = (
            list(self.server.app.regions) if kind == "regions" else list(identity.regions if identity else [])
        )
        if kind not in ("regions", "identity") or name not in known:
            if kind not in ("regions", "identity"):
                message = "POST /regions/<name> or POST /identity/<name>"
            elif known:
                message = f"no region {name!r}; the regions are {', '.join(known)}"
            else:
                message = "this run has no identity (started with --no-auth)"
            self.answer(HTTPStatus.NOT_FOUND, {"message": message})
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            self.answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"message": "send Content-Type: application/json"})
            return
        wanted = self._state()
        if wanted is None:
            self.answer(HTTPStatus.BAD_REQUEST, {"message": 'send {"state": "down"} or {"state": "up"}'})
            return
        if kind == "identity":
            assert identity is not None
            identity.set_state(name, wanted)
            self.answer(HTTPStatus.OK, identity.describe())
            return
        try:
            if wanted == "down":
                self.server.app.take_down(name)
            else:
                self.server.app.bring_up(name)
        except LocalAppError as exc:
            self.answer(HTTPStatus.BAD_GATEWAY, {"message": str(exc)})
            return
        self.answer(HTTPStatus.OK, {name: self.server.app.status()[name]})

    def _state(self) -> str | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return None
            body = json.loads(self.rfile.read(length))
        except (ValueError, OSError):
            return None
        state = body.get("state") if isinstance(body, dict) else None
        return state if state in ("down", "up") else None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.answer(code, {"message": message or HTTPStatus(code).phrase})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the launcher logs what a change did


def open_control(port: int, host: str = "127.0.0.1") -> ControlServer:
    """The control endpoint's socket (port 0 picks a free one); LocalAppError when the port is taken."""
    try:
        return ControlServer(host, port)
    except OSError as exc:
        raise LocalAppError(
            f"control endpoint: cannot listen on {host}:{port} ({exc.strerror}); "
            "choose another port with CONTROL_PORT or --control-port"
        ) from exc
