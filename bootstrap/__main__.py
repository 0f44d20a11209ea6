"""The account bootstrap of dsql-users-api: run once per AWS account, before the app stack.

    pulumi -C bootstrap stack init prod
    pulumi -C bootstrap config set --path 'trustedPrincipalArns[0]' arn:aws:iam::123456789012:role/ops
    pulumi -C bootstrap up

Creates, from the JSON files in ``bootstrap/policies/`` exactly as they are (reviewable in a diff):

- the permissions boundary ``dsql-users-api-boundary`` (policies/boundary.json): everything any role of
  the app may ever do; the app stack puts it on every role it creates (``permissionsBoundaryArn``);
- the deployer role ``dsql-users-api-deployer`` with the four deployer policies and the smoke policy,
  trusted by ``trustedPrincipalArns`` and, with ``githubDeploy``, by the repository's workflows for one
  ref or one deployment environment (GitHub OIDC). Its tags name the app stack, domain and zone, which
  its policies read (``aws:PrincipalTag/...``) to reach only that stack's pool and DNS names;
- the previewer role ``dsql-users-api-previewer`` (policies/previewer.json, read only), trusted by the
  repository's pull-request workflows, when ``githubRepository`` is set;
- the GitHub Actions OIDC provider, when ``createGithubOidcProvider`` is true.

Outputs the role ARNs and ``appStackConfig``: the two values to set in the app stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

PROJECT = "dsql-users-api"
POLICY_DIR = Path(__file__).resolve().parent / "policies"
DEPLOYER_POLICY_FILES = (
    "deployer-iam",
    "deployer-data",
    "deployer-edge",
    "deployer-identity-ops",
    "deployer-web",
    "smoke",
)
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# Tags the deployer's policies read through aws:PrincipalTag (bootstrap/policies/*.json).
STACK_TAG, DOMAIN_TAG, ZONE_TAG = f"{PROJECT}-stack", f"{PROJECT}-domain", f"{PROJECT}-zone"
# Not "dsql-users-api": the deployer may change only roles tagged with the app's project (never these).
BOOTSTRAP_TAGS = {"project": f"{PROJECT}-bootstrap"}
_PRINCIPAL = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:(root|(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]{1,64})$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")


class BootstrapConfigError(ValueError):
    """A bootstrap config value is missing or invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class BootstrapConfig:
    trusted_principal_arns: tuple[str, ...] = ()
    github_repository: str | None = None
    github_deploy: bool = False
    github_deploy_ref: str = "refs/heads/main"
    github_environment: str | None = None
    create_github_oidc_provider: bool = False
    app_stack: str = "prod"
    domain_name: str | None = None
    hosted_zone_id: str | None = None
    principal_tags: dict[str, str] = field(default_factory=dict)


def _fail(key: str, problem: str) -> BootstrapConfigError:
    return BootstrapConfigError(f"{PROJECT}-bootstrap:{key} {problem}")


def parse_config(raw: dict[str, Any]) -> BootstrapConfig:
    """Validate the bootstrap's config (plain values, as ``pulumi.Config`` returns them)."""
    principals = raw.get("trustedPrincipalArns") or []
    if not isinstance(principals, list) or not all(
        isinstance(p, str) and _PRINCIPAL.match(p) for p in principals
    ):
        raise _fail(
            "trustedPrincipalArns",
            f"must be a list of IAM role, user or account root ARNs, not {principals!r}; e.g. "
            "`pulumi config set --path 'trustedPrincipalArns[0]' arn:aws:iam::123456789012:role/ops`",
        )
    repository = str(raw.get("githubRepository") or "").strip() or None
    if repository and not _REPOSITORY.match(repository):
        raise _fail("githubRepository", f"must be owner/name, not {repository!r}")
    deploy = raw.get("githubDeploy") in (True, "true")
    environment = str(raw.get("githubEnvironment") or "").strip() or None
    ref = str(raw.get("githubDeployRef") or "refs/heads/main").strip()
    if deploy and not repository:
        raise _fail("githubDeploy", "needs githubRepository: set it to the repository whose workflows deploy")
    if not ref.startswith("refs/") or "*" in ref:
        raise _fail(
            "githubDeployRef", f"must be one full ref such as refs/heads/main (no wildcard), not {ref!r}"
        )
    if not principals and not deploy:
        raise _fail(
            "trustedPrincipalArns",
            "is empty and githubDeploy is off: nobody could assume the deployer role; name a principal or "
            "turn githubDeploy on",
        )
    stack = str(raw.get("appStack") or "prod").strip()
    if not _STACK.match(stack):
        raise _fail("appStack", f"must be a stack name, not {stack!r}")
    domain = str(raw.get("domainName") or "").strip().lower().rstrip(".") or None
    zone = str(raw.get("hostedZoneId") or "").strip() or None
    if domain and not _DOMAIN.match(domain):
        raise _fail("domainName", f"is not a domain name: {domain!r}")
    if zone and not _ZONE_ID.match(zone):
        raise _fail("hostedZoneId", f"is not a hosted zone id: {zone!r} (e.g. Z0123456789ABCDEFGHIJ)")
    if bool(domain) != bool(zone):
        raise _fail("domainName", "and hostedZoneId go together, as in the app stack: set both or neither")
    tags = {STACK_TAG: stack}
    if domain and zone:
        tags |= {DOMAIN_TAG: domain, ZONE_TAG: zone}
    return BootstrapConfig(
        trusted_principal_arns=tuple(principals),
        github_repository=repository,
        github_deploy=deploy,
        github_deploy_ref=ref,
        github_environment=environment,
        create_github_oidc_provider=raw.get("createGithubOidcProvider") in (True, "true"),
        app_stack=stack,
        domain_name=domain,
        hosted_zone_id=zone,
        principal_tags=tags,
    )


TEXT_KEYS = (
    "githubRepository",
    "githubDeployRef",
    "githubEnvironment",
    "appStack",
    "domainName",
    "hostedZoneId",
)
KEYS = (*TEXT_KEYS, "trustedPrincipalArns", "githubDeploy", "createGithubOidcProvider")


def load_config() -> BootstrapConfig:
    config = pulumi.Config()
    raw: dict[str, Any] = {key: config.get(key) for key in TEXT_KEYS}
    raw["trustedPrincipalArns"] = config.get_object("trustedPrincipalArns") or []
    raw["githubDeploy"] = config.get_bool("githubDeploy") or False
    raw["createGithubOidcProvider"] = config.get_bool("createGithubOidcProvider") or False
    return parse_config(raw)


def policy_text(name: str) -> str:
    """The file's text, exactly as reviewed: the bootstrap attaches nothing else."""
    return (POLICY_DIR / f"{name}.json").read_text()


def github_trust(provider_arn: pulumi.Input[str], repository: str, subject: str) -> pulumi.Output[str]:
    """A trust policy for one GitHub OIDC subject of ``repository`` (audience sts.amazonaws.com)."""
    return pulumi.Output.from_input(provider_arn).apply(
        lambda arn: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "GithubActions",
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                                f"{GITHUB_OIDC_HOST}:sub": f"repo:{repository}:{subject}",
                            }
                        },
                    }
                ],
            }
        )
    )


def deployer_trust(config: BootstrapConfig, provider_arn: pulumi.Input[str] | None) -> pulumi.Output[str]:
    statements: list[Any] = []
    if config.trusted_principal_arns:
        statements.append(
            {
                "Sid": "NamedPrincipals",
                "Effect": "Allow",
                "Principal": {"AWS": list(config.trusted_principal_arns)},
                "Action": "sts:AssumeRole",
            }
        )
    if config.github_deploy and provider_arn is not None and config.github_repository:
        subject = (
            f"environment:{config.github_environment}"
            if config.github_environment
            else f"ref:{config.github_deploy_ref}"
        )
        github = github_trust(provider_arn, config.github_repository, subject)
        return github.apply(
            lambda text: json.dumps(
                {"Version": "2012-10-17", "Statement": statements + json.loads(text)["Statement"]}
            )
        )
    return pulumi.Output.from_input(json.dumps({"Version": "2012-10-17", "Statement": statements}))


def main() -> None:
    config = load_config()
    account_id = aws.get_caller_identity().account_id

    provider_arn: pulumi.Input[str] | None = None
    if config.create_github_oidc_provider:
        provider_arn = aws.iam.OpenIdConnectProvider(
            "github-oidc",
            url=f"https://{GITHUB_OIDC_HOST}",
            client_id_lists=["sts.amazonaws.com"],
            tags=BOOTSTRAP_TAGS,
        ).arn
    elif config.github_repository:
        provider_arn = f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"

    policies = {
        name: aws.iam.Policy(
            f"{name}-policy",
            name=f"{PROJECT}-{name}",
            description=f"dsql-users-api: bootstrap/policies/{name}.json",
            policy=policy_text(name),
            tags=BOOTSTRAP_TAGS,
        )
        for name in ("boundary", *DEPLOYER_POLICY_FILES, "previewer")
    }

    deployer = aws.iam.Role(
        "deployer",
        name=f"{PROJECT}-deployer",
        description="Deploys the dsql-users-api app stack; may create roles only under the boundary",
        assume_role_policy=deployer_trust(config, provider_arn),
        max_session_duration=3600,
        tags={**BOOTSTRAP_TAGS, **config.principal_tags},
    )
    for name in DEPLOYER_POLICY_FILES:
        aws.iam.RolePolicyAttachment(f"deployer-{name}", role=deployer.name, policy_arn=policies[name].arn)

    previewer_arn: pulumi.Output[str] | None = None
    if config.github_repository and provider_arn is not None:
        previewer = aws.iam.Role(
            "previewer",
            name=f"{PROJECT}-previewer",
            description="Runs pulumi preview of dsql-users-api for pull requests: read only",
            assume_role_policy=github_trust(provider_arn, config.github_repository, "pull_request"),
            max_session_duration=3600,
            tags=BOOTSTRAP_TAGS,
        )
        aws.iam.RolePolicyAttachment(
            "previewer-read", role=previewer.name, policy_arn=policies["previewer"].arn
        )
        previewer_arn = previewer.arn

    pulumi.export("deployerRoleArn", deployer.arn)
    pulumi.export("previewerRoleArn", previewer_arn)
    pulumi.export("permissionsBoundaryArn", policies["boundary"].arn)
    pulumi.export("smokePolicyArn", policies["smoke"].arn)
    pulumi.export("githubOidcProviderArn", provider_arn)
    pulumi.export(
        "appStackConfig",
        {"awsAssumeRoleArn": deployer.arn, "permissionsBoundaryArn": policies["boundary"].arn},
    )


if __name__ == "__main__":
    main()
