"""The local issuer's OAuth endpoints (local/oauth.py) and the web client's server (local/web.py), over
real HTTP: the code flow with PKCE as the web client runs it, and every way it refuses a bad request."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest

from local.auth import DEFAULT_TOKEN_LIFETIME_S, LocalIssuer
from local.identity import LocalIdentity
from local.oauth import CODE_LIFETIME_S, LocalOAuth, OAuthError, s256
from local.web import PROJECT_ROOT, WebServer, client_config, open_web, web_port_setting
from scripts.build_web import SWAGGER_UI_DIR, WEB_DIR, build_web
from tests.local_process import local_env, python_m_local

API_URLS = {"us-east-1": "http://127.0.0.1:9001", "us-east-2": "http://127.0.0.1:9002"}


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer.create()


@pytest.fixture
def served(issuer: LocalIssuer) -> Iterator[tuple[WebServer, LocalOAuth]]:
    build_web(require_reference=False)
    web = open_web(0)
    oauth = LocalOAuth(issuer, frozenset({web.redirect_uri}), frozenset({web.sign_out_uri}))
    web.serve(WEB_DIR, API_URLS, LocalIdentity(oauth, list(API_URLS), web.origin))
    try:
        yield web, oauth
    finally:
        web.close()


def call(
    web: WebServer, method: str, path: str, form: dict[str, str] | None = None, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{web.port}"}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return answer


def authorize_params(web: WebServer, oauth: LocalOAuth, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": oauth.issuer.client_id,
        "redirect_uri": web.redirect_uri,
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def sign_in(web: WebServer, oauth: LocalOAuth, verifier: str, *, admin: bool = False) -> str:
    """Post the sign-in form as a browser would; the code from the redirect."""
    form = authorize_params(web, oauth, s256(verifier), username="alice", email="alice@example.com")
    if admin:
        form["admin"] = "on"
    status, headers, _ = call(web, "POST", "/oauth2/authorize", form)
    assert status == 302, headers
    location = urlsplit(headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == web.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def test_rfc7636_appendix_b_example() -> None:
    # RFC 7636 Appendix B: the verifier and the S256 challenge it must give.
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_code_flow_with_pkce_gives_an_id_token_the_regions_accept(
    served: tuple[WebServer, LocalOAuth],
) -> None:
    web, oauth = served
    status, headers, page = call(
        web, "GET", "/oauth2/authorize?" + urlencode(authorize_params(web, oauth, "x" * 43))
    )
    assert status == 200 and b'name="username"' in page and b'name="admin"' in page
    assert "script-src 'self'" in headers["content-security-policy"] and b"<script" not in page

    verifier = secrets.token_urlsafe(48)
    code = sign_in(web, oauth, verifier, admin=True)
    form = {
        "grant_type": "authorization_code",
        "client_id": oauth.issuer.client_id,
        "code": code,
        "redirect_uri": web.redirect_uri,
        "code_verifier": verifier,
    }
    status, headers, body = call(web, "POST", "/oauth2/token", form)
    assert status == 200, body
    tokens = json.loads(body)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == DEFAULT_TOKEN_LIFETIME_S  # 15 minutes
    claims = oauth.issuer.verifier().claims(f"Bearer {tokens['id_token']}")
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.com"
    assert claims["cognito:groups"] == "admins"
    # The access token is not an ID token: the authorizer refuses it, as API Gateway's does.
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["token_use"] == "access"

    # The code is single-use.
    status, _, body = call(web, "POST", "/oauth2/token", form)
    assert status == 400 and json.loads(body)["error"] == "invalid_grant"

    # The refresh token gives a new ID token, and none once revoked.
    refresh = {"grant_type": "refresh_token", "client_id": oauth.issuer.client_id}
    refresh["refresh_token"] = tokens["refresh_token"]
    status, _, body = call(web, "POST", "/oauth2/token", refresh)
    assert status == 200 and "refresh_token" not in json.loads(body)
    assert (
        call(
            web,
            "POST",
            "/oauth2/revoke",
            {"token": tokens["refresh_token"], "client_id": oauth.issuer.client_id},
        )[0]
        == 200
    )
    status, _, body = call(web, "POST", "/oauth2/token", refresh)
    assert status == 400 and "revoked" in json.loads(body)["error_description"]

    # The JWKS holds the key that signed it.
    status, _, body = call(web, "GET", "/.well-known/jwks.json")
    key = jwt.PyJWKSet.from_dict(json.loads(body))[oauth.issuer.key_id]
    decoded = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience=oauth.issuer.client_id)
    assert decoded["sub"] == "alice"


def test_a_wrong_verifier_a_stolen_code_and_an_old_code_are_refused(
    served: tuple[WebServer, LocalOAuth],
) -> None:
    web, oauth = served
    verifier = secrets.token_urlsafe(48)
    base = {
        "grant_type": "authorization_code",
        "client_id": oauth.issuer.client_id,
        "redirect_uri": web.redirect_uri,
    }
    code = sign_in(web, oauth, verifier)
    with pytest.raises(OAuthError, match="PKCE"):
        oauth.token({**base, "code": code, "code_verifier": secrets.token_urlsafe(48)})
    with pytest.raises(OAuthError, match="used or expired"):  # a refused attempt used the code up
        oauth.token({**base, "code": code, "code_verifier": verifier})
    code = sign_in(web, oauth, verifier)
    with pytest.raises(OAuthError, match="redirect_uri"):
        oauth.token(
            {**base, "code": code, "code_verifier": verifier, "redirect_uri": "http://127.0.0.1:1/cb"}
        )
    code = sign_in(web, oauth, verifier)
    with pytest.raises(OAuthError, match="used or expired"):
        oauth.token({**base, "code": code, "code_verifier": verifier}, now=time.time() + CODE_LIFETIME_S + 1)
    with pytest.raises(OAuthError, match="client_id"):
        oauth.token({**base, "client_id": "other", "code": "x", "code_verifier": verifier})
    with pytest.raises(OAuthError, match="grant_type"):
        oauth.token({**base, "grant_type": "password"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "someone-else"}, "unknown client_id"),
        ({"redirect_uri": "https://evil.example/cb"}, "not a callback URL"),
        ({"response_type": "token"}, "no implicit flow"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge": "short"}, "base64url SHA-256"),
    ],
)
def test_a_bad_authorize_request_is_an_error_page_never_a_redirect(
    served: tuple[WebServer, LocalOAuth], change: dict[str, str], message: str
) -> None:
    web, oauth = served
    params = {**authorize_params(web, oauth, "x" * 43), **change}
    status, headers, page = call(web, "GET", "/oauth2/authorize?" + urlencode(params))
    assert status == 400 and "location" not in headers
    assert message in page.decode()


def test_a_bad_name_or_email_shows_the_form_again_saying_what_to_fix(
    served: tuple[WebServer, LocalOAuth],
) -> None:
    web, oauth = served
    form = authorize_params(web, oauth, "x" * 43, username="two words", email="a@example.com")
    status, _, page = call(web, "POST", "/oauth2/authorize", form)
    assert status == 400 and b'role="alert"' in page and b"no spaces" in page
    form.update(username="bob", email="not-an-address")
    status, _, page = call(web, "POST", "/oauth2/authorize", form)
    assert status == 400 and b"alice@example.com" in page


def test_logout_goes_to_a_registered_sign_out_url_only(served: tuple[WebServer, LocalOAuth]) -> None:
    web, oauth = served
    query = {"client_id": oauth.issuer.client_id, "logout_uri": web.sign_out_uri}
    status, headers, _ = call(web, "GET", "/logout?" + urlencode(query))
    assert status == 302 and headers["location"] == web.sign_out_uri
    status, headers, page = call(
        web, "GET", "/logout?" + urlencode({**query, "logout_uri": "https://evil.example/"})
    )
    assert status == 400 and "location" not in headers and b"not a sign-out URL" in page


def test_config_json_and_the_security_headers(served: tuple[WebServer, LocalOAuth]) -> None:
    web, oauth = served
    status, headers, body = call(web, "GET", "/config.json")
    assert status == 200
    assert json.loads(body) == {
        "apiUrls": API_URLS,
        "authDomain": web.origin,
        "clientId": oauth.issuer.client_id,
        "identityEndpoints": {
            "us-east-1": f"{web.origin}/cognito-idp/us-east-1/",
            "us-east-2": f"{web.origin}/cognito-idp/us-east-2/",
        },
        "regions": ["us-east-1", "us-east-2"],
        "redirectPath": "/callback",
    }
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "connect-src 'self' http://127.0.0.1:9001 http://127.0.0.1:9002" in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    for path in ("/", "/callback?code=x&state=y"):
        status, headers, page = call(web, "GET", path)
        assert status == 200 and headers["content-type"].startswith("text/html") and b"/js/main.js" in page
    status, headers, _ = call(web, "GET", "/js/auth.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    status, _, document = call(web, "GET", "/openapi.yaml")
    assert status == 200 and b"\nopenapi: " in document


def test_no_file_outside_the_site_and_no_other_host(served: tuple[WebServer, LocalOAuth]) -> None:
    web, _ = served
    for path in ("/../local/auth.py", "/%2e%2e/local/auth.py", "/js/%2e%2e/%2e%2e/Makefile", "/nothing.js"):
        assert call(web, "GET", path)[0] == 404, path
    hidden = WEB_DIR / f".probe-{secrets.token_hex(4)}.js"  # like build_web's temporary copies
    hidden.write_text("// not served")
    try:
        assert call(web, "GET", f"/{hidden.name}")[0] == 404
    finally:
        hidden.unlink()
    status, _, body = call(web, "GET", "/config.json", host="attacker.example")
    assert status == 421 and web.origin.encode() in body
    status, headers, _ = call(web, "GET", "/config.json", host=f"localhost:{web.port}")
    assert status == 302 and headers["location"] == f"{web.origin}/config.json"


def test_no_auth_config_has_no_sign_in() -> None:
    assert client_config(API_URLS, None, None)["clientId"] is None
    web = open_web(0)
    try:
        web.serve(WEB_DIR, API_URLS, None)
        assert json.loads(call(web, "GET", "/config.json")[2])["authDomain"] is None
        assert call(web, "GET", "/oauth2/authorize")[0] == 404
    finally:
        web.close()


def test_web_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_PORT", raising=False)
    assert web_port_setting() == 8080
    monkeypatch.setenv("WEB_PORT", "9090")
    assert web_port_setting() == 9090 and web_port_setting(0) == 0
    monkeypatch.setenv("WEB_PORT", "http")
    with pytest.raises(ValueError, match="WEB_PORT='http' is not a port number"):
        web_port_setting()


def test_web_completed_is_the_whole_site_with_nothing_inline_or_from_a_cdn() -> None:
    build_web()  # make install-dev ran npm ci --prefix web-vendor
    names = {p.relative_to(WEB_DIR).as_posix() for p in WEB_DIR.rglob("*") if p.is_file()}
    assert {
        "index.html",
        "api.html",
        "app.css",
        "openapi.yaml",
        "js/main.js",
        "js/auth.js",
        "js/api.js",
    } <= names
    assert {f"{SWAGGER_UI_DIR}/swagger-ui-bundle.js", f"{SWAGGER_UI_DIR}/swagger-ui.css"} <= names
    # Only what a browser loads: a deployment uploads the folder as it is.
    assert {Path(name).suffix for name in names} <= {".html", ".css", ".js", ".yaml"}, names
    assert (WEB_DIR / "openapi.yaml").read_bytes() == (PROJECT_ROOT / "handler" / "openapi.yaml").read_bytes()
    for page in ("index.html", "api.html"):
        text = (WEB_DIR / page).read_text()
        assert "<script>" not in text and "style=" not in text and "://" not in text  # nothing inline, no CDN


def test_make_dev_serves_the_client_and_both_regions_allow_its_origin(tmp_path: Path) -> None:
    """``python -m local`` as ``make dev`` runs it: the web client's line, its config.json naming the
    run's regions and issuer, and a CORS preflight from its origin approved by both regions."""
    env = local_env(tmp_path / "issuer.json")
    with python_m_local(["--ports", "web-a=0 web-b=0", "--no-sample-data"], env) as local:
        origin = local.wait_for(r"web client: (http://127\.0\.0\.1:\d+)/").group(1)
        local.keep_reading()
        with urllib.request.urlopen(f"{origin}/config.json", timeout=10) as response:  # noqa: S310 - loopback
            config = json.loads(response.read())
        issuer = LocalIssuer.load(tmp_path / "issuer.json")
        assert config["clientId"] == issuer.client_id and config["authDomain"] == origin
        assert config["regions"] == ["web-a", "web-b"]
        for base in config["apiUrls"].values():
            preflight = urllib.request.Request(  # noqa: S310 - loopback
                f"{base}/users/me",
                method="OPTIONS",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "PATCH",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            with urllib.request.urlopen(preflight, timeout=10) as response:  # noqa: S310 - loopback
                assert response.headers["Access-Control-Allow-Origin"] == origin
                assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
                assert "X-Served-Region" in response.headers["Access-Control-Expose-Headers"]
