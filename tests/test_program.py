"""The whole program under Pulumi mocks, as `pulumi up` and as `pulumi preview` run it.

A preview differs from an update in what it cannot know: a new stack has no ids or ARNs yet, and in a
deployed stack a Python dynamic resource planned for an update has unknown outputs (its provider cannot
preview, so the engine takes the new inputs as its outputs). The program must register the same
resources either way, and nothing downstream of such an update may become unknown (an unknown input
makes a diff plan a replacement).
"""

from __future__ import annotations

import json

import pytest

from tests.pulumi_harness import AWS_PROVIDER, UNKNOWN, run_program

PEERING = "pulumi-python:dynamic/dsql:ClusterPeering"
MIGRATION = "pulumi-python:dynamic/dsql:SchemaMigration"
GRANT = "pulumi-python:dynamic/dsql:IamRoleGrant"
FUNCTION = "aws:lambda/function:Function"
API_GATEWAY_ACCOUNT = "aws:apigateway/account:Account"
DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABC"}
ROLE = "arn:aws:iam::123456789012:role/deploy/users-api-deployer"


def _shape(run) -> list[tuple[str, str]]:
    return sorted((r.typ, r.name) for r in run.resources)


@pytest.mark.parametrize("overrides", [{}, DOMAIN], ids=["regional-urls", "custom-domain"])
def test_a_preview_of_a_new_stack_registers_what_an_update_does(overrides: dict) -> None:
    update = run_program(overrides)
    preview = run_program(overrides, preview=True)
    assert _shape(preview) == _shape(update)
    # Nothing is known before the first deployment: the invoke URLs are unknown, never made up.
    assert preview.outputs["invokeUrls"] == UNKNOWN
    assert update.outputs["invokeUrls"]["us-east-1"].startswith("https://")


def test_a_peering_update_leaves_everything_downstream_known() -> None:
    """A preview of a deployed stack whose peering changes (e.g. peeringTimeoutSeconds): the peering's
    outputs are unknown, yet the migration, the grants and the functions see the same endpoints as in
    the update, so their diffs find nothing to replace."""
    update = run_program({"peeringTimeoutSeconds": 900})
    preview = run_program({"peeringTimeoutSeconds": 900}, preview=True, unknown_outputs_of={PEERING})
    assert preview.one(PEERING).outputs.get("primary_status") is None  # unknown, as the engine has it

    def endpoints(run) -> dict[str, object]:
        found: dict[str, object] = {"migration": run.one(MIGRATION).inputs.get("endpoint")}
        for grant in run.of_type(GRANT):
            found[grant.name] = grant.inputs.get("endpoint")
        for function in run.of_type(FUNCTION):
            environment = function.inputs.get("environment")
            variables = environment.get("variables") if isinstance(environment, dict) else None
            found[function.name] = variables.get("DSQL_ENDPOINT") if isinstance(variables, dict) else None
        return found

    planned, applied = endpoints(preview), endpoints(update)
    assert planned == applied
    assert all(isinstance(value, str) and ".dsql." in value for value in planned.values()), planned


def test_every_provider_uses_the_one_aws_access_setting() -> None:
    run = run_program({"awsProfile": "deploy", "awsAssumeRoleArn": ROLE, "primaryRegion": "us-east-2",
                       "secondaryRegion": "eu-west-1", "witnessRegion": "eu-west-2"})  # fmt: skip
    providers = run.of_type(AWS_PROVIDER)
    # Two application regions plus us-east-1, where Route 53 health check metrics live.
    assert sorted(p.inputs["region"] for p in providers) == ["eu-west-1", "us-east-1", "us-east-2"]
    for provider in providers:
        assert provider.inputs["profile"] == "deploy"
        (assumed,) = json.loads(provider.inputs["assumeRoles"])
        assert assumed["roleArn"] == ROLE
        assert assumed["sessionName"] == "dsql-users-api-prod"


def test_without_an_access_setting_the_providers_use_the_ambient_credentials() -> None:
    for provider in run_program().of_type(AWS_PROVIDER):
        assert "profile" not in provider.inputs
        assert "assumeRoles" not in provider.inputs


def test_the_account_wide_api_gateway_setting_is_retained_when_the_stack_is_destroyed() -> None:
    run = run_program()
    accounts = run.of_type(API_GATEWAY_ACCOUNT)
    assert sorted(a.region for a in accounts) == ["us-east-1", "us-east-2"]
    for account in accounts:
        assert account.name in run.retained
    logging_roles = [r for r in run.resources if r.name.endswith("-apigateway-logs-role")]
    attachments = [r for r in run.resources if r.name.endswith("-apigateway-logs-policy")]
    assert len(logging_roles) == len(attachments) == 2
    assert {r.name for r in logging_roles + attachments} <= run.retained
    # Nothing the stack owns outright is retained.
    assert not any(r.name in run.retained for r in run.of_type(FUNCTION))


def test_the_api_gateway_setting_can_be_left_to_another_stack() -> None:
    run = run_program({"manageApiGatewayAccount": "false"})
    assert run.of_type(API_GATEWAY_ACCOUNT) == []
    assert not [r for r in run.resources if "apigateway-logs" in r.name]


def test_both_rest_apis_refuse_tls_below_1_2_on_their_default_endpoint() -> None:
    apis = run_program().of_type("aws:apigateway/restApi:RestApi")
    assert sorted(api.region for api in apis) == ["us-east-1", "us-east-2"]
    assert all(api.inputs["securityPolicy"] == "TLS_1_2" for api in apis)
