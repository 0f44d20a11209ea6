"""Local authentication behaves like production, over HTTP: the local issuer's ID tokens, the local
server checking them as API Gateway's Cognito authorizer does, the claims reaching the handler where
API Gateway puts them; and the ownership rules seen by real clients of both regions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from psycopg.conninfo import make_conninfo

from local.auth import (
    UNAUTHORIZED_BODY,
    InvalidToken,
    IssuerFileError,
    LocalIssuer,
    authorize,
    container_env,
    unauthorized_response,
)
from local.events import api_gateway_event
from local.launcher import LocalApp, start_local_app
from tests.test_local import Reply, request

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EAST_1, EAST_2 = "us-east-1", "us-east-2"


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer.create()


@pytest.fixture(scope="module")
def regions(module_migrated_database_url: str, issuer: LocalIssuer) -> Iterator[LocalApp]:
    with start_local_app(
        make_conninfo(module_migrated_database_url, user="users_api"),
        [(EAST_1, 0), (EAST_2, 0)],
        env=container_env(issuer),
    ) as app:
        yield app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def person(issuer: LocalIssuer, tag: str, *, admin: bool = False) -> tuple[dict[str, str], str]:
    """Headers for a new person with a verified email, and that email."""
    email = f"{tag}-{uuid.uuid4().hex[:8]}@example.com"
    return bearer(issuer.token(f"sub-{email}", email=email, admin=admin)), email


def assert_unauthorized(reply: Reply) -> None:
    """The deployed API's UNAUTHORIZED gateway response (components/openapi.py), before the function."""
    assert reply.status == 401
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.body == {"error": {"code": "unauthorized", "message": "Unauthorized"}}
    assert reply.body == json.loads(UNAUTHORIZED_BODY)


# ---------------------------------------------------------------- the authorizer


def test_requests_without_a_valid_id_token_are_401_before_the_function(
    regions: LocalApp, issuer: LocalIssuer
) -> None:
    url = regions.urls[EAST_1]
    now = time.time()
    stranger = LocalIssuer.create()
    forged = jwt.encode(  # right claims and key id, signed with another key
        jwt.decode(issuer.token("mallory", admin=True), options={"verify_signature": False}),
        stranger.private_key,
        algorithm="RS256",
        headers={"kid": issuer.key_id},
    )
    unsigned = jwt.encode(
        jwt.decode(issuer.token("mallory", admin=True), options={"verify_signature": False}),
        None,
        algorithm="none",
    )
    bad_tokens = {
        "expired": issuer.token("alice", admin=True, now=now - 7200),
        "forged signature": forged,
        "alg none": unsigned,
        "another pool": stranger.token("alice", admin=True),
        "wrong audience": issuer.token("alice", admin=True, aud="another-client"),
        "wrong issuer": issuer.token("alice", admin=True, iss="https://cognito-idp.local.invalid/other"),
        "access token": issuer.token("alice", admin=True, token_use="access"),
        "not yet valid": issuer.token("alice", admin=True, now=now + 3600, nbf=int(now + 3600)),
        "garbage": "not.a.jwt",
    }
    assert_unauthorized(request(url, "GET", "/users"))
    assert_unauthorized(request(url, "GET", "/users", headers={"Authorization": "Bearer "}))
    for name, token in bad_tokens.items():
        for path in ("/users", "/users/me"):
            reply = request(url, "GET", path, headers=bearer(token))
            assert reply.status == 401, (name, path, reply.body)
            assert_unauthorized(reply)
    good = issuer.token("alice", admin=True)
    assert request(url, "GET", "/users", headers=bearer(good)).status == 200
    assert request(url, "GET", "/users", headers={"Authorization": good}).status == 200  # the bare token


def test_a_refusal_carries_the_cors_headers_of_the_deployed_gateway_response() -> None:
    event = api_gateway_event("GET", "/users", headers=[("Origin", "https://b.example")])
    one = unauthorized_response(event, {"CORS_ALLOW_ORIGINS": "https://a.example"})
    assert one["headers"]["Access-Control-Allow-Origin"] == "https://a.example"  # named literally
    several = unauthorized_response(event, {"CORS_ALLOW_ORIGINS": "https://a.example, https://b.example"})
    assert several["headers"]["Access-Control-Allow-Origin"] == "https://b.example"  # echoed
    assert not any(k.startswith("Access-Control") for k in unauthorized_response(event, {})["headers"])


def test_health_and_cors_preflights_stay_open(regions: LocalApp) -> None:
    url = regions.urls[EAST_2]
    assert request(url, "GET", "/health").status == 200
    assert request(url, "OPTIONS", "/users").status == 204


def test_a_token_of_a_previous_run_is_refused(regions: LocalApp) -> None:
    previous_run = LocalIssuer.create()
    assert_unauthorized(
        request(regions.urls[EAST_1], "GET", "/users", headers=bearer(previous_run.token("a")))
    )


# ---------------------------------------------------------------- the rules, seen by HTTP clients


def test_an_owner_manages_their_own_profile_from_both_regions(regions: LocalApp, issuer: LocalIssuer) -> None:
    east_1, east_2 = regions.urls[EAST_1], regions.urls[EAST_2]
    ann, email = person(issuer, "ann")
    created = request(east_1, "POST", "/users/me", {"name": "Ann", "email": email.upper()}, headers=ann)
    assert created.status == 201, created.body
    location = created.headers["location"]
    assert request(east_2, "GET", location, headers=ann).body == created.body
    assert request(east_2, "GET", "/users/me", headers=ann).body == created.body
    assert request(east_1, "GET", "/users", headers=ann).body["items"] == [created.body]
    patched = request(east_2, "PATCH", "/users/me", {"name": "Ann B"}, headers=ann)
    assert (patched.status, patched.body["name"]) == (200, "Ann B")
    assert request(east_1, "DELETE", location, headers=ann).status == 204
    assert request(east_2, "GET", "/users/me", headers=ann).status == 404


def test_another_owners_profile_is_404_over_http(regions: LocalApp, issuer: LocalIssuer) -> None:
    url = regions.urls[EAST_1]
    ann, ann_email = person(issuer, "ann")
    bob, _ = person(issuer, "bob")
    anns = request(url, "POST", "/users/me", {"name": "Ann", "email": ann_email}, headers=ann).body
    for reply in (
        request(url, "GET", f"/users/{anns['id']}", headers=bob),
        request(url, "PATCH", f"/users/{anns['id']}", {"name": "Bob was here"}, headers=bob),
        request(url, "DELETE", f"/users/{anns['id']}", headers=bob),
    ):
        assert reply.status == 404
        assert reply.body["error"]["message"] == "no user with this id"
    assert request(url, "GET", "/users", headers=bob).body["items"] == []
    assert request(url, "GET", "/users/me", headers=ann).body == anns
    # Nor can Bob take Ann's address.
    reply = request(url, "POST", "/users/me", {"name": "Bob", "email": ann_email}, headers=bob)
    assert (reply.status, reply.body["error"]["code"]) == (403, "forbidden")


def test_admins_list_and_manage_everyone_over_http(regions: LocalApp, issuer: LocalIssuer) -> None:
    east_1, east_2 = regions.urls[EAST_1], regions.urls[EAST_2]
    admin, _ = person(issuer, "root", admin=True)
    ann, ann_email = person(issuer, "ann")
    anns = request(east_1, "POST", "/users/me", {"name": "Ann", "email": ann_email}, headers=ann).body
    listed, cursor = [], None
    while True:
        page = request(
            east_2, "GET", "/users?limit=50" + (f"&cursor={cursor}" if cursor else ""), headers=admin
        )
        listed += page.body["items"]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert anns["id"] in {user["id"] for user in listed}
    changed = request(east_2, "PATCH", f"/users/{anns['id']}", {"name": "Ann (admin)"}, headers=admin)
    assert changed.body["name"] == "Ann (admin)"
    assert request(east_1, "DELETE", f"/users/{anns['id']}", headers=admin).status == 204
    assert request(east_1, "GET", "/users/me", headers=ann).status == 404


@pytest.mark.parametrize(
    "groups",
    [("x,admins",), (",admins",), ("admins,",), (" admins",), ("Admins",), ("x", "admins")],
)
def test_no_group_name_makes_an_admin_over_http(
    regions: LocalApp, issuer: LocalIssuer, groups: tuple[str, ...]
) -> None:
    """The claim API Gateway passes joins names with a comma: "x,admins" is one group or two, so it
    grants nothing; nor does a name that is "admins" only after trimming or case folding."""
    url = regions.urls[EAST_1]
    ann, ann_email = person(issuer, "ann")
    assert request(url, "POST", "/users/me", {"name": "Ann", "email": ann_email}, headers=ann).status == 201
    email = f"forger-{uuid.uuid4().hex[:8]}@example.com"
    forger = bearer(issuer.token(f"sub-{email}", email=email, groups=groups))
    event = api_gateway_event("GET", "/users", headers=list(forger.items()))
    assert authorize(event, issuer.verifier())
    assert event["requestContext"]["authorizer"]["claims"]["cognito:groups"] == ",".join(groups)
    listed = request(url, "GET", "/users?limit=200", headers=forger)
    assert (listed.status, listed.body["items"]) == (200, [])
    admin, _ = person(issuer, "root", admin=True)
    everyone = request(url, "GET", "/users?limit=200", headers=admin).body["items"]
    assert ann_email in {user["email"] for user in everyone}


def test_lookalike_emails_over_http(regions: LocalApp, issuer: LocalIssuer) -> None:
    url = regions.urls[EAST_2]
    admin, _ = person(issuer, "root", admin=True)
    tag = uuid.uuid4().hex[:8]
    composed = f"m\u00e4x-{tag}@example.com"
    assert request(url, "POST", "/users", {"name": "Max", "email": composed}, headers=admin).status == 201
    for lookalike in (f"ma\u0308x-{tag}@example.com", f"M\u00c4X-{tag}@example.com"):
        reply = request(url, "POST", "/users", {"name": "Max 2", "email": lookalike}, headers=admin)
        assert reply.status == 409, (lookalike, reply.body)
    for invisible in (f"m\u00e4x\u200b-{tag}@example.com", f"m\u00e4\u00adx-{tag}@example.com"):
        reply = request(url, "POST", "/users", {"name": "Max 3", "email": invisible}, headers=admin)
        assert reply.status == 400
        assert "invisible" in reply.body["error"]["fields"]["email"]


# ---------------------------------------------------------------- the issuer, its file and local.token


def test_claims_reach_the_event_as_api_gateway_writes_them(issuer: LocalIssuer) -> None:
    expired = issuer.token("alice", admin=True, now=1680629979)  # April 2023
    with pytest.raises(InvalidToken, match="ExpiredSignatureError"):
        issuer.verifier().claims(f"Bearer {expired}")
    fresh = issuer.token("alice", email="alice@example.com", groups=("editors",), admin=True)
    event = api_gateway_event("GET", "/users/me", headers=[("Authorization", f"Bearer {fresh}")])
    assert authorize(event, issuer.verifier())
    claims = event["requestContext"]["authorizer"]["claims"]
    assert all(isinstance(value, str) for value in claims.values())
    assert claims["cognito:groups"] == "admins,editors"
    assert claims["email_verified"] == "true"
    assert claims["token_use"] == "id"
    assert claims["aud"] == issuer.client_id and claims["iss"] == issuer.issuer
    assert claims["auth_time"].isdigit()
    # Java's Date text, as API Gateway writes exp and iat: "Tue Apr 04 18:39:39 UTC 2023".
    assert time.strptime(claims["exp"], "%a %b %d %H:%M:%S UTC %Y")


def test_the_issuer_file_is_private_replaced_atomically_and_removed_by_its_run(tmp_path: Path) -> None:
    path = tmp_path / "issuer.json"
    first, second = LocalIssuer.create(), LocalIssuer.create()
    first.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalIssuer.load(path).key_id == first.key_id
    second.save(path)  # a later run replaces it
    first.remove_file(path)  # the first run's exit must not delete the second run's key
    assert LocalIssuer.load(path).key_id == second.key_id
    second.remove_file(path)
    assert not path.exists()
    second.save(path)
    path.chmod(0o644)
    with pytest.raises(IssuerFileError, match="not a private file"):
        LocalIssuer.load(path)
    with pytest.raises(IssuerFileError, match="start the local app first"):
        LocalIssuer.load(tmp_path / "missing.json")


def test_python_m_local_token_prints_a_token_the_running_app_accepts(
    regions: LocalApp, issuer: LocalIssuer, tmp_path: Path
) -> None:
    path = tmp_path / "issuer.json"
    issuer.save(path)
    env = {**os.environ, "LOCAL_ISSUER_FILE": str(path)}

    def local_token(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "local.token", *args]
        return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)

    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    made = local_token("--sub", f"sub-{email}", "--email", email)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    url = regions.urls[EAST_1]
    created = request(url, "POST", "/users/me", {"name": "Cli", "email": email}, headers=bearer(token))
    assert created.status == 201, created.body
    assert request(url, "GET", "/users", headers=bearer(token)).body["items"] == [created.body]
    admin = local_token("--sub", "cli-admin", "--admin").stdout.strip()
    assert created.body in request(url, "GET", "/users?limit=200", headers=bearer(admin)).body["items"]
    grouped = local_token("--sub", "cli-grouped", "--group", "admins").stdout.strip()
    assert created.body in request(url, "GET", "/users?limit=200", headers=bearer(grouped)).body["items"]
    comma = local_token("--sub", "cli-comma", "--group", "x,admins", "--group", "editors")
    assert comma.returncode == 0, comma.stderr
    claims = issuer.verifier().claims(comma.stdout.strip())
    assert claims["cognito:groups"] == "x,admins,editors"
    assert request(url, "GET", "/users?limit=200", headers=bearer(comma.stdout.strip())).body["items"] == []
    spaced = local_token("--sub", "cli-spaced", "--group", " admins")
    assert spaced.returncode == 2
    assert "cannot be in a Cognito group name" in spaced.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "local.token", "--sub", "x", "--issuer-file", str(tmp_path / "none.json")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "start the local app first" in missing.stderr
