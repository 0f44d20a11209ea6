"""The web client (web/) served locally, with the local issuer's OAuth endpoints beside it.

``python -m local`` (``make dev``) serves the client at http://127.0.0.1:8080/ (WEB_PORT, or
``--web-port``, change the port) with a ``/config.json`` made for the run: the local regions' URLs as
``apiUrls``, this server's origin as ``authDomain`` (it answers Cognito's OAuth paths, local/oauth.py)
and the run's app client id. The client's code is the same as deployed; only config.json differs.

Every answer carries the headers the deployed distribution's response headers policy sets: a strict
Content-Security-Policy (scripts and styles from this origin only, never inline; ``connect-src`` the
API regions), ``nosniff``, no framing, no referrer. Requests must name this server in ``Host`` (a page
on another name cannot reach it through DNS rebinding); ``localhost`` is redirected to ``127.0.0.1``,
the one origin the regions allow.

The files are web/ as it is, completed by scripts/build_web.py (``make web``) with the API document
and Swagger UI; the deployed stack uploads the same folder. Edits to web/ show on the next reload.
"""

from __future__ import annotations

import html
import json
import mimetypes
import os
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.identity import ENDPOINT_PREFIX, JSON_1_1, CognitoError, LocalIdentity
from local.launcher import LocalAppError
from local.loopback import LoopbackServer
from local.oauth import LocalOAuth, OAuthError, sign_in_page
from scripts import web_policy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEB_PORT = 8080
REDIRECT_PATH = "/callback"
SIGN_OUT_PATH = "/"
MAX_FORM_BYTES = 16 * 1024
SERVED_REGION_HEADER = "X-Served-Region"  # which region's identity answered (as the API's answers say)
DOMAIN_PATHS = frozenset(
    {"/oauth2/authorize", "/oauth2/token", "/oauth2/revoke", "/logout", "/.well-known/jwks.json"}
)
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/yaml", ".yaml")


def web_port_setting(explicit: int | None = None) -> int:
    """The web client's port: ``explicit``, else WEB_PORT, else 8080 (0 = a free one)."""
    if explicit is not None:
        return explicit
    text = os.environ.get("WEB_PORT", "").strip()
    if not text:
        return DEFAULT_WEB_PORT
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise ValueError(f"WEB_PORT={text!r} is not a port number (1-65535, 0 = a free one); fix or unset it")
    return int(text)


def client_config(
    api_urls: dict[str, str],
    auth_domain: str | None,
    client_id: str | None,
    identity_endpoints: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The client's /config.json (docs/web-client.md): ``authDomain``/``clientId`` None means no sign-in
    (an API served with ``--no-auth``); ``identityEndpoints`` the regional Cognito endpoints, primary first."""
    return {
        "apiUrls": dict(api_urls),
        "authDomain": auth_domain,
        "clientId": client_id,
        "identityEndpoints": dict(identity_endpoints or {}),
        "regions": list(api_urls),
        "redirectPath": REDIRECT_PATH,
    }


def content_security_policy(connect_origins: list[str]) -> str:
    """The deployed site's CSP (scripts/web_policy.py), less ``upgrade-insecure-requests``: the local
    regions speak plain HTTP on loopback, and the sign-in endpoints are on this same origin."""
    return web_policy.content_security_policy(connect_origins, https_only=False)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class WebServer(LoopbackServer):
    """Bound at once (a port in use fails before anything else starts), serving once ``serve(...)``."""

    site_dir: Path
    config: dict[str, Any]
    csp: str
    oauth: LocalOAuth | None
    identity: LocalIdentity | None

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, _WebRequest)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{self.server_address[0]!s}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return self.origin + REDIRECT_PATH

    @property
    def sign_out_uri(self) -> str:
        return self.origin + SIGN_OUT_PATH

    def serve(self, site_dir: Path, api_urls: dict[str, str], identity: LocalIdentity | None) -> None:
        """Answer from a thread: the files of ``site_dir``, config.json for ``api_urls`` and, with
        ``identity``, the managed-login domain and each region's Cognito endpoint; ``close()`` ends it."""
        self.site_dir = site_dir.resolve()
        self.identity = identity
        self.oauth = identity.oauth if identity else None
        self.config = client_config(
            api_urls,
            self.origin if identity else None,
            identity.oauth.issuer.client_id if identity else None,
            identity.endpoints() if identity else None,
        )
        self.csp = content_security_policy([_origin(url) for url in api_urls.values()])
        self.start_serving()


class _WebRequest(BaseHTTPRequestHandler):
    server: WebServer
    _identity_region: str | None = None  # the region whose identity answers this request, if any
    protocol_version = "HTTP/1.1"
    timeout = 10

    # ------------------------------------------------------------ routing

    def do_GET(self) -> None:
        if not self._host_ok() or not self._domain_served():
            return
        target = urlsplit(self.path)
        params = dict(parse_qsl(target.query))
        path = target.path
        oauth = self.server.oauth
        if path.startswith(ENDPOINT_PREFIX) and self.server.identity is not None:
            self._issuer_view(path)
        elif path == "/config.json":
            self._json(HTTPStatus.OK, self.server.config)
        elif oauth is not None and path == "/oauth2/authorize":
            try:
                request = oauth.check_authorize(params)
            except OAuthError as exc:
                self._page(exc.status, _error_page(exc))
                return
            self._page(HTTPStatus.OK, sign_in_page(request, "/oauth2/authorize"))
        elif oauth is not None and path == "/logout":
            try:
                self._redirect(oauth.logout(params))
            except OAuthError as exc:
                self._page(exc.status, _error_page(exc))
        elif oauth is not None and path == "/.well-known/jwks.json":
            self._json(HTTPStatus.OK, oauth.jwks())
        elif path in ("/", REDIRECT_PATH):
            self._file(self.server.site_dir / "index.html")
        else:
            self._static(path)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if not self._host_ok() or not self._domain_served():
            return
        oauth = self.server.oauth
        path = urlsplit(self.path).path
        if path.startswith(ENDPOINT_PREFIX) and self.server.identity is not None:
            self._regional_endpoint(path)
            return
        form = self._form()
        if form is None:
            return
        if oauth is not None and path == "/oauth2/authorize":
            try:
                location = oauth.authorize(form)
            except OAuthError as exc:
                try:  # the form's own fields were wrong: show it again with what to fix
                    request = oauth.check_authorize(form)
                except OAuthError:
                    self._page(exc.status, _error_page(exc))
                    return
                self._page(exc.status, sign_in_page(request, "/oauth2/authorize", exc.description))
                return
            self._redirect(location)
        elif oauth is not None and path == "/oauth2/token":
            try:
                self._json(HTTPStatus.OK, oauth.token(form))
            except OAuthError as exc:
                self._json(exc.status, exc.body())
        elif oauth is not None and path == "/oauth2/revoke":
            if form.get("client_id") != oauth.issuer.client_id:
                self._json(HTTPStatus.BAD_REQUEST, OAuthError("invalid_client", "unknown client_id").body())
                return
            oauth.revoke(form.get("token", ""))
            self._json(HTTPStatus.OK, {})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"message": f"no POST endpoint {path}"})

    # ------------------------------------------------------------ identity in regions

    def _domain_served(self) -> bool:
        """For the managed-login domain's paths: True when a region's identity serves the domain (its
        name then goes in X-Served-Region); otherwise answer 503 and False."""
        identity = self.server.identity
        if identity is None or urlsplit(self.path).path not in DOMAIN_PATHS:
            self._identity_region = None
            return True
        self._identity_region = identity.domain_region()
        if self._identity_region is not None:
            return True
        self._json(
            HTTPStatus.SERVICE_UNAVAILABLE,
            {
                "error": "temporarily_unavailable",
                "error_description": "sign-in is down in every region (the control endpoint took the "
                'identity down: POST /identity/<region> {"state": "up"} brings it back)',
            },
        )
        return False

    def _regional_endpoint(self, path: str) -> None:
        """POST /cognito-idp/<region>/: that region's Cognito endpoint (local/identity.py)."""
        identity = self.server.identity
        assert identity is not None
        region = path[len(ENDPOINT_PREFIX) :].strip("/")
        self._identity_region = region if region in identity.regions else None
        try:
            length_text = self.headers.get("Content-Length") or "0"
            if not length_text.isdigit() or int(length_text) > MAX_FORM_BYTES:
                self.close_connection = True  # the body stays unread: this connection cannot go on
                raise CognitoError(413, "SerializationException", f"bodies up to {MAX_FORM_BYTES} bytes")
            body = self.rfile.read(int(length_text))
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != JSON_1_1:
                raise CognitoError(400, "SerializationException", f"send Content-Type: {JSON_1_1}")
            answer = identity.call(region, self.headers.get("X-Amz-Target"), body)
        except CognitoError as exc:
            self._send(exc.status, JSON_1_1, json.dumps(exc.body()).encode(), {"x-amzn-ErrorType": exc.kind})
            return
        self._send(HTTPStatus.OK, JSON_1_1, json.dumps(answer).encode())

    def _issuer_view(self, path: str) -> None:
        """GET /cognito-idp/<region>/<pool id>/.well-known/jwks.json: the keys that region publishes."""
        identity = self.server.identity
        assert identity is not None
        region, _, rest = path[len(ENDPOINT_PREFIX) :].partition("/")
        if rest != f"{identity.oauth.issuer.pool_id}/.well-known/jwks.json":
            self._json(HTTPStatus.NOT_FOUND, {"message": f"no identity document {path}"})
            return
        try:
            identity.check_up(region)
        except CognitoError as exc:
            self._json(exc.status, exc.body())
            return
        self._identity_region = region
        self._json(HTTPStatus.OK, identity.oauth.jwks())

    # ------------------------------------------------------------ checks and reading

    def _host_ok(self) -> bool:
        """Only requests addressed to this server by its own name (DNS rebinding defence); the
        ``localhost`` spelling is sent to ``127.0.0.1``, the origin the API regions allow."""
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.port
        if host == f"127.0.0.1:{port}":
            return True
        if host == f"localhost:{port}":
            self._redirect(f"{self.server.origin}{self.path}")
            return False
        self._json(
            HTTPStatus.MISDIRECTED_REQUEST,
            {"message": f"this server answers as {self.server.origin} only; open that address"},
        )
        return False

    def _form(self) -> dict[str, str] | None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            self.close_connection = True  # the body stays unread: this connection cannot go on
            self._json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"message": "send Content-Type: application/x-www-form-urlencoded"},
            )
            return None
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit() or int(length_text) > MAX_FORM_BYTES:
            self.close_connection = True
            self._json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": f"forms up to {MAX_FORM_BYTES} bytes"}
            )
            return None
        body = self.rfile.read(int(length_text)).decode("utf-8", "replace")
        return dict(parse_qsl(body, keep_blank_values=True))

    def _static(self, path: str) -> None:
        """A file of the site: never one outside it (``..``, links) nor a hidden one (a temporary copy)."""
        root = self.server.site_dir
        candidate = (root / unquote(path).lstrip("/")).resolve()
        inside = root in candidate.parents
        if not inside or any(part.startswith(".") for part in candidate.relative_to(root).parts):
            candidate = root / ".none"
        if not candidate.is_file():
            self._json(HTTPStatus.NOT_FOUND, {"message": f"no file {path}"})
            return
        self._file(candidate)

    # ------------------------------------------------------------ answers

    def _file(self, path: Path) -> None:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/yaml":
            content_type += "; charset=utf-8"
        self._send(HTTPStatus.OK, content_type, path.read_bytes())

    def _page(self, status: int, page: str) -> None:
        self._send(status, "text/html; charset=utf-8", page.encode("utf-8"))

    def _json(self, status: int, body: Any) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _redirect(self, location: str) -> None:
        self._send(HTTPStatus.FOUND, "text/plain; charset=utf-8", b"", {"Location": location})

    def _send(
        self, status: int, content_type: str, payload: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(payload)),
            # The client's files change with every edit locally; deployed, only index.html is not cached.
            "Cache-Control": "no-store",
            "Content-Security-Policy": getattr(self.server, "csp", content_security_policy([])),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
            **({"Connection": "close"} if self.close_connection else {}),
            **(extra or {}),
        }
        served = getattr(self, "_identity_region", None)
        if served:
            headers[SERVED_REGION_HEADER] = served
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the regions log the API calls; page loads would only add noise


def _error_page(exc: OAuthError) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title>'
        '<link rel="stylesheet" href="/app.css"></head><body><main class="narrow"><h1>Sign-in error</h1>'
        f'<p class="notice error" role="alert">{html.escape(exc.error)}: {html.escape(exc.description)}</p>'
        '<p><a href="/">Back to the users app</a></p></main></body></html>\n'
    )


def open_web(port: int, host: str = "127.0.0.1") -> WebServer:
    """The web client's socket (port 0 picks a free one); LocalAppError when the port is taken."""
    try:
        return WebServer(host, port)
    except OSError as exc:
        raise LocalAppError(
            f"web client: cannot listen on {host}:{port} ({exc.strerror}); "
            "choose another port with WEB_PORT or --web-port"
        ) from exc
