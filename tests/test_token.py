"""python -m tools.token: the loopback + PKCE flow against a local authorization server that checks
what Cognito's authorize and token endpoints check, and SRP against moto's cognito-idp."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import secrets
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from moto import mock_aws

from components.identity import web_callback_urls
from tools import token as tool
from tools.token import TokenError, browser_sign_in, pkce_pair, sign_in_from_outputs, srp_sign_in

CLIENT_ID = "web-client-id"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeAuthorizationServer:
    """Cognito's /oauth2/authorize and /oauth2/token as far as a public PKCE client sees them: exact
    redirect URIs, S256 only, single-use codes bound to client, redirect and challenge."""

    def __init__(self, allowed_redirects: list[str]) -> None:
        self.allowed_redirects = allowed_redirects
        self.codes: dict[str, dict[str, str]] = {}
        self.state_override: str | None = None
        self.deny: str | None = None
        self.token_requests: list[dict[str, str]] = []

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                if url.path != "/oauth2/authorize":
                    return self._json(404, {"error": "not_found"})
                if q.get("redirect_uri") not in server.allowed_redirects:
                    return self._json(400, {"error": "redirect_mismatch"})
                if (
                    q.get("client_id") != CLIENT_ID
                    or q.get("response_type") != "code"
                    or q.get("code_challenge_method") != "S256"
                    or not q.get("code_challenge")
                    or "openid" not in q.get("scope", "").split()
                ):
                    return self._json(400, {"error": "invalid_request"})
                if server.deny:
                    params = {"error": server.deny, "error_description": "User denied", "state": q["state"]}
                else:
                    code = secrets.token_urlsafe(16)
                    server.codes[code] = {
                        "challenge": q["code_challenge"],
                        "redirect_uri": q["redirect_uri"],
                        "client_id": q["client_id"],
                    }
                    params = {"code": code, "state": server.state_override or q["state"]}
                self.send_response(302)
                self.send_header("Location", f"{q['redirect_uri']}?{urllib.parse.urlencode(params)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                server.token_requests.append(form)
                if self.path != "/oauth2/token" or form.get("grant_type") != "authorization_code":
                    return self._json(400, {"error": "unsupported_grant_type"})
                issued = server.codes.pop(form.get("code", ""), None)  # single use
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                )
                if (
                    issued is None
                    or issued["client_id"] != form.get("client_id")
                    or issued["redirect_uri"] != form.get("redirect_uri")
                    or issued["challenge"] != challenge
                ):
                    return self._json(400, {"error": "invalid_grant"})
                return self._json(
                    200,
                    {
                        "id_token": "id." + challenge,
                        "access_token": "access",
                        "token_type": "Bearer",
                        "expires_in": 900,
                    },
                )

        return Handler


@pytest.fixture
def authorization_server() -> Iterator[tuple[str, FakeAuthorizationServer, int]]:
    port = _free_port()
    fake = FakeAuthorizationServer(web_callback_urls("https://app.example.com", (port,)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake, port
    finally:
        server.shutdown()
        server.server_close()


def _browser(seen: list[str]) -> Any:
    """A browser: loads the address in the background and follows the redirect to the loopback.
    ``localhost`` is sent to 127.0.0.1, where the tool listens (resolvers may answer ::1 first)."""

    def open_url(url: str) -> None:
        seen.append(url)

        def load() -> None:
            with contextlib.suppress(Exception):
                opener = urllib.request.build_opener(_LocalhostToLoopback())
                opener.open(url, timeout=10).read()

        threading.Thread(target=load, daemon=True).start()

    return open_url


class _LocalhostToLoopback(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        return super().redirect_request(
            req, fp, code, msg, headers, newurl.replace("http://localhost:", "http://127.0.0.1:")
        )


def test_pkce_pair_is_an_s256_pair_of_the_allowed_length() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128 and set(verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    assert (
        challenge
        == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    assert pkce_pair()[0] != verifier


def test_the_browser_flow_gets_a_token_with_the_verifier_of_its_challenge(authorization_server) -> None:
    base, fake, port = authorization_server
    seen: list[str] = []
    answer = browser_sign_in(
        base, CLIENT_ID, ports=[port], open_browser=_browser(seen), timeout=20, say=lambda _: None
    )
    [url] = seen
    query = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}
    assert query["redirect_uri"] == f"http://localhost:{port}/callback"
    assert query["code_challenge_method"] == "S256"
    assert answer["id_token"] == f"id.{query['code_challenge']}"  # the server matched verifier to challenge
    [exchange] = fake.token_requests
    assert exchange["code_verifier"] not in url  # the verifier travels only in the back-channel POST
    assert "client_secret" not in exchange


def test_a_redirect_with_another_state_is_refused(authorization_server) -> None:
    base, fake, port = authorization_server
    fake.state_override = "forged"
    with pytest.raises(TokenError, match="state does not match"):
        browser_sign_in(
            base, CLIENT_ID, ports=[port], open_browser=_browser([]), timeout=20, say=lambda _: None
        )
    assert fake.token_requests == []  # the code was never exchanged


def test_a_denied_sign_in_is_reported_with_its_error(authorization_server) -> None:
    base, fake, port = authorization_server
    fake.deny = "access_denied"
    with pytest.raises(TokenError, match="access_denied: User denied"):
        browser_sign_in(
            base, CLIENT_ID, ports=[port], open_browser=_browser([]), timeout=20, say=lambda _: None
        )


def test_no_callback_times_out_with_advice(authorization_server) -> None:
    base, _, port = authorization_server
    with pytest.raises(TokenError, match="no sign-in came back within 0 s"):
        browser_sign_in(
            base, CLIENT_ID, ports=[port], open_browser=lambda _: None, timeout=0.2, say=lambda _: None
        )


def test_busy_ports_are_skipped_and_all_busy_is_explained() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with tool.loopback_listener([taken, 0]) as (port, _):
            assert port != taken
        with (
            pytest.raises(TokenError, match=f"ports {taken} are all in use.*--srp"),
            tool.loopback_listener([taken]),
        ):
            pass


def test_outputs_without_a_pool_or_web_client_say_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TokenError, match="authMode cognito"):
        sign_in_from_outputs({"invokeUrls": {}})
    assert tool.main(["--from-stack"], outputs={"userPoolId": "us-east-1_X", "userPoolClientId": "c"}) == 2
    assert "webClient true" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--from-stack", "--srp"])  # no --username


def public_client_pool(cognito: Any) -> tuple[str, str]:
    """A pool (moto) whose users sign in by e-mail, and a public SRP client of it: their ids."""
    pool = cognito.create_user_pool(PoolName="users", UsernameAttributes=["email"])["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool,
        ClientName="public",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return pool, client


@mock_aws
def test_srp_signs_in_a_real_user_of_the_pool() -> None:
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool, client = public_client_pool(cognito)
    cognito.admin_create_user(UserPoolId=pool, Username="ann@example.com", MessageAction="SUPPRESS")
    with pytest.raises(TokenError, match="temporary password"):
        srp_sign_in(pool, client, "ann@example.com", "Temporary-Passw0rd!", cognito)
    cognito.admin_set_user_password(
        UserPoolId=pool, Username="ann@example.com", Password="A-Str0ng-Passw0rd!", Permanent=True
    )
    token = srp_sign_in(pool, client, "ann@example.com", "A-Str0ng-Passw0rd!", cognito)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["token_use"] == "id" and claims["aud"] == client
    assert claims["iss"].endswith(pool)


@mock_aws
def test_srp_main_prints_only_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool, client = public_client_pool(cognito)
    cognito.admin_create_user(UserPoolId=pool, Username="bo@example.com", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool, Username="bo@example.com", Password="Bo-Passw0rd!!", Permanent=True
    )
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Bo-Passw0rd!!\n"))
    outputs = {"userPoolId": pool, "userPoolClientId": client}
    code = tool.main(
        ["--from-stack", "--srp", "--username", "bo@example.com", "--password-stdin"], outputs=outputs
    )
    out = capsys.readouterr().out
    assert code == 0 and len(out.strip().split(".")) == 3 and out.count("\n") == 1


def test_srp_falls_back_to_the_replica_region_when_the_primary_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With authReplica the stack exports each region's pool ARN; sign-in tries the pool's region, then
    the replica (same pool ID and client) when Cognito in the primary region cannot be reached."""
    pool = "us-east-1_AbCdEf123"
    outputs = {
        "userPoolId": pool,
        "userPoolClientId": "client",
        "userPoolArns": {
            region: f"arn:aws:cognito-idp:{region}:123456789012:userpool/{pool}"
            for region in ("us-east-1", "us-east-2")
        },
    }
    tried: list[str | None] = []

    def fake_srp(*args: object, region: str | None = None, **kwargs: object) -> str:
        tried.append(region)
        if region == "us-east-1":
            raise tool.CognitoUnreachable("could not reach Cognito: connect timeout")
        return "header.claims.signature"

    monkeypatch.setattr(tool, "srp_sign_in", fake_srp)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    argv = ["--from-stack", "--srp", "--username", "ann@example.com", "--password-stdin"]
    assert tool.main(argv, outputs=outputs) == 0
    captured = capsys.readouterr()
    assert tried == ["us-east-1", "us-east-2"]
    assert captured.out == "header.claims.signature\n"
    assert "trying us-east-2" in captured.err

    # --region goes straight to one region; a region without a replica is refused with the fix.
    tried.clear()
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    assert tool.main([*argv, "--region", "us-east-2"], outputs=outputs) == 0
    assert tried == ["us-east-2"]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    assert tool.main([*argv, "--region", "eu-west-1"], outputs=outputs) == 2
    assert "authReplica true" in capsys.readouterr().err

    # Without replicas, an unreachable primary is the error itself.
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    single = {k: v for k, v in outputs.items() if k != "userPoolArns"}
    assert tool.main(argv, outputs=single) == 2
    assert "could not reach Cognito" in capsys.readouterr().err
