"""Stack configuration: Pulumi.yaml declares exactly what components/config.py reads, and bad values fail
with a message that names the key and the fix."""

from __future__ import annotations

import json

import pytest
import yaml

from components.config import KEYS, REQUIRED, ConfigError, StackConfig, parse_config
from tests.pulumi_harness import ROOT, stack_config

PROJECT_FILE = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
SIMPLE_TYPES = {"string", "integer", "boolean", "array"}  # what Pulumi's project schema accepts

KEY_EAST_1 = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_EAST_2 = "arn:aws:kms:us-east-2:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab"
KEY_WEST_2 = "arn:aws:kms:us-west-2:123456789012:key/9012abcd-12ab-34cd-56ef-1234567890ab"

PROD = {key: value if isinstance(value, str) else json.dumps(value) for key, value in stack_config().items()}


def test_every_declared_key_is_read_and_every_read_key_is_declared() -> None:
    assert set(PROJECT_FILE["config"]) == set(KEYS)


def test_declarations_fit_pulumis_project_schema() -> None:
    for key, declaration in PROJECT_FILE["config"].items():
        assert declaration["type"] in SIMPLE_TYPES, key
        assert declaration.get("description"), f"{key} has no description"
        if declaration["type"] == "array":
            assert declaration["items"]["type"] in SIMPLE_TYPES, key
        assert ("default" in declaration) != (key in REQUIRED), f"{key}: required keys have no default"


def test_declared_defaults_equal_the_code_defaults() -> None:
    """A stack that sets only the required keys behaves the same whether Pulumi or the code fills in."""
    required = {key: PROD[key] for key in REQUIRED}
    defaults = {
        key: d["default"] if isinstance(d["default"], str) else json.dumps(d["default"])
        for key, d in PROJECT_FILE["config"].items()
        if "default" in d
    }
    assert parse_config(required) == parse_config({**required, **defaults})


@pytest.mark.parametrize("stack_file", sorted(ROOT.glob("Pulumi.*.yaml")), ids=lambda path: path.name)
def test_every_stack_file_parses_and_disables_the_default_providers(stack_file) -> None:
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config = parse_config(
        {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in stack_config(stack).items()
        }
    )
    assert config.witness_region not in config.app_regions
    document = yaml.safe_load(stack_file.read_text())["config"]
    assert document["pulumi:disable-default-providers"] == ["aws", "command"]


def test_the_dev_stack_can_be_destroyed_without_a_config_change_and_costs_less() -> None:
    dev = parse_config(
        {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in stack_config("dev").items()
        }
    )
    prod = parse_config(PROD)
    assert dev.deletion_protection is False and prod.deletion_protection is True
    assert dev.throttle_rate_limit < prod.throttle_rate_limit
    assert dev.log_retention_days < prod.log_retention_days


def test_prod_stack_parses_to_the_documented_regions() -> None:
    config = parse_config(PROD)
    assert isinstance(config, StackConfig)
    assert config.app_regions == ("us-east-1", "us-east-2")
    assert config.witness_region == "us-west-2"
    assert config.deletion_protection is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secondaryRegion": "us-east-1"}, "secondaryRegion equals primaryRegion"),
        ({"witnessRegion": "us-east-2"}, "witnessRegion (us-east-2) is also an application region"),
        ({"primaryRegion": "us-middle-9"}, "primaryRegion is 'us-middle-9', which is not an AWS region"),
        ({"witnessRegion": None}, "witnessRegion is required; set it with `pulumi config set witnessRegion"),
        ({"primaryRegoin": "us-east-1"}, "unknown config key dsql-users-api:primaryRegoin"),
        ({"deletionProtection": "yes"}, "deletionProtection must be true or false"),
        ({"peeringTimeoutSeconds": "5"}, "peeringTimeoutSeconds must be between 60 and 7200"),
        ({"lambdaArchitecture": "arm"}, "lambdaArchitecture must be one of arm64, x86_64"),
        ({"logRetentionDays": "10"}, "logRetentionDays must be one of 1, 3, 5"),
        ({"corsAllowOrigins": '["*"]'}, "`*` is refused"),
        ({"tags": '["novalue"]'}, "must be 'key=value'"),
        ({"tags": "team=a"}, "tags must be a list"),
        ({"kmsKeyArn": KEY_EAST_1}, "kmsKeyArn was replaced by kmsKeyArns"),
        ({"kmsKeyArns": '["alias/mine"]'}, "kmsKeyArns item 'alias/mine' is not a KMS key ARN"),
        (
            {"kmsKeyArns": '["arn:aws:kms:us-east-1:123456789012:alias/users-api"]'},
            "is an alias ARN; DSQL reports the key's own ARN back, so an alias would show as drift on every "
            "refresh and plan a cluster update on every `up`. Give the key ARN: aws kms describe-key --key-id "
            "alias/users-api --region us-east-1",
        ),
        ({"kmsKeyArns": json.dumps([KEY_EAST_1])}, "kmsKeyArns has no key in us-east-2"),
        ({"kmsKeyArns": json.dumps([KEY_EAST_1, KEY_EAST_1])}, "kmsKeyArns has two keys in us-east-1"),
        ({"kmsKeyArns": json.dumps([KEY_EAST_1, KEY_WEST_2])}, "a key in us-west-2, but the clusters are in"),
        ({"awsAssumeRoleArn": "deployer"}, "awsAssumeRoleArn is not valid: 'deployer'"),
        ({"awsProfile": "[deploy]"}, "awsProfile is not valid"),
        ({"manageApiGatewayAccount": "no"}, "manageApiGatewayAccount must be true or false"),
        ({"domainName": "api.example.com"}, "domainName is set but dsql-users-api:hostedZoneId is not"),
        ({"healthCheckIntervalSeconds": "20"}, "must be one of 10, 30"),
        ({"tokenValidityMinutes": "4"}, "tokenValidityMinutes must be between 5 and 1440"),
        ({"tokenValidityMinutes": "1441"}, "tokenValidityMinutes must be between 5 and 1440"),
        (
            {"permissionsBoundaryArn": "arn:aws:iam::123456789012:role/boundary"},
            "permissionsBoundaryArn is not valid",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_and_the_fix(change: dict, message: str) -> None:
    raw = {**PROD, **{k: v for k, v in change.items() if v is not None}}
    for key in (k for k, v in change.items() if v is None):
        raw.pop(key)
    with pytest.raises(ConfigError) as failure:
        parse_config(raw)
    assert message in str(failure.value)


def test_optional_values_parse_to_plain_types() -> None:
    config = parse_config(
        {
            **PROD,
            "tags": '["team=payments", "cost-center=42"]',
            "corsAllowOrigins": '["https://app.example.com", "http://localhost:3000"]',
            "domainName": "API.Example.com.",
            "hostedZoneId": "Z0123456789ABC",
            "kmsKeyArns": json.dumps([KEY_EAST_2, KEY_EAST_1]),
            "awsProfile": "deploy",
            "awsAssumeRoleArn": "arn:aws:iam::123456789012:role/ci/users-api-deployer",
            "manageApiGatewayAccount": "false",
            "tokenValidityMinutes": "30",
            "permissionsBoundaryArn": "arn:aws:iam::123456789012:policy/dsql-users-api/boundary",
        }
    )
    assert config.token_validity_minutes == 30
    assert config.permissions_boundary_arn == "arn:aws:iam::123456789012:policy/dsql-users-api/boundary"
    assert config.tags == {"team": "payments", "cost-center": "42"}
    assert config.cors_allow_origins == ("https://app.example.com", "http://localhost:3000")
    assert config.domain_name == "api.example.com"
    assert config.kms_key_arns == {"us-east-1": KEY_EAST_1, "us-east-2": KEY_EAST_2}
    assert config.aws_profile == "deploy"
    assert config.aws_assume_role_arn == "arn:aws:iam::123456789012:role/ci/users-api-deployer"
    assert config.manage_api_gateway_account is False


def test_every_preview_up_and_destroy_refreshes_first() -> None:
    """The DSQL cluster's update sends its peer list from state: only a refresh makes it the real one
    (docs/dsql-cluster.md). Pulumi's project option runs that refresh before every operation."""
    assert PROJECT_FILE["options"] == {"refresh": "always"}
