"""The DSQL IAM token handler/db.py signs with awscrt: the same token botocore makes for the same inputs.

botocore's ``generate_db_connect_auth_token`` is the reference (what AWS's connector calls). It runs in a
fresh interpreter with ``BOTO_DISABLE_CRT=true``, so its own pure-Python SigV4 signer makes the token
(with awscrt installed, botocore would sign through awscrt too and the comparison would prove less), at
the same fixed time and with the same credentials.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from handler import db
from handler.config import load_settings

ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
WHEN = datetime.datetime(2026, 12, 6, 23, 59, 58, tzinfo=datetime.UTC)
KEY = "ASIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2luX2VjE+/=example"  # characters that must be percent-encoded in the query

CASES = [
    # (host, region, user, session token, lifetime)
    (ENDPOINT, "us-east-1", "users_api", SESSION, 60),
    (ENDPOINT, "us-east-1", "admin", SESSION, 900),
    ("zyxwvutsrqponmlkjihgfedcba.dsql.eu-west-1.on.aws", "eu-west-1", "users_api", None, 60),
]

_BOTOCORE = """
import datetime, json, sys
import botocore.auth, botocore.compat, botocore.session
assert not botocore.compat.HAS_CRT, "botocore must sign in Python here"
when = datetime.datetime.fromisoformat(sys.argv[1])
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: when.replace(tzinfo=None) if remove_tzinfo else when
tokens = []
for host, region, user, session_token, lifetime in json.loads(sys.argv[2]):
    session = botocore.session.Session()
    session.set_credentials(sys.argv[3], sys.argv[4], session_token)
    client = session.create_client("dsql", region_name=region)
    sign = client.generate_db_connect_admin_auth_token if user == "admin" else client.generate_db_connect_auth_token
    tokens.append(sign(host, region, lifetime))
print(json.dumps(tokens))
"""


def botocore_tokens(tmp_path: Path) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "BOTO_DISABLE_CRT": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", _BOTOCORE, WHEN.isoformat(), json.dumps(CASES), KEY, SECRET],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def parts(token: str) -> tuple[str, str, dict[str, list[str]]]:
    url = urlsplit("https://" + token)
    return str(url.hostname), url.path, parse_qs(url.query, strict_parsing=True)


def test_the_token_is_botocores_for_the_same_credentials_time_and_inputs(tmp_path: Path) -> None:
    for case, reference in zip(CASES, botocore_tokens(tmp_path), strict=True):
        host, region, user, session_token, lifetime = case
        token = db.db_auth_token(
            host, region, user, db.Credentials(KEY, SECRET, session_token), now=WHEN, expires_in_s=lifetime
        )
        # The same host, path and query (parameter order is not part of SigV4's canonical form): the
        # signature is equal, so DSQL accepts one exactly when it accepts the other.
        assert parts(token) == parts(reference), case
        query = parts(token)[2]
        assert query["Action"] == ["DbConnectAdmin" if user == "admin" else "DbConnect"]
        assert query["X-Amz-Credential"] == [f"{KEY}/20261206/{region}/dsql/aws4_request"]
        assert query["X-Amz-Expires"] == [str(lifetime)]
        assert query.get("X-Amz-Security-Token") == ([session_token] if session_token else None)


def test_another_time_or_key_gives_another_signature() -> None:
    credentials = db.Credentials(KEY, SECRET, SESSION)
    first = parts(db.db_auth_token(ENDPOINT, "us-east-1", "users_api", credentials, now=WHEN))[2]
    later = db.db_auth_token(
        ENDPOINT, "us-east-1", "users_api", credentials, now=WHEN + datetime.timedelta(seconds=1)
    )
    other = db.db_auth_token(
        ENDPOINT, "us-east-1", "users_api", credentials._replace(secret_access_key="x"), now=WHEN
    )
    assert parts(later)[2]["X-Amz-Signature"] != first["X-Amz-Signature"]
    assert parts(other)[2]["X-Amz-Signature"] != first["X-Amz-Signature"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "AWS_PROFILE", "DB_SSLROOTCERT", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSQL_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("DB_USER", "users_api")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_connect(cls: type, conninfo: str = "", **kwargs: Any) -> str:
        seen.append(kwargs)
        raise psycopg.OperationalError("intercepted before the network")

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(fake_connect))
    monkeypatch.setattr(db, "_addresses", lambda host: ["192.0.2.1"])
    return seen


def test_each_connect_signs_with_the_credentials_in_the_environment_now(
    aws_env: None, passwords: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(psycopg.OperationalError):
        db._connect_dsql(load_settings())
    # Credentials replaced while the process lives (a refreshed role session): the next connect uses them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAOTHERKEYEXAMPLE1")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-newer-session")
    with pytest.raises(psycopg.OperationalError):
        db._connect_dsql(load_settings())
    first, second = (parts(attempt["password"])[2] for attempt in passwords)
    assert first["X-Amz-Credential"][0].startswith(KEY + "/")
    assert first["X-Amz-Security-Token"] == [SESSION]
    assert second["X-Amz-Credential"][0].startswith("ASIAOTHERKEYEXAMPLE1/")
    assert second["X-Amz-Security-Token"] == ["a-newer-session"]
    assert {attempt["hostaddr"] for attempt in passwords} == {"192.0.2.1"}
    assert all(attempt["sslmode"] == "verify-full" and "region" not in attempt for attempt in passwords)


def test_without_environment_credentials_the_aws_connector_signs(
    aws_env: None, passwords: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aurora_dsql_psycopg

    called: list[dict[str, Any]] = []

    def connector(**kwargs: Any) -> None:
        called.append(kwargs)
        raise psycopg.OperationalError("connector intercepted")

    monkeypatch.setattr(aurora_dsql_psycopg, "connect", connector)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(psycopg.OperationalError, match="connector intercepted"):
        db._connect_dsql(load_settings())
    assert called and called[0]["region"] == "us-east-1" and called[0]["user"] == "users_api"
    assert "password" not in called[0]


def test_the_environment_path_never_imports_boto3_or_botocore(tmp_path: Path) -> None:
    code = (
        "import json, sys, psycopg\n"
        "from handler import db\n"
        "from handler.config import load_settings\n"
        "db._addresses = lambda host: ['192.0.2.1']\n"
        "def stop(cls, conninfo='', **kw): raise psycopg.OperationalError('stop')\n"
        "psycopg.Connection.connect = classmethod(stop)\n"
        "try:\n    db._connect_dsql(load_settings())\nexcept psycopg.OperationalError:\n    pass\n"
        "print(json.dumps([m for m in ('boto3', 'botocore', 'aurora_dsql_psycopg') if m in sys.modules]))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE_URL"))},
        "DSQL_ENDPOINT": ENDPOINT,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": SESSION,
    }
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
