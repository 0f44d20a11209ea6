"""Who may do what, in-process: API Gateway v1 events carrying the claims its Cognito authorizer passes
(every value a string, cognito:groups comma-separated), against a real PostgreSQL.

The rules (handler/auth.py, handler/users.py, docs/handler.md): a non-admin reads, changes and deletes
only their own profile (one per sub), another owner's row is a 404; admins list and manage everyone;
a non-admin's email is their verified token email; emails are unique in canonical form (NFKC, lower
case); invisible and bidirectional characters are refused.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from handler import app, auth, validation
from handler.config import Settings
from tests.test_handler import ADMIN_CLAIMS, Call, assert_error, invoke, owner_claims

ANN = owner_claims("sub-ann", "ann@example.com")
COGNITO = Settings(
    region="us-test-1",
    dsql_endpoint=None,
    db_user="users_api",
    database_url=None,
    cors_allow_origins=(),
    statement_timeout_ms=1000,
    connect_timeout_s=1,
    request_timeout_ms=2000,
    connection_max_age_s=60,
    max_body_bytes=1024,
    ssl_root_cert="",
    auth_mode="cognito",
    auth_client_ids=(),
)
BOB = owner_claims("sub-bob", "bob@example.com")


@pytest.fixture
def admin_url(migrated_database_url: str) -> str:
    return migrated_database_url


@pytest.fixture
def api(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    monkeypatch.setenv("DATABASE_URL", make_conninfo(migrated_database_url, user="users_api"))
    monkeypatch.setenv("AWS_REGION", "us-test-1")
    for name in ("DSQL_ENDPOINT", "AUTH_MODE", "AUTH_CLIENT_IDS", "CORS_ALLOW_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    app.reset()
    yield invoke
    app.reset()


def owner_of(admin_url: str, user_id: str) -> str | None:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT owner_sub FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return row[0]


def make_profile(api: Call, claims: dict[str, str], name: str = "Someone") -> dict[str, Any]:
    reply = api("POST", "/users/me", {"name": name, "email": claims["email"]}, claims=claims)
    assert reply.status == 201, reply.body
    return reply.body


# ---------------------------------------------------------------- no identity, no service


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("POST", "/users", {"name": "A", "email": "a@example.com"}),
        ("GET", f"/users/{uuid.uuid4()}", None),
        ("PATCH", f"/users/{uuid.uuid4()}", {"name": "A"}),
        ("DELETE", f"/users/{uuid.uuid4()}", None),
        ("GET", "/users/me", None),
        ("POST", "/users/me", {"name": "A", "email": "a@example.com"}),
        ("PATCH", "/users/me", {"name": "A"}),
        ("DELETE", "/users/me", None),
    ],
)
def test_without_claims_every_users_route_is_401_never_anonymous(
    api: Call, admin_url: str, method: str, path: str, body: Any
) -> None:
    """AUTH_MODE=cognito (the default): no claims means the authorizer did not run, a routing bug."""
    reply = api(method, path, body, claims=None)
    assert_error(reply, 401, "unauthorized")
    assert "Cognito authorizer" in reply.body["error"]["message"]
    with psycopg.connect(admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({}, "no verified identity"),
        ({"token_use": "id"}, "no usable sub"),
        ({"sub": "  ", "token_use": "id"}, "no usable sub"),
        ({"sub": "x" * 256, "token_use": "id"}, "no usable sub"),
        ({"sub": "s-1", "token_use": "access"}, "not token_use 'access'"),
        ({"sub": "s-1"}, "not token_use None"),
    ],
)
def test_claims_that_are_not_an_id_tokens_are_401(api: Call, claims: dict[str, str], message: str) -> None:
    reply = api("GET", "/users/me", claims=claims)
    assert_error(reply, 401, "unauthorized")
    assert message in reply.body["error"]["message"]


def test_health_needs_no_identity(api: Call) -> None:
    assert api("GET", "/health", claims=None).status == 200


def test_auth_client_ids_refuse_tokens_of_other_app_clients(
    api: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_CLIENT_IDS", "webclient, smokeclient")
    app.reset()
    assert api("GET", "/users/me", claims={**ANN, "aud": "webclient"}).status == 404  # no profile yet
    assert api("GET", "/users/me", claims={**ANN, "aud": "smokeclient"}).status == 404
    reply = api("GET", "/users/me", claims={**ANN, "aud": "someotherclient"})
    assert_error(reply, 401, "unauthorized")
    assert_error(api("GET", "/users/me", claims=ANN), 401, "unauthorized")  # no aud at all


def test_auth_mode_none_is_todays_open_api_with_an_anonymous_admin(
    api: Call, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "none")
    app.reset()
    created = api("POST", "/users", {"name": "Open", "email": "open@example.com"}, claims=None)
    assert created.status == 201
    assert owner_of(admin_url, created.body["id"]) is None  # belongs to no one
    assert api("GET", "/users", claims=None).body["items"] == [created.body]
    assert api("PATCH", f"/users/{created.body['id']}", {"name": "Changed"}, claims=None).status == 200
    reply = api("GET", "/users/me", claims=None)
    assert_error(reply, 401, "unauthorized")
    assert "AUTH_MODE=none" in reply.body["error"]["message"]
    # Claims, even forged into the event, change nothing: there is no authorizer to trust.
    assert api("GET", "/users", claims=ANN).body["items"][0]["name"] == "Changed"
    assert api("DELETE", f"/users/{created.body['id']}", claims=None).status == 204


def test_an_unknown_auth_mode_is_a_configuration_error(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "off")
    app.reset()
    reply = api("GET", "/users")
    assert reply.status == 500  # logged with the variable's name; never served open
    from handler.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"AUTH_MODE='off'.*cognito.*none"):
        load_settings()


# ---------------------------------------------------------------- owners


def test_an_owner_creates_reads_changes_and_deletes_their_own_profile(api: Call, admin_url: str) -> None:
    created = api("POST", "/users/me", {"name": "Ann", "email": "Ann@Example.com"}, claims=ANN)
    assert created.status == 201, created.body
    user = created.body
    assert user["email"] == "ann@example.com"
    assert created.headers["Location"] == f"/users/{user['id']}"
    assert owner_of(admin_url, user["id"]) == "sub-ann"
    assert api("GET", "/users/me", claims=ANN).body == user
    assert api("GET", f"/users/{user['id']}", claims=ANN).body == user
    assert api("GET", "/users", claims=ANN).body == {"items": [user], "next_cursor": None}
    patched = api("PATCH", f"/users/{user['id']}", {"name": "Ann B"}, claims=ANN)
    assert (patched.status, patched.body["name"]) == (200, "Ann B")
    patched = api("PATCH", "/users/me", {"name": "Ann C"}, claims=ANN)
    assert (patched.status, patched.body["name"]) == (200, "Ann C")
    assert api("DELETE", "/users/me", claims=ANN).status == 204
    assert_error(api("GET", "/users/me", claims=ANN), 404, "not_found")
    again = make_profile(api, ANN)
    assert api("DELETE", f"/users/{again['id']}", claims=ANN).status == 204


def test_post_users_by_a_non_admin_creates_their_own_profile_and_only_one(api: Call, admin_url: str) -> None:
    created = api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}, claims=ANN)
    assert created.status == 201
    assert owner_of(admin_url, created.body["id"]) == "sub-ann"
    assert_error(
        api("POST", "/users/me", {"name": "Ann 2", "email": "ann@example.com"}, claims=ANN), 409, "conflict"
    )
    moved = {**ANN, "email": "ann@new.example.com"}  # even with another verified address: one profile
    second = api("POST", "/users/me", {"name": "Ann 2", "email": "ann@new.example.com"}, claims=moved)
    assert_error(second, 409, "conflict")
    assert "already have a profile" in second.body["error"]["message"]


def test_another_owners_profile_is_404_like_one_that_does_not_exist(api: Call) -> None:
    bobs = make_profile(api, BOB, "Bob")
    missing = str(uuid.uuid4())
    for user_id in (bobs["id"], missing):
        for reply in (
            api("GET", f"/users/{user_id}", claims=ANN),
            api("PATCH", f"/users/{user_id}", {"name": "Hijacked"}, claims=ANN),
            api("DELETE", f"/users/{user_id}", claims=ANN),
        ):
            assert_error(reply, 404, "not_found")
            assert reply.body["error"]["message"] == "no user with this id"
    assert api("GET", "/users", claims=ANN).body["items"] == []
    assert api("GET", "/users/me", claims=BOB).body == bobs  # untouched


def test_a_non_admins_email_must_be_their_verified_token_email(api: Call) -> None:
    reply = api("POST", "/users/me", {"name": "Ann", "email": "bob@example.com"}, claims=ANN)
    assert_error(reply, 403, "forbidden", "email")
    assert reply.body["error"]["fields"]["email"] == "must be ann@example.com"
    # The same address spelled differently is the same address.
    assert api("POST", "/users/me", {"name": "Ann", "email": " ANN@example.COM "}, claims=ANN).status == 201
    assert_error(
        api("PATCH", "/users/me", {"email": "bob@example.com"}, claims=ANN), 403, "forbidden", "email"
    )
    # After the user pool's email changed (and was verified again), the profile follows.
    moved = {**ANN, "email": "ann@new.example.com"}
    reply = api("PATCH", "/users/me", {"email": "ann@new.example.com"}, claims=moved)
    assert (reply.status, reply.body["email"]) == (200, "ann@new.example.com")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "sub-unverified", "token_use": "id", "email": "u@example.com", "email_verified": "false"},
        {"sub": "sub-unverified", "token_use": "id", "email": "u@example.com"},
        {"sub": "sub-unverified", "token_use": "id"},
    ],
)
def test_without_a_verified_email_a_non_admin_cannot_claim_an_address(
    api: Call, claims: dict[str, str]
) -> None:
    reply = api("POST", "/users/me", {"name": "U", "email": "u@example.com"}, claims=claims)
    assert_error(reply, 403, "forbidden", "email")
    assert "no verified email" in reply.body["error"]["message"]


@pytest.mark.parametrize(
    ("groups", "is_admin"),
    [
        ("admins", True),
        ("super-admins", False),
        ("admins-readonly,editors", False),
        ("Admins", False),
        ("", False),
        # Exact names: no trimming, no case folding.
        (" admins", False),
        ("admins ", False),
        ("ADMINS", False),
        # A comma joins the names, and a name may hold a comma: the one group "x,admins" and the two
        # groups x and admins reach the function as the same string, so neither reading grants admin.
        ("x,admins", False),
        (",admins", False),
        ("admins,", False),
        ("editors,admins", False),
        ("editors, admins", False),
    ],
)
def test_admins_are_exactly_the_members_of_the_admins_group(api: Call, groups: str, is_admin: bool) -> None:
    make_profile(api, BOB)
    claims = {**owner_claims("sub-x", "x@example.com"), "cognito:groups": groups}
    listed = api("GET", "/users", claims=claims).body["items"]
    assert (len(listed) == 1) is is_admin


@pytest.mark.parametrize(
    ("groups", "is_admin"),
    [(["admins"], True), (["editors", "admins"], True), (["x,admins"], False), ([" admins"], False)],
)
def test_the_tokens_own_group_array_is_read_name_by_name(groups: list[str], is_admin: bool) -> None:
    claims: dict[str, Any] = {**owner_claims("sub-x", "x@example.com"), "cognito:groups": groups}
    event = {"requestContext": {"authorizer": {"claims": claims}}}
    assert auth.caller_from_event(event, COGNITO).is_admin is is_admin


def test_an_ambiguous_group_claim_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    claims = {**owner_claims("sub-x", "x@example.com"), "cognito:groups": "x,admins"}
    with caplog.at_level(logging.WARNING):
        caller = auth.caller_from_event({"requestContext": {"authorizer": {"claims": claims}}}, COGNITO)
    assert caller.is_admin is False
    warning = next(record for record in caplog.records if "ambiguous" in record.getMessage())
    assert (warning.levelname, warning.groups, warning.sub) == ("WARNING", "x,admins", "sub-x")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("verified", "counts"),
    [
        ("true", True),  # API Gateway's claims
        (True, True),  # the token's own JSON boolean
        ("True", False),
        ("TRUE", False),
        (" true", False),
        (["true"], False),
        ("1", False),
        (1, False),
        ("false", False),
        (False, False),
        (None, False),
    ],
)
def test_email_verified_counts_only_in_the_forms_cognito_and_api_gateway_write(
    verified: Any, counts: bool
) -> None:
    claims: dict[str, Any] = {"sub": "sub-v", "token_use": "id", "email": "v@example.com"}
    if verified is not None:
        claims["email_verified"] = verified
    caller = auth.caller_from_event({"requestContext": {"authorizer": {"claims": claims}}}, COGNITO)
    assert caller.email == ("v@example.com" if counts else None)


# ---------------------------------------------------------------- admins


def test_admins_list_and_manage_everyone_and_create_unowned_profiles(api: Call, admin_url: str) -> None:
    anns = make_profile(api, ANN, "Ann")
    bobs = make_profile(api, BOB, "Bob")
    unowned = api("POST", "/users", {"name": "Imported", "email": "imported@example.com"})
    assert unowned.status == 201
    assert owner_of(admin_url, unowned.body["id"]) is None
    # Nobody but an admin sees a row without an owner.
    assert api("GET", f"/users/{unowned.body['id']}", claims=ANN).status == 404
    listed = {user["id"] for user in api("GET", "/users").body["items"]}
    assert listed == {anns["id"], bobs["id"], unowned.body["id"]}
    changed = api("PATCH", f"/users/{anns['id']}", {"name": "Ann (by admin)", "email": "any@example.com"})
    assert (changed.status, changed.body["email"]) == (200, "any@example.com")
    assert owner_of(admin_url, anns["id"]) == "sub-ann"  # still Ann's
    assert api("GET", "/users/me", claims=ANN).body["name"] == "Ann (by admin)"
    assert api("DELETE", f"/users/{bobs['id']}").status == 204
    assert_error(api("GET", "/users/me", claims=BOB), 404, "not_found")


def test_an_admins_own_profile_is_at_users_me(api: Call, admin_url: str) -> None:
    mine = api("POST", "/users/me", {"name": "Root", "email": "root@example.com"})
    assert mine.status == 201
    assert owner_of(admin_url, mine.body["id"]) == ADMIN_CLAIMS["sub"]
    assert api("GET", "/users/me").body == mine.body


def test_admins_page_through_everyone_and_owners_through_their_own(api: Call) -> None:
    for i in range(5):
        make_profile(api, owner_claims(f"sub-{i}", f"p{i}@example.com"))
    seen, cursor = [], None
    while True:
        reply = api("GET", "/users", query="limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += reply.body["items"]
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    own = api("GET", "/users", query="limit=1", claims=owner_claims("sub-3", "p3@example.com")).body
    assert [u["email"] for u in own["items"]] == ["p3@example.com"]
    assert own["next_cursor"] is None


# ---------------------------------------------------------------- lookalike emails and names


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ma\u0308x@example.com", "m\u00e4x@example.com"),  # decomposed vs composed
        ("m\u00e4x@example.com", "M\u00c4X@example.com"),  # case
        ("ann@example.com", "\uff41\uff4e\uff4e@example.com"),  # fullwidth letters (NFKC)
        ("ﬁne@example.com", "fine@example.com"),  # ligature (NFKC)
        ("ann@example.com", "  ANN@EXAMPLE.COM "),  # case and surrounding spaces
    ],
)
def test_lookalike_emails_are_one_address_the_second_is_a_409(api: Call, first: str, second: str) -> None:
    created = api("POST", "/users", {"name": "First", "email": first})
    assert created.status == 201, created.body
    assert created.body["email"] == validation.canonical_email(first)
    assert_error(api("POST", "/users", {"name": "Second", "email": second}), 409, "conflict", "email")


@pytest.mark.parametrize(
    "email",
    [
        "ann\u200b@example.com",  # zero-width space
        "an\u00adn@example.com",  # soft hyphen
        "\u202eann@example.com",  # right-to-left override
        "ann\u2066@example.com",  # left-to-right isolate
        "ann\u200d@example.com",  # zero-width joiner
        "ann\ufeff@example.com",  # byte order mark
        "ann\u2060@example.com",  # word joiner
        "ann\U000e0041@example.com",  # tag letter A
        "ann\ufe0f@example.com",  # variation selector
        "ann\u3164@example.com",  # Hangul filler
    ],
)
def test_invisible_and_bidi_characters_are_refused_naming_the_rule(api: Call, email: str) -> None:
    assert api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}).status == 201
    reply = api("POST", "/users", {"name": "Other", "email": email})
    assert_error(reply, 400, "validation_failed", "email")
    rule = reply.body["error"]["fields"]["email"]
    assert rule.startswith("must not contain control, invisible or bidirectional characters (found U+")
    reply = api("POST", "/users", {"name": email.split("@")[0], "email": "other@example.com"})
    assert_error(reply, 400, "validation_failed", "name")


def test_emails_whose_canonical_form_is_not_an_address_are_refused(api: Call) -> None:
    for email in ("a\u00a8b@example.com", "a\uff20b@example.com", "a\ufe6bb@example.com"):
        reply = api("POST", "/users", {"name": "A", "email": email})
        assert_error(reply, 400, "validation_failed", "email")


def test_a_255_character_email_is_refused_and_254_accepted(api: Call) -> None:
    email = "x" * 64 + "@" + "d" * 61 + "." + "e" * 61 + "." + "f" * 61 + ".com"
    assert_error(
        api("POST", "/users", {"name": "A", "email": "y" + email}), 400, "validation_failed", "email"
    )
    assert api("POST", "/users", {"name": "A", "email": email}).status == 201


def test_canonical_email_is_a_fixed_point_and_never_makes_an_invisible_character() -> None:
    for code in range(0x30000):
        char = chr(code)
        if validation.invisible_character(char) or 0xD800 <= code <= 0xDFFF:
            continue
        canonical = validation.canonical_email(char)
        assert validation.canonical_email(canonical) == canonical, hex(code)
        assert validation.invisible_character(canonical) is None, hex(code)


def test_every_format_character_of_this_pythons_unicode_is_refused() -> None:
    """New Unicode versions add format (Cf) characters: this fails until INVISIBLE_RANGES has them."""
    missing = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp")
        and validation.invisible_character(chr(code)) is None
    ]
    assert missing == [], (
        f"add to handler/validation.py INVISIBLE_RANGES (Unicode {unicodedata.unidata_version})"
    )


# ---------------------------------------------------------------- the database side of the rules


def test_ownership_is_enforced_by_each_statement_not_a_check_before_it(api: Call) -> None:
    """Called below the routes (as a routing bug would), a non-admin caller still reaches only its rows."""
    from handler import users
    from handler.auth import Caller

    bobs = make_profile(api, BOB)
    ann = Caller(sub="sub-ann", email="ann@example.com", is_admin=False)
    conn = app.database().connection()
    assert users.get_user(conn, ann, bobs["id"]) is None
    assert users.update_user(conn, ann, bobs["id"], "Hijacked", None) is None
    assert users.delete_user(conn, ann, bobs["id"]) is False
    assert users.list_users(conn, ann, 50, None) == ([], False)
    assert api("GET", "/users/me", claims=BOB).body == bobs
    owner_statements = [
        users.GET_OWNED_SQL,
        users.FIRST_PAGE_OWNED_SQL,
        users.NEXT_PAGE_OWNED_SQL,
        users.UPDATE_OWNED_SQL,
        users.DELETE_OWNED_SQL,
        users.GET_MINE_SQL,
        users.UPDATE_MINE_SQL,
        users.DELETE_MINE_SQL,
    ]
    assert all("owner_sub = %s" in sql for sql in owner_statements)
    assert "owner_sub" in users.CREATE_OWNED_SQL


def test_row_level_security_is_not_dsql_so_the_rules_live_in_the_statements(tmp_path: Path) -> None:
    """AWS's DSQL linter refuses RLS (docs/handler.md gives the documentation): if it ever accepts it,
    this fails and the choice should be revisited."""
    lint = shutil.which("dsql-lint") or str(Path(sys.executable).parent / "dsql-lint")
    sql = tmp_path / "rls.sql"
    sql.write_text(
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n"
        "CREATE POLICY owner_only ON users USING (owner_sub = current_setting('app.sub'));\n"
    )
    result = subprocess.run([lint, str(sql)], capture_output=True, text=True, check=False)
    report = result.stdout + result.stderr
    assert result.returncode == 1
    assert "ROW LEVEL SECURITY is not supported in DSQL" in report
    assert "CREATE POLICY (Row-Level Security) is not supported in DSQL" in report
