"""The AWS identity of the dynamic providers: the stack's access setting, one session factory.

Two optional stack config keys choose the identity that deploys; the program gives them to each
region's explicit ``aws.Provider`` and the engine gives the whole stack config to the dynamic-provider
process, whose ``Configure`` hands it to ``configure()`` (``AwsAccessProvider``):

    dsql-users-api:awsProfile        a named profile of the AWS config/credentials files
    dsql-users-api:awsAssumeRoleArn  an IAM role to assume, from the profile's (or the ambient) credentials

Every boto3 client and every IAM auth token the dynamic providers make comes from ``session(access,
region)``, so peering, migration and grants act as the same identity as the AWS provider. With neither
key set, botocore's ambient chain applies (environment, ``AWS_PROFILE``, SSO, instance or task role).

An assumed role's credentials are refreshable (botocore's ``AssumeRoleCredentialFetcher`` behind
``DeferredRefreshableCredentials``): botocore renews them before they expire, so a peering wait of up
to two hours outlives the role's one-hour session. One credential object is kept per profile, role and
region in this process, so a wait that polls every 10 s does not call ``AssumeRole`` every 10 s. The
session name (``dsql-users-api-dynamic-providers``) says in CloudTrail which tool made the calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi.dynamic
from botocore.credentials import CredentialProvider

from components.config import AWS_PROFILE_NAME as PROFILE_NAME
from components.config import IAM_ROLE_ARN, PROJECT

PROFILE_KEY = f"{PROJECT}:awsProfile"
# Required by the program, so present in every stack's config: its absence from Configure means the
# engine passed no stack config at all (Pulumi CLIs before 3.139 did not, pulumi/pulumi#17673).
REQUIRED_KEY = f"{PROJECT}:primaryRegion"
ASSUME_ROLE_KEY = f"{PROJECT}:awsAssumeRoleArn"
ROLE_SESSION_NAME = f"{PROJECT}-dynamic-providers"


class AwsAccessError(ValueError):
    """The access setting cannot give credentials; the message names the config key and the fix."""


@dataclass(frozen=True)
class AwsAccess:
    """Which AWS identity to use: a profile, a role to assume, both (profile first) or neither."""

    profile: str | None = None
    assume_role_arn: str | None = None


AMBIENT = AwsAccess()


def access_from_config(config: pulumi.dynamic.Config) -> AwsAccess:
    """The access setting from the stack config the engine sent; raises AwsAccessError naming the key."""
    if config.get(REQUIRED_KEY) is None:
        # Without the stack config the setting cannot be known; guessing "ambient" could deploy the
        # peering, migration and grants as another identity than the AWS provider, even another account.
        raise AwsAccessError(
            f"the Pulumi engine passed no stack config to the dynamic providers ({REQUIRED_KEY} is "
            "missing from Configure), so awsProfile / awsAssumeRoleArn cannot reach the peering, the "
            "migration and the grants; use Pulumi CLI 3.139 or later (`pulumi version`), which passes it"
        )
    profile = _setting(config.get(PROFILE_KEY))
    role_arn = _setting(config.get(ASSUME_ROLE_KEY))
    if profile is not None and not PROFILE_NAME.match(profile):
        raise AwsAccessError(
            f"{PROFILE_KEY} is {profile!r}, which cannot be a profile name of the AWS config file; "
            "set it to the name inside [profile <name>] (`pulumi config set awsProfile <name>`) or "
            "remove it (`pulumi config rm awsProfile`)"
        )
    if role_arn is not None and not IAM_ROLE_ARN.match(role_arn):
        raise AwsAccessError(
            f"{ASSUME_ROLE_KEY} is {role_arn!r}, which is not an IAM role ARN; set it to "
            "arn:aws:iam::<12-digit account>:role/<name> (`pulumi config set awsAssumeRoleArn <arn>`) "
            "or remove it (`pulumi config rm awsAssumeRoleArn`)"
        )
    return AwsAccess(profile, role_arn)


def session(access: AwsAccess, region: str) -> Any:
    """A boto3 session for ``region`` with the identity ``access`` names."""
    import boto3

    botocore_session = base_session(access.profile)
    botocore_session.set_config_variable("region", region)
    if access.assume_role_arn:
        from botocore.credentials import CredentialResolver

        credentials = _assumed_role_credentials(access, region)
        botocore_session.register_component("credential_provider", CredentialResolver([_Fixed(credentials)]))
    return boto3.session.Session(botocore_session=botocore_session, region_name=region)


class AwsAccessProvider(pulumi.dynamic.ResourceProvider):
    """Base of the project's dynamic providers: takes the access setting from the engine's Configure.

    ``configure`` runs in the dynamic-provider process only (never in the program), after the
    provider was unpickled, so the setting is never part of the serialized provider in the state.
    """

    def configure(self, req: pulumi.dynamic.ConfigureRequest) -> None:
        self.aws_access = access_from_config(req.config)

    @property
    def access(self) -> AwsAccess:
        # A provider called directly (unit tests) is never configured: the ambient chain, as before.
        return getattr(self, "aws_access", AMBIENT)


def _setting(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def base_session(profile: str | None) -> Any:
    """The botocore session of ``profile`` (None: the ambient chain); every session starts here."""
    import botocore.session

    botocore_session = botocore.session.Session(profile=profile)
    if profile is not None and profile not in botocore_session.available_profiles:
        raise AwsAccessError(
            f"{PROFILE_KEY} names the AWS profile {profile!r}, which is not in the AWS config or "
            "credentials files of the machine running Pulumi; add it (`aws configure --profile "
            f"{profile}`), point AWS_CONFIG_FILE at the file that has it, or remove the key "
            "(`pulumi config rm awsProfile`)"
        )
    return botocore_session


_assumed: dict[tuple[AwsAccess, str], Any] = {}
_assumed_lock = threading.Lock()


def _assumed_role_credentials(access: AwsAccess, region: str) -> Any:
    """Refreshable credentials of the assumed role, one object per profile, role and region."""
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    with _assumed_lock:
        credentials = _assumed.get((access, region))
        if credentials is None:
            source = base_session(access.profile)
            source_credentials = source.get_credentials()
            if source_credentials is None:
                raise AwsAccessError(
                    f"no AWS credentials to assume {access.assume_role_arn} ({ASSUME_ROLE_KEY}) with: "
                    "log in first (environment variables, `aws sso login`, an instance role) or set "
                    f"{PROFILE_KEY} to a profile that has credentials"
                )
            fetcher = AssumeRoleCredentialFetcher(
                client_creator=partial(source.create_client, region_name=region),
                source_credentials=source_credentials,
                role_arn=access.assume_role_arn,
                extra_args={"RoleSessionName": ROLE_SESSION_NAME},
            )
            credentials = DeferredRefreshableCredentials(
                refresh_using=fetcher.fetch_credentials, method="assume-role"
            )
            _assumed[(access, region)] = credentials
        return credentials


class _Fixed(CredentialProvider):
    """A provider for botocore's credential resolver that always answers with the same credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "custom-dsql-users-api-assume-role"  # botocore asks custom providers for "custom"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials
