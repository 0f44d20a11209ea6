"""Each local region's Cognito (local/identity.py), over real HTTP on the web client's server and the
control endpoint: the managed-login domain fails over to the replica when the primary's identity or the
primary region is down, each region's regional endpoint renews tokens with Cognito's own protocol
(GetTokensFromRefreshToken) and refuses everything else the way Cognito does, and each region publishes
the same keys, so a token of either region passes both regions' authorizers.

The whole story against ``python -m local`` (the drill's identity steps) is in tests/test_local_regions.py."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from psycopg.conninfo import make_conninfo

from local.auth import LocalIssuer, TokenVerifier
from local.control import ControlServer, open_control
from local.identity import LocalIdentity, region_view_env
from local.launcher import start_local_app
from local.oauth import LocalOAuth, s256
from local.web import WebServer, open_web
from scripts.build_web import WEB_DIR, build_web

PRIMARY, REPLICA = "us-east-1", "us-east-2"
API_URLS = {PRIMARY: "http://127.0.0.1:9001", REPLICA: "http://127.0.0.1:9002"}
TARGET = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken"
VERIFIER = "v" * 64


@dataclass
class Served:
    web: WebServer
    identity: LocalIdentity
    healthy: dict[str, bool]

    @property
    def client_id(self) -> str:
        return self.identity.oauth.issuer.client_id


@pytest.fixture
def served() -> Iterator[Served]:
    build_web(require_reference=False)
    web = open_web(0)
    oauth = LocalOAuth(LocalIssuer.create(), frozenset({web.redirect_uri}), frozenset({web.sign_out_uri}))
    healthy = {PRIMARY: True, REPLICA: True}
    identity = LocalIdentity(oauth, [PRIMARY, REPLICA], web.origin, healthy=lambda region: healthy[region])
    web.serve(WEB_DIR, API_URLS, identity)
    try:
        yield Served(web, identity, healthy)
    finally:
        web.close()


def call(
    web: WebServer, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{web.port}", **(headers or {})})
    response = conn.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return answer


def form(web: WebServer, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return call(
        web, "POST", path, urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )


def sign_in(served: Served) -> tuple[dict[str, str], str]:
    """A sign-in through the domain as the web client does it: the tokens and the region that answered."""
    web = served.web
    request = {
        "response_type": "code",
        "client_id": served.client_id,
        "redirect_uri": web.redirect_uri,
        "state": "s",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    status, headers, _ = form(
        web, "/oauth2/authorize", {**request, "username": "alice", "email": "a@example.com"}
    )
    assert status == 302, headers
    code = parse_qs(urlsplit(headers["location"]).query)["code"][0]
    exchange = {
        "grant_type": "authorization_code",
        "client_id": served.client_id,
        "code": code,
        "redirect_uri": web.redirect_uri,
        "code_verifier": VERIFIER,
    }
    status, headers, body = form(web, "/oauth2/token", exchange)
    assert status == 200, body
    return json.loads(body), headers["x-served-region"]


def cognito(
    served: Served, region: str, payload: object, target: str = TARGET, **headers: str
) -> tuple[int, dict[str, str], dict[str, str]]:
    """One call of Cognito's JSON protocol at ``region``'s regional endpoint."""
    path = urlsplit(served.identity.endpoint(region)).path
    status, answer_headers, body = call(
        served.web,
        "POST",
        path,
        json.dumps(payload).encode(),
        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, **headers},
    )
    return status, answer_headers, json.loads(body)


# ----------------------------------------------------------------- the domain's failover


def test_the_domain_is_served_by_the_primary_and_fails_over_to_the_replica(served: Served) -> None:
    tokens, region = sign_in(served)
    assert region == PRIMARY
    served.identity.set_state(PRIMARY, "down")
    tokens_in_replica, region = sign_in(served)
    assert region == REPLICA
    # One issuer, one audience, the same keys: both tokens pass the authorizer of either region's view.
    verifier = served.identity.oauth.issuer.verifier()
    for token in (tokens["id_token"], tokens_in_replica["id_token"]):
        assert verifier.claims(f"Bearer {token}")["cognito:username"] == "alice"
    served.identity.set_state(PRIMARY, "up")
    assert sign_in(served)[1] == PRIMARY


def test_the_domain_follows_the_primary_regions_health_like_its_route53_failover(served: Served) -> None:
    served.healthy[PRIMARY] = False  # the primary region's API is down: its health check fails
    assert sign_in(served)[1] == REPLICA
    served.healthy[REPLICA] = False  # a failover record answers with the secondary whatever its health
    assert served.identity.domain_region() == REPLICA
    served.healthy[PRIMARY] = True
    assert sign_in(served)[1] == PRIMARY


def test_with_every_identity_down_sign_in_is_refused_with_what_to_do(served: Served) -> None:
    for region in (PRIMARY, REPLICA):
        served.identity.set_state(region, "down")
    status, _, body = call(served.web, "GET", "/.well-known/jwks.json")
    assert status == 503
    answer = json.loads(body)
    assert (
        answer["error"] == "temporarily_unavailable"
        and "POST /identity/<region>" in answer["error_description"]
    )
    # The client's own files are not behind the identity: the page still loads.
    assert call(served.web, "GET", "/")[0] == 200


# ----------------------------------------------------------------- the regional endpoints


def test_the_replicas_endpoint_renews_tokens_while_the_primarys_is_down(served: Served) -> None:
    tokens, _ = sign_in(served)
    served.identity.set_state(PRIMARY, "down")
    request = {"ClientId": served.client_id, "RefreshToken": tokens["refresh_token"]}
    status, headers, body = cognito(served, PRIMARY, request)
    assert (
        status == 503
        and body["__type"] == "InternalErrorException"
        and headers["x-amzn-errortype"] == body["__type"]
    )
    status, headers, body = cognito(served, REPLICA, request)
    assert status == 200 and headers["content-type"] == "application/x-amz-json-1.1"
    result = body["AuthenticationResult"]
    assert (
        set(result) == {"IdToken", "AccessToken", "ExpiresIn", "TokenType"}
        and result["TokenType"] == "Bearer"
    )
    claims = served.identity.oauth.issuer.verifier().claims(result["IdToken"])
    assert claims["cognito:username"] == "alice" and claims["token_use"] == "id"


@pytest.mark.parametrize(
    ("payload", "target", "content_type", "status", "kind"),
    [
        (
            {"ClientId": "x", "RefreshToken": "y"},
            "AWSCognitoIdentityProviderService.InitiateAuth",
            None,
            400,
            "UnknownOperationException",
        ),
        ({"ClientId": "nobody", "RefreshToken": "y"}, TARGET, None, 400, "ResourceNotFoundException"),
        (
            {"ClientId": "{client}", "RefreshToken": "not-one-of-ours"},
            TARGET,
            None,
            400,
            "NotAuthorizedException",
        ),
        ({"ClientId": "{client}"}, TARGET, None, 400, "InvalidParameterException"),
        (["a list"], TARGET, None, 400, "SerializationException"),
        (
            {"ClientId": "{client}", "RefreshToken": "y"},
            TARGET,
            "application/json",
            400,
            "SerializationException",
        ),
    ],
)
def test_the_regional_endpoint_refuses_like_cognito(
    served: Served, payload: object, target: str, content_type: str | None, status: int, kind: str
) -> None:
    if isinstance(payload, dict):
        payload = {key: value.replace("{client}", served.client_id) for key, value in payload.items()}
    headers = {"Content-Type": content_type} if content_type else {}
    answer_status, answer_headers, body = cognito(served, REPLICA, payload, target, **headers)
    assert (answer_status, body["__type"]) == (status, kind)
    assert body["message"] and answer_headers["x-amzn-errortype"] == kind


def test_an_unknown_region_and_a_revoked_token_are_refused(served: Served) -> None:
    status, _, body = cognito(served, "eu-west-9", {})
    assert (status, body["__type"]) == (404, "ResourceNotFoundException")
    tokens, _ = sign_in(served)
    served.identity.oauth.revoke(tokens["refresh_token"])  # revoked in the pool: revoked in every region
    request = {"ClientId": served.client_id, "RefreshToken": tokens["refresh_token"]}
    assert cognito(served, REPLICA, request)[2]["__type"] == "NotAuthorizedException"


def test_every_region_publishes_the_same_keys_and_a_region_down_publishes_none(served: Served) -> None:
    pool = served.identity.oauth.issuer.pool_id
    views = {}
    for region in (PRIMARY, REPLICA):
        status, headers, body = call(served.web, "GET", f"/cognito-idp/{region}/{pool}/.well-known/jwks.json")
        assert status == 200 and headers["x-served-region"] == region
        views[region] = json.loads(body)
    assert views[PRIMARY] == views[REPLICA]
    tokens, _ = sign_in(served)
    key = jwt.PyJWKSet.from_dict(views[REPLICA])[served.identity.oauth.issuer.key_id]
    assert (
        jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience=served.client_id)["sub"]
        == "alice"
    )
    served.identity.set_state(REPLICA, "down")
    assert call(served.web, "GET", f"/cognito-idp/{REPLICA}/{pool}/.well-known/jwks.json")[0] == 503
    assert call(served.web, "GET", f"/cognito-idp/{PRIMARY}/other-pool/.well-known/jwks.json")[0] == 404


def test_each_regions_containers_get_their_regions_view_of_the_issuer() -> None:
    issuer = LocalIssuer.create()
    view = region_view_env(issuer)
    verifier = TokenVerifier.from_env(view)
    assert verifier is not None and view["AUTH_MODE"] == "cognito"
    assert verifier.claims(f"Bearer {issuer.token('bob')}")["sub"] == "bob"
    assert region_view_env(None) == {"AUTH_MODE": "none"}


def test_a_bad_state_or_region_is_refused() -> None:
    oauth = LocalOAuth(LocalIssuer.create(), frozenset(), frozenset())
    identity = LocalIdentity(oauth, [PRIMARY, REPLICA], "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="up or down"):
        identity.set_state(PRIMARY, "sideways")
    with pytest.raises(KeyError):
        identity.set_state("eu-west-9", "down")
    with pytest.raises(ValueError, match="at least one region"):
        LocalIdentity(oauth, [], "http://127.0.0.1:1")


# ----------------------------------------------------------------- the control endpoint


@pytest.fixture
def control(migrated_database_url: str) -> Iterator[tuple[ControlServer, LocalIdentity]]:
    issuer = LocalIssuer.create()
    with start_local_app(
        make_conninfo(migrated_database_url, user="users_api"),
        [(PRIMARY, 0), (REPLICA, 0)],
        region_env={PRIMARY: region_view_env(issuer), REPLICA: region_view_env(issuer)},
        log=lambda _: None,
    ) as app:
        oauth = LocalOAuth(issuer, frozenset({"http://127.0.0.1:1/callback"}), frozenset())
        identity = LocalIdentity(oauth, list(app.regions), "http://127.0.0.1:1", healthy=app.is_up)
        server = open_control(0)
        server.serve(app, identity=identity)
        try:
            yield server, identity
        finally:
            server.close()


def control_call(
    server: ControlServer, method: str, path: str, payload: object = None
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rpartition(":")[2]), timeout=30)
    body = None if payload is None else json.dumps(payload).encode()
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.status, json.loads(response.read())
    conn.close()
    return answer


def test_the_control_endpoint_takes_an_identity_down_and_the_region_down_moves_the_domain(
    control: tuple[ControlServer, LocalIdentity],
) -> None:
    server, identity = control
    status, body = control_call(server, "GET", "/identity")
    assert status == 200 and body["regions"] == {PRIMARY: "up", REPLICA: "up"}
    assert body["domain"] == {"url": "http://127.0.0.1:1", "region": PRIMARY}
    assert body["endpoints"] == {r: f"http://127.0.0.1:1/cognito-idp/{r}/" for r in (PRIMARY, REPLICA)}
    status, body = control_call(server, "POST", f"/identity/{PRIMARY}", {"state": "down"})
    assert status == 200 and body["regions"][PRIMARY] == "down" and body["domain"]["region"] == REPLICA  # type: ignore[index]
    control_call(server, "POST", f"/identity/{PRIMARY}", {"state": "up"})
    # The primary region itself down: its health check fails, the domain moves with it.
    assert control_call(server, "POST", f"/regions/{PRIMARY}", {"state": "down"})[0] == 200
    assert identity.domain_region() == REPLICA
    assert control_call(server, "POST", f"/regions/{PRIMARY}", {"state": "up"})[0] == 200
    assert identity.domain_region() == PRIMARY
    assert control_call(server, "POST", "/identity/eu-west-9", {"state": "down"}) == (
        404,
        {"message": f"no region 'eu-west-9'; the regions are {PRIMARY}, {REPLICA}"},
    )
    assert control_call(server, "POST", f"/identity/{PRIMARY}", {"state": "sideways"})[0] == 400
    assert control_call(server, "POST", "/elsewhere/x", {"state": "down"})[0] == 404


def test_a_run_without_authentication_has_no_identity_to_take_down(
    control: tuple[ControlServer, LocalIdentity],
) -> None:
    server, _ = control
    bare = open_control(0)
    bare.serve(server.app)  # as python -m local --no-auth serves it
    try:
        assert control_call(bare, "GET", "/identity") == (
            404,
            {"message": "this run has no identity (started with --no-auth)"},
        )
        assert control_call(bare, "POST", f"/identity/{PRIMARY}", {"state": "down"}) == (
            404,
            {"message": "this run has no identity (started with --no-auth)"},
        )
    finally:
        bare.close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/cognito-idp/us-east-2/", "text/plain"), ("/oauth2/token", "application/json")],
)
def test_a_refused_body_never_becomes_the_next_request_on_the_connection(
    served: Served, path: str, content_type: str
) -> None:
    """Refused for its content type: the body is read (or the connection closed), so a keep-alive
    client's next request is answered as itself, not after a stray body."""
    conn = http.client.HTTPConnection("127.0.0.1", served.web.port, timeout=10)
    host = {"Host": f"127.0.0.1:{served.web.port}"}
    conn.request(
        "POST", path, body=b"GET /evil HTTP/1.1\r\n\r\n" * 4, headers={**host, "Content-Type": content_type}
    )
    first = conn.getresponse()
    first.read()
    assert first.status in (400, 415)
    conn.request("GET", "/config.json", headers=host)
    second = conn.getresponse()
    assert second.status == 200 and json.loads(second.read())["clientId"] == served.client_id
    conn.close()
