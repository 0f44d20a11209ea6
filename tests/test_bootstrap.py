"""bootstrap/ under Pulumi's mocks: the boundary, the deployer and previewer roles, the GitHub OIDC
provider and the smoke policy, each policy exactly one file of bootstrap/policies/, and the outputs the
app stack needs; bad config is refused with the key and the fix."""

from __future__ import annotations

import json
import re
import runpy
from typing import Any
from unittest import mock

import pulumi
import pytest
import yaml

from components.config import IAM_POLICY_ARN
from tests.iam_policy import (
    DEPLOYER_FILES,
    POLICY_DIR,
    allows,
    boundary_arn,
    deployer_context,
    deployer_policy,
)
from tests.pulumi_harness import ACCOUNT, ROOT, UNKNOWN, ProgramRun, RecordingMocks

PROJECT = "dsql-users-api-bootstrap"
PROGRAM = ROOT / "bootstrap" / "__main__.py"
POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
OPERATORS = "arn:aws:iam::123456789012:role/operators"
FULL = {
    "trustedPrincipalArns": [OPERATORS],
    "githubRepository": "example-org/users-api",
    "githubDeploy": True,
    "githubEnvironment": "production",
    "createGithubOidcProvider": True,
    "appStack": "prod",
    "domainName": "api.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
}


class BootstrapMocks(RecordingMocks):
    """The app's mocks, plus the ARNs AWS gives managed policies and OIDC providers."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, outputs = super().new_resource(args)
        extra = {}
        if args.typ == POLICY:
            extra["arn"] = f"arn:aws:iam::{ACCOUNT}:policy/{args.inputs['name']}"
        elif args.typ == OIDC:
            extra["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
        self.run.resources[-1].outputs.update(extra)
        return resource_id, {**outputs, **extra}


def run_bootstrap(config: dict[str, Any]) -> ProgramRun:
    mocks = BootstrapMocks()
    pulumi.runtime.reset_options(project=PROJECT, stack="prod", preview=False)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="prod", preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )
    exports: dict[str, Any] = {}

    async def resolve() -> None:
        for name, value in exports.items():
            output = pulumi.Output.from_input(value)
            mocks.run.outputs[name] = await output.future() if await output.is_known() else UNKNOWN

    def body() -> Any:
        with mock.patch.object(pulumi, "export", lambda name, value: exports.__setitem__(name, value)):
            runpy.run_path(str(PROGRAM), run_name="__main__")
        return resolve()

    pulumi.runtime.test(body)()
    return mocks.run


@pytest.fixture(scope="module")
def full() -> ProgramRun:
    return run_bootstrap(FULL)


def attached(run: ProgramRun, role: str) -> set[str]:
    role_name = run.named(role).inputs["name"]
    return {
        a.inputs["policyArn"].rsplit("/", 1)[1]
        for a in run.of_type(ATTACHMENT)
        if a.inputs["role"] == role_name
    }


def test_every_policy_is_exactly_one_file_of_the_repository(full: ProgramRun) -> None:
    policies = {p.inputs["name"]: p.inputs["policy"] for p in full.of_type(POLICY)}
    files = {f"dsql-users-api-{path.stem}": path.read_text() for path in POLICY_DIR.glob("*.json")}
    assert policies == files  # byte for byte, and no file left out


def test_the_deployer_role_holds_the_deployer_and_smoke_policies_and_is_trusted_as_configured(
    full: ProgramRun,
) -> None:
    deployer = full.named("deployer")
    assert deployer.inputs["name"] == "dsql-users-api-deployer"
    assert attached(full, "deployer") == {
        f"dsql-users-api-{name.removesuffix('.json')}" for name in DEPLOYER_FILES
    } | {"dsql-users-api-smoke"}
    trust = json.loads(deployer.inputs["assumeRolePolicy"])["Statement"]
    assert trust[0]["Principal"] == {"AWS": [OPERATORS]} and trust[0]["Action"] == "sts:AssumeRole"
    github = trust[1]
    assert github["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    assert github["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:example-org/users-api:environment:production",
    }
    assert deployer.inputs["tags"] == {
        "project": "dsql-users-api-bootstrap",
        "dsql-users-api-stack": "prod",
        "dsql-users-api-domain": "api.example.com",
        "dsql-users-api-zone": "Z0123456789ABCDEFGHIJ",
    }


def test_every_principal_tag_the_policies_read_is_set_on_the_deployer(full: ProgramRun) -> None:
    read = {
        m
        for path in POLICY_DIR.glob("*.json")
        for m in re.findall(r"aws:PrincipalTag/([\w-]+)", path.read_text())
    }
    assert read and read <= set(full.named("deployer").inputs["tags"])


def test_the_previewer_reads_only_and_only_pull_requests_assume_it(full: ProgramRun) -> None:
    previewer = full.named("previewer")
    assert attached(full, "previewer") == {"dsql-users-api-previewer"}
    [statement] = json.loads(previewer.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:example-org/users-api:pull_request"
    )
    assert full.outputs["previewerRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/dsql-users-api-previewer"


def test_the_oidc_provider_is_githubs(full: ProgramRun) -> None:
    provider = full.one(OIDC)
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_outputs_are_what_the_app_stack_needs(full: ProgramRun) -> None:
    boundary = full.outputs["permissionsBoundaryArn"]
    # The ARN the deployer's policies require as every role's boundary, and one the app's config takes.
    assert boundary == boundary_arn(ACCOUNT) and IAM_POLICY_ARN.match(boundary)
    assert full.outputs["appStackConfig"] == {
        "awsAssumeRoleArn": f"arn:aws:iam::{ACCOUNT}:role/dsql-users-api-deployer",
        "permissionsBoundaryArn": boundary,
    }
    assert full.outputs["smokePolicyArn"] == f"arn:aws:iam::{ACCOUNT}:policy/dsql-users-api-smoke"


def test_the_deployer_cannot_change_the_bootstrap_roles_or_policies(full: ProgramRun) -> None:
    policy, context = deployer_policy(), deployer_context(ACCOUNT)
    bootstrap_tags = {**context, "aws:ResourceTag/project": "dsql-users-api-bootstrap"}
    for role in (full.named("deployer"), full.named("previewer")):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{role.inputs['name']}"
        for action in (
            "iam:UpdateAssumeRolePolicy",
            "iam:AttachRolePolicy",
            "iam:PutRolePolicy",
            "iam:TagRole",
        ):
            assert not allows(policy, action, arn, bootstrap_tags)
    for managed in full.of_type(POLICY):
        arn = f"arn:aws:iam::{ACCOUNT}:policy/{managed.inputs['name']}"
        assert not allows(policy, "iam:CreatePolicyVersion", arn, context)


def test_without_github_only_the_named_principals_and_no_previewer() -> None:
    run = run_bootstrap({"trustedPrincipalArns": [OPERATORS]})
    assert run.of_type(OIDC) == [] and [r.name for r in run.of_type(ROLE)] == ["deployer"]
    [statement] = json.loads(run.named("deployer").inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"AWS": [OPERATORS]}
    assert run.outputs["previewerRoleArn"] is None
    assert run.named("deployer").inputs["tags"] == {
        "project": "dsql-users-api-bootstrap",
        "dsql-users-api-stack": "prod",
    }


def test_an_existing_oidc_provider_is_named_not_created() -> None:
    run = run_bootstrap({**FULL, "createGithubOidcProvider": False, "githubEnvironment": ""})
    assert run.of_type(OIDC) == []
    github = json.loads(run.named("deployer").inputs["assumeRolePolicy"])["Statement"][1]
    assert github["Principal"]["Federated"] == (
        f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    )
    assert github["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:example-org/users-api:ref:refs/heads/main"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "nobody could assume the deployer role"),
        ({"trustedPrincipalArns": ["operators"]}, "trustedPrincipalArns must be a list of IAM role"),
        ({"trustedPrincipalArns": [OPERATORS], "githubDeploy": True}, "githubDeploy needs githubRepository"),
        ({"trustedPrincipalArns": [OPERATORS], "githubRepository": "not a repo"}, "must be owner/name"),
        (
            {**FULL, "githubEnvironment": "", "githubDeployRef": "refs/heads/*"},
            "githubDeployRef must be one full ref",
        ),
        ({"trustedPrincipalArns": [OPERATORS], "domainName": "api.example.com"}, "go together"),
        (
            {"trustedPrincipalArns": [OPERATORS], "hostedZoneId": "zone", "domainName": "a.example.com"},
            "hostedZoneId",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_and_the_fix(config: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        run_bootstrap(config)


def test_every_declared_key_is_read_and_the_declared_defaults_are_the_codes() -> None:
    module = runpy.run_path(str(PROGRAM), run_name="bootstrap_program")
    declared = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.yaml").read_text())["config"]
    own = {key: d for key, d in declared.items() if ":" not in key}
    assert set(own) == set(module["KEYS"])
    assert all(d.get("description") and "default" in d for d in own.values())
    minimal = {"trustedPrincipalArns": [OPERATORS]}
    defaults = {key: d["default"] for key, d in own.items()}
    assert module["parse_config"](minimal) == module["parse_config"]({**defaults, **minimal})
