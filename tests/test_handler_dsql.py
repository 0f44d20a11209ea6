"""The AWS path of handler.db: what reaches libpq when DSQL_ENDPOINT is set, without a DSQL cluster.

The token is really signed by the AWS connector (fake credentials are enough: signing is local); only
libpq's connect is intercepted, to read the parameters it would have used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from handler import app, db
from handler.config import ConfigError, load_settings
from local.events import LambdaContext, api_gateway_event

ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "DB_SSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSQL_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("DB_USER", "users_api")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_connect(cls: type, conninfo: str = "", **kwargs: Any) -> str:
        seen.update(kwargs, conninfo=conninfo)
        raise psycopg.OperationalError("intercepted before the network")

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(fake_connect))
    return seen


def test_connects_to_dsql_as_the_app_role_with_an_iam_token_and_tls_verify_full(
    aws_env: None, captured: dict[str, Any]
) -> None:
    with pytest.raises(psycopg.OperationalError, match="intercepted"):
        db._connect_dsql(load_settings())
    assert captured["host"] == ENDPOINT
    assert captured["user"] == "users_api"
    assert captured["dbname"] == "postgres"
    assert captured["sslmode"] == "verify-full"
    assert captured["autocommit"] is True
    assert captured["connect_timeout"] == 5
    ca_file = Path(captured["sslrootcert"])
    assert "Amazon Root CA 1" in ca_file.read_text()
    token = captured["password"]
    query = parse_qs(urlsplit("https://" + token).query)
    assert urlsplit("https://" + token).hostname == ENDPOINT
    assert query["Action"] == ["DbConnect"]  # the application role's action, not DbConnectAdmin
    assert "/us-east-1/dsql/aws4_request" in query["X-Amz-Credential"][0]


def test_a_dsql_connect_failure_is_a_503(aws_env: None, captured: dict[str, Any]) -> None:
    app.reset()
    try:
        event = api_gateway_event("GET", "/users")
        event["requestContext"]["authorizer"] = {"claims": {"sub": "s-1", "token_use": "id"}}
        raw = app.lambda_handler(event, LambdaContext())
    finally:
        app.reset()
    assert raw["statusCode"] == 503
    assert raw["headers"]["Retry-After"]
    assert json.loads(raw["body"])["error"]["code"] == "service_unavailable"
    assert captured["password"] not in raw["body"]


def test_missing_aws_credentials_are_a_503_not_a_crash(
    aws_env: None, captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    with pytest.raises(db.DatabaseUnavailable, match="IAM token"):
        db._connect_dsql(load_settings())
    assert "password" not in captured


def test_importing_the_handler_does_not_import_boto3_or_the_connector() -> None:
    code = "import sys, handler.app; print(json.dumps([m in sys.modules for m in ('boto3', 'botocore.session', 'aurora_dsql_psycopg')]))"
    result = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == [False, False, False]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DSQL_ENDPOINT"),
        ({"DSQL_ENDPOINT": "mydb.example.com"}, "not a DSQL hostname"),
        (
            {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "STATEMENT_TIMEOUT_MS": "soon"},
            "STATEMENT_TIMEOUT_MS",
        ),
        ({"DATABASE_URL": "postgresql://x@127.0.0.1/db", "MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
        (
            {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "CORS_ALLOW_ORIGINS": "https://a.example, *"},
            "'\\*'",
        ),
    ],
)
def test_configuration_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in (
        "DATABASE_URL",
        "DSQL_ENDPOINT",
        "STATEMENT_TIMEOUT_MS",
        "MAX_BODY_BYTES",
        "CORS_ALLOW_ORIGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DSQL_ENDPOINT", "DB_USER", "CORS_ALLOW_ORIGINS", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    settings = load_settings()
    assert settings.db_user == "users_api"
    assert settings.cors_allow_origins == ()
    assert settings.connection_max_age_s == 3300
    assert settings.max_body_bytes == 16 * 1024
    assert settings.region == "local"
