"""The stack's configuration, read once, typed and validated before any resource is registered.

Every key is declared with its description and default in Pulumi.yaml. ``parse_config`` turns raw
string values into a ``StackConfig`` and raises ``ConfigError`` naming the key and the fix; the
components receive plain typed values and never read ``pulumi.Config`` themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

from components.schedules import EXAMPLES, check_drill_schedule

PROJECT = "dsql-users-api"

LAMBDA_ARCHITECTURES = ("arm64", "x86_64")
LAMBDA_RUNTIMES = ("python3.12", "python3.13")
HEALTH_CHECK_INTERVALS = (10, 30)  # the only request intervals Route 53 accepts
AUTH_MODES = ("cognito", "none")  # none: an explicit opt-out of authentication, logged as a warning
# Lambda SnapStart: Python runtimes from 3.12, every commercial region but these two (AWS docs, 2026).
SNAP_START_MIN_PYTHON = (3, 12)
SNAP_START_UNAVAILABLE_REGIONS = frozenset({"ap-east-2", "ap-southeast-6"})  # Taipei, New Zealand


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key and how to fix it."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs from `pulumi config`, already validated."""

    primary_region: str
    """First application region: a DSQL cluster, a Lambda and a REST API."""
    secondary_region: str
    """Second application region, peered with the first."""
    witness_region: str
    """DSQL witness region: keeps quorum, serves no traffic."""
    deletion_protection: bool = True
    """Deletion protection on both DSQL clusters."""
    kms_key_arns: Mapping[str, str] = field(default_factory=dict)
    """Customer managed KMS key ARN by application region (KMS keys are regional); empty uses AWS owned
    keys."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every taggable resource, on top of project and stack."""
    peering_timeout_seconds: int = 1800
    """How long the peering resource waits for both clusters to become ACTIVE."""
    lambda_runtime: str = "python3.13"
    """Lambda runtime identifier."""
    lambda_architecture: str = "arm64"
    """Lambda instruction set; the dependency layer is built for it."""
    lambda_memory_mb: int = 512
    """Lambda memory size (also scales its CPU)."""
    lambda_timeout_seconds: int = 10
    """Lambda timeout; API Gateway gives up after 29 s whatever this says."""
    lambda_snap_start: bool = False
    """SnapStart on published versions; the API then invokes the alias ``live`` of the latest version."""
    log_retention_days: int = 30
    """Retention of the Lambda and API access log groups."""
    stage_name: str = "v1"
    """API Gateway stage name (the first segment of the invoke URL's path)."""
    throttle_rate_limit: int = 100
    """Steady-state requests per second allowed per region's stage."""
    throttle_burst_limit: int = 200
    """Burst of requests allowed per region's stage."""
    cors_allow_origins: tuple[str, ...] = ()
    """Origins allowed by CORS; empty allows none (no `*` by default)."""
    xray_tracing: bool = False
    """X-Ray tracing on the Lambda functions and API stages."""
    domain_name: str | None = None
    """Custom domain for latency-based global routing (needs hosted_zone_id)."""
    hosted_zone_id: str | None = None
    """Route 53 hosted zone that holds domain_name."""
    health_check_interval_seconds: int = 30
    """Route 53 health check request interval: 10 or 30."""
    health_check_failure_threshold: int = 3
    """Consecutive failed checks before a region counts as unhealthy (1-10)."""
    alarm_email: str | None = None
    """E-mail address subscribed to the alarm topic; None subscribes nobody."""
    aws_profile: str | None = None
    """Named AWS profile for every AWS call of the deployment (providers and dynamic resources)."""
    aws_assume_role_arn: str | None = None
    """IAM role assumed for every AWS call of the deployment, after the profile or ambient credentials."""
    manage_api_gateway_account: bool = True
    """Set each region's account-wide API Gateway CloudWatch role (retained when the stack is destroyed)."""
    smoke_after_deploy: bool = False
    """`pulumi up` runs the smoke checks against both regions once they are deployed (pulumi-command)."""
    auth_mode: str = "cognito"
    """cognito: one user pool, an authorizer on every API method but /health; none: an open API."""
    cdn: bool = False
    """CloudFront in front of both regions (needs domain_name and hosted_zone_id)."""
    waf: bool = False
    """An AWS WAF web ACL on the CloudFront distribution (needs cdn)."""
    waf_rate_limit: int = 2000
    """Requests one client IP may send in 5 minutes before WAF blocks it (with waf)."""
    drill_schedule: str | None = None
    """EventBridge Scheduler expression that runs the failover drill; None schedules none."""
    token_validity_minutes: int = 15
    """Lifetime of the public client's ID and access tokens: how long a removed admin keeps power."""
    permissions_boundary_arn: str | None = None
    """Managed policy every IAM role of the stack carries as its permissions boundary (bootstrap/)."""
    web_client: bool = True
    """Deploy Cognito managed login with a code + PKCE client and, with domain_name, the web client
    (private S3 bucket behind CloudFront); with authMode cognito only."""
    auth_domain_prefix: str | None = None
    """Prefix of the Cognito managed-login domain; None derives one from project, stack and account."""
    auth_replica: bool = False
    """Replicate the user pool to the secondary region (Cognito multi-Region replication, a paid add-on):
    a multi-Region KMS key, the UPDATED issuer and an ACTIVE replica; with authMode cognito only."""

    @property
    def app_regions(self) -> tuple[str, str]:
        return (self.primary_region, self.secondary_region)


# config key in Pulumi.yaml -> StackConfig field
KEYS: dict[str, str] = {
    "primaryRegion": "primary_region",
    "secondaryRegion": "secondary_region",
    "witnessRegion": "witness_region",
    "deletionProtection": "deletion_protection",
    "kmsKeyArn": "kms_key_arn",  # replaced by kmsKeyArns; refused with the fix when set
    "kmsKeyArns": "kms_key_arns",
    "tags": "tags",
    "peeringTimeoutSeconds": "peering_timeout_seconds",
    "lambdaRuntime": "lambda_runtime",
    "lambdaArchitecture": "lambda_architecture",
    "lambdaMemoryMb": "lambda_memory_mb",
    "lambdaTimeoutSeconds": "lambda_timeout_seconds",
    "lambdaSnapStart": "lambda_snap_start",
    "logRetentionDays": "log_retention_days",
    "stageName": "stage_name",
    "throttleRateLimit": "throttle_rate_limit",
    "throttleBurstLimit": "throttle_burst_limit",
    "corsAllowOrigins": "cors_allow_origins",
    "xrayTracing": "xray_tracing",
    "domainName": "domain_name",
    "hostedZoneId": "hosted_zone_id",
    "healthCheckIntervalSeconds": "health_check_interval_seconds",
    "healthCheckFailureThreshold": "health_check_failure_threshold",
    "alarmEmail": "alarm_email",
    "awsProfile": "aws_profile",
    "awsAssumeRoleArn": "aws_assume_role_arn",
    "manageApiGatewayAccount": "manage_api_gateway_account",
    "smokeAfterDeploy": "smoke_after_deploy",
    "authMode": "auth_mode",
    "cdn": "cdn",
    "waf": "waf",
    "wafRateLimit": "waf_rate_limit",
    "drillSchedule": "drill_schedule",
    "tokenValidityMinutes": "token_validity_minutes",
    "permissionsBoundaryArn": "permissions_boundary_arn",
    "webClient": "web_client",
    "authDomainPrefix": "auth_domain_prefix",
    "authReplica": "auth_replica",
}
# Keys still declared so that an old stack file gets a clear message instead of an unknown-key error.
RETIRED = {
    "kmsKeyArn": "kmsKeyArn was replaced by kmsKeyArns, because a KMS key serves only its own region: "
    "`pulumi config rm kmsKeyArn`, then `pulumi config set --path 'kmsKeyArns[0]' <key ARN in the primary "
    "region>` and `pulumi config set --path 'kmsKeyArns[1]' <key ARN in the secondary region>`",
}
REQUIRED = ("primaryRegion", "secondaryRegion", "witnessRegion")

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)  # fmt: skip
# Key ARNs only: DSQL reports the key's ARN back (GetCluster encryptionDetails), so an alias ARN would
# read as drift on every refresh and plan an UpdateCluster on every `up` (docs/dsql-cluster.md).
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:key/[A-Za-z0-9-]+$")
_KMS_ALIAS_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:alias/(?P<alias>[A-Za-z0-9/_-]+)$"
)
# arn:<partition>:iam::<account>:role/<optional path/>name (IAM allows [\w+=,.@-] in names and paths).
# Shared with the dynamic providers, so a value the program accepts is one their configure() accepts.
IAM_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
# arn:<partition>:iam::<account>:policy/<optional path/>name: a customer managed policy (a boundary).
IAM_POLICY_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:policy/([\w+=,.@-]+/)*[\w+=,.@-]{1,128}$")
# A profile name is free text, but the AWS config file's section headers allow no brackets.
AWS_PROFILE_NAME = re.compile(r"^[^\[\]\s]([^\[\]]*[^\[\]\s])?$")
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_TAG_KEY = re.compile(r"^[\w.:/=+@ -]{1,128}$")


@cache
def known_regions() -> frozenset[str]:
    """Region names of every AWS partition, from botocore's own endpoint data (no network)."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition_name=partition)
    )


def parse_config(raw: Mapping[str, str], project: str = PROJECT) -> StackConfig:
    """Build a StackConfig from raw config strings keyed as in Pulumi.yaml (``primaryRegion``...)."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config key {project}:{unknown[0]}; the keys this project reads are "
            f"{', '.join(sorted(KEYS))} (check the spelling)"
        )
    missing = [key for key in REQUIRED if not (raw.get(key) or "").strip()]
    if missing:
        raise ConfigError(
            f"{project}:{missing[0]} is required; set it with `pulumi config set {missing[0]} <region>` "
            "(for example us-east-1)"
        )

    values: dict[str, object] = {}
    for key, value in raw.items():
        if key in RETIRED:
            if str(value).strip():
                raise ConfigError(f"{project}:{RETIRED[key]}")
            continue
        values[KEYS[key]] = _PARSERS.get(key, _text)(key, value, project)
    config = StackConfig(**values)  # type: ignore[arg-type]
    _check_relations(config, project)
    return config


def _check_relations(config: StackConfig, project: str) -> None:
    regions = {
        "primaryRegion": config.primary_region,
        "secondaryRegion": config.secondary_region,
        "witnessRegion": config.witness_region,
    }
    for key, region in regions.items():
        if region not in known_regions():
            raise ConfigError(
                f"{project}:{key} is {region!r}, which is not an AWS region name; use one such as "
                "us-east-1 (Aurora DSQL multi-region pairs use regions of one region set, e.g. "
                "us-east-1, us-east-2 and us-west-2)"
            )
    if config.primary_region == config.secondary_region:
        raise ConfigError(
            f"{project}:secondaryRegion equals primaryRegion ({config.primary_region}); the two "
            "application regions of a multi-region cluster pair must differ"
        )
    if config.witness_region in config.app_regions:
        raise ConfigError(
            f"{project}:witnessRegion ({config.witness_region}) is also an application region; DSQL "
            "needs the witness in a third region (for example us-west-2 for us-east-1 + us-east-2)"
        )
    _check_kms_keys(config, project)
    if (config.domain_name is None) != (config.hosted_zone_id is None):
        given, absent = (
            ("domainName", "hostedZoneId") if config.domain_name else ("hostedZoneId", "domainName")
        )
        raise ConfigError(
            f"{project}:{given} is set but {project}:{absent} is not; global routing needs both "
            "(or neither, to use the two regional URLs only)"
        )
    _check_edge_and_drill(config, project)
    _check_snap_start(config, project)
    if config.auth_replica and config.auth_mode != "cognito":
        raise ConfigError(
            f"{project}:authReplica is true but {project}:authMode is {config.auth_mode!r}; the replica "
            "is a copy of the Cognito user pool: `pulumi config set authMode cognito`, or "
            "`pulumi config set authReplica false`"
        )


def _check_edge_and_drill(config: StackConfig, project: str) -> None:
    """CloudFront and the drill need the custom domain; WAF needs CloudFront."""
    needs_domain = [key for key, on in (("cdn", config.cdn), ("drillSchedule", config.drill_schedule)) if on]
    if needs_domain and config.domain_name is None:
        why = {
            "cdn": "CloudFront serves the custom domain and reaches the regions through origin.<domainName>",
            "drillSchedule": "the drill checks the routing with Route 53 TestDNSAnswer in the hosted zone",
        }[needs_domain[0]]
        raise ConfigError(
            f"{project}:{needs_domain[0]} needs {project}:domainName and {project}:hostedZoneId ({why}); "
            "set both with `pulumi config set domainName api.example.com` and `pulumi config set "
            f"hostedZoneId <zone id>`, or turn {needs_domain[0]} off"
        )
    if config.waf and not config.cdn:
        raise ConfigError(
            f"{project}:waf is true but {project}:cdn is not; the web ACL protects the CloudFront "
            "distribution: `pulumi config set cdn true` (with domainName and hostedZoneId), or "
            "`pulumi config set waf false`"
        )


def _check_snap_start(config: StackConfig, project: str) -> None:
    """SnapStart only where AWS offers it: Python 3.12+ managed runtimes, and not in every region.

    Its other limits cannot arise here: both architectures are supported, and the function has no
    provisioned concurrency, no EFS and the default 512 MB of ephemeral storage.
    """
    if not config.lambda_snap_start:
        return
    version = tuple(int(part) for part in config.lambda_runtime.removeprefix("python").split("."))
    if version < SNAP_START_MIN_PYTHON:
        raise ConfigError(
            f"{project}:lambdaSnapStart needs a python3.12 or later runtime, not {config.lambda_runtime}: "
            f"`pulumi config set lambdaRuntime python3.13`, or `pulumi config set lambdaSnapStart false`"
        )
    for key, region in (
        ("primaryRegion", config.primary_region),
        ("secondaryRegion", config.secondary_region),
    ):
        if region in SNAP_START_UNAVAILABLE_REGIONS:
            raise ConfigError(
                f"{project}:lambdaSnapStart is true but Lambda SnapStart is not offered in {region} "
                f"({project}:{key}); `pulumi config set lambdaSnapStart false`, or use another region"
            )


def _check_kms_keys(config: StackConfig, project: str) -> None:
    """One key per application region or none: each cluster is encrypted with a key of its own region."""
    keys = config.kms_key_arns
    for region, arn in keys.items():
        if region not in config.app_regions:
            raise ConfigError(
                f"{project}:kmsKeyArns has {arn}, a key in {region}, but the clusters are in "
                f"{config.primary_region} and {config.secondary_region}; a KMS key serves only its own "
                "region: give one key ARN from each application region"
            )
    if keys and len(keys) != len(config.app_regions):
        missing = next(region for region in config.app_regions if region not in keys)
        raise ConfigError(
            f"{project}:kmsKeyArns has no key in {missing}; both clusters of the pair are encrypted alike: "
            f"add a key ARN from {missing}, or remove kmsKeyArns to use AWS owned keys"
        )


def _text(key: str, value: str, project: str) -> str | None:
    value = value.strip()
    return value or None


def _boolean(key: str, value: str, project: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigError(f"{project}:{key} must be true or false, not {value!r}")


def _integer(low: int, high: int, allowed: tuple[int, ...] = ()) -> Callable[[str, str, str], int]:
    def parse(key: str, value: str, project: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(f"{project}:{key} must be a whole number, not {value!r}") from None
        if allowed and number not in allowed:
            raise ConfigError(f"{project}:{key} must be one of {', '.join(map(str, allowed))}, not {number}")
        if not low <= number <= high:
            raise ConfigError(f"{project}:{key} must be between {low} and {high}, not {number}")
        return number

    return parse


def _one_of(choices: tuple[str, ...]) -> Callable[[str, str, str], str]:
    def parse(key: str, value: str, project: str) -> str:
        if value.strip() not in choices:
            raise ConfigError(f"{project}:{key} must be one of {', '.join(choices)}, not {value!r}")
        return value.strip()

    return parse


def _matching(pattern: re.Pattern[str], example: str) -> Callable[[str, str, str], str | None]:
    def parse(key: str, value: str, project: str) -> str | None:
        text = value.strip()
        if not text:
            return None
        if not pattern.match(text):
            raise ConfigError(f"{project}:{key} is not valid: {value!r}; expected something like {example}")
        return text

    return parse


def _json_list(key: str, value: str, project: str) -> list:
    try:
        items = json.loads(value) if value.strip() else []
    except json.JSONDecodeError:
        raise ConfigError(
            f"{project}:{key} must be a list; set items with `pulumi config set --path '{key}[0]' <value>`"
        ) from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{project}:{key} must be a list of strings, not {value!r}")
    return items


def _tags(key: str, value: str, project: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in _json_list(key, value, project):
        name, sep, tag_value = item.partition("=")
        if not sep or not _TAG_KEY.match(name.strip()) or name.strip().lower().startswith("aws:"):
            raise ConfigError(
                f"{project}:{key} item {item!r} must be 'key=value' with a key of 1-128 letters, digits "
                "or _.:/=+-@ not starting with aws:"
            )
        tags[name.strip()] = tag_value.strip()
    return tags


def _origins(key: str, value: str, project: str) -> tuple[str, ...]:
    origins = _json_list(key, value, project)
    for origin in origins:
        if origin == "*" or not _ORIGIN.match(origin):
            raise ConfigError(
                f"{project}:{key} item {origin!r} must be an origin such as https://app.example.com "
                "(scheme and host, no path; `*` is refused: name the origins that may call the API)"
            )
    return tuple(origins)


def _kms_keys(key: str, value: str, project: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for arn in _json_list(key, value, project):
        match = _KMS_KEY_ARN.match(arn.strip())
        alias = _KMS_ALIAS_ARN.match(arn.strip())
        if alias:
            raise ConfigError(
                f"{project}:{key} item {arn!r} is an alias ARN; DSQL reports the key's own ARN back, so an "
                "alias would show as drift on every refresh and plan a cluster update on every `up`. Give the "
                f"key ARN: aws kms describe-key --key-id alias/{alias['alias']} --region {alias['region']} "
                "--query KeyMetadata.Arn --output text"
            )
        if not match:
            raise ConfigError(
                f"{project}:{key} item {arn!r} is not a KMS key ARN; expected "
                "arn:aws:kms:<region>:<account>:key/<key id>, one per application region"
            )
        region = match["region"]
        if region in keys:
            raise ConfigError(
                f"{project}:{key} has two keys in {region} ({keys[region]} and {arn.strip()}); give exactly "
                "one key per application region"
            )
        keys[region] = arn.strip()
    return keys


def _domain(key: str, value: str, project: str) -> str | None:
    return _matching(_DOMAIN, "api.example.com")(key, value.strip().lower().rstrip("."), project)


def _auth_mode(key: str, value: str, project: str) -> str:
    mode = value.strip().lower()
    if mode not in AUTH_MODES:
        raise ConfigError(
            f"{project}:{key} must be cognito (a Cognito authorizer on every API method but /health) or "
            f"none (no authentication at all), not {value!r}; fix it with `pulumi config set {key} cognito`"
        )
    return mode


def _drill_schedule(key: str, value: str, project: str) -> str | None:
    if not value.strip():
        return None  # empty: the drill is only run by hand
    try:
        return check_drill_schedule(value)
    except ValueError as problem:
        raise ConfigError(
            f"{project}:{key} is not valid: {problem}; use e.g. {EXAMPLES} with `pulumi config set "
            f"{key} '<expression>'`, or \"\" to schedule no drill"
        ) from None


def _auth_domain_prefix(key: str, value: str, project: str) -> str | None:
    from components.managed_login import check_domain_prefix

    if not value.strip():
        return None  # derived from project, stack and account
    try:
        return check_domain_prefix(value.strip())
    except ValueError as problem:
        raise ConfigError(
            f"{project}:{key} is not valid: {problem}; set e.g. `pulumi config set {key} users-api-prod-login`"
            ', or "" to derive one'
        ) from None


_PARSERS: dict[str, Callable[[str, str, str], object]] = {
    "deletionProtection": _boolean,
    "kmsKeyArns": _kms_keys,
    "tags": _tags,
    "peeringTimeoutSeconds": _integer(60, 7200),
    "lambdaRuntime": _one_of(LAMBDA_RUNTIMES),
    "lambdaArchitecture": _one_of(LAMBDA_ARCHITECTURES),
    "lambdaMemoryMb": _integer(128, 10240),
    "lambdaTimeoutSeconds": _integer(1, 29),
    "lambdaSnapStart": _boolean,
    "logRetentionDays": _integer(1, 3653, LOG_RETENTION_DAYS),
    "stageName": _matching(_STAGE_NAME, "v1"),
    "throttleRateLimit": _integer(1, 10000),
    "throttleBurstLimit": _integer(1, 5000),
    "corsAllowOrigins": _origins,
    "xrayTracing": _boolean,
    "domainName": _domain,
    "hostedZoneId": _matching(_ZONE_ID, "Z0123456789ABCDEFGHIJ"),
    "healthCheckIntervalSeconds": _integer(10, 30, HEALTH_CHECK_INTERVALS),
    "healthCheckFailureThreshold": _integer(1, 10),
    "alarmEmail": _matching(_EMAIL, "oncall@example.com"),
    "awsProfile": _matching(AWS_PROFILE_NAME, "deploy (a profile name from your AWS config file)"),
    "awsAssumeRoleArn": _matching(IAM_ROLE_ARN, "arn:aws:iam::123456789012:role/users-api-deployer"),
    "manageApiGatewayAccount": _boolean,
    "smokeAfterDeploy": _boolean,
    "authMode": _auth_mode,
    "cdn": _boolean,
    "waf": _boolean,
    "wafRateLimit": _integer(10, 2_000_000_000),  # the limits AWS WAF accepts for a rate-based rule
    "drillSchedule": _drill_schedule,
    # Cognito accepts 5 minutes to 1 day for ID and access tokens.
    "tokenValidityMinutes": _integer(5, 1440),
    "permissionsBoundaryArn": _matching(
        IAM_POLICY_ARN, "arn:aws:iam::123456789012:policy/dsql-users-api-boundary (bootstrap output)"
    ),
    "webClient": _boolean,
    "authDomainPrefix": _auth_domain_prefix,
    "authReplica": _boolean,
}


def load_config() -> StackConfig:
    """Read this project's keys from the running stack's configuration with ``pulumi.Config``.

    Only declared keys are read. A misspelt key never reaches the program: Pulumi refuses a stack whose
    config holds a project key that Pulumi.yaml does not declare ("not defined by the project
    configuration"), and tests check every stack file against the declarations with ``parse_config``.
    """
    import pulumi

    check_stack_name(pulumi.get_stack())
    config = pulumi.Config(PROJECT)
    raw = {key: value for key in KEYS if (value := config.get(key)) is not None}
    return parse_config(raw)


# Pulumi accepts letters, digits, "-", "_" and "." in a stack name; the physical names made from it must
# be valid for every service: Lambda function names and Scheduler schedule names allow no "."
# (botocore's patterns), and components/naming.py fits the length.
_STACK_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def check_stack_name(stack: str) -> None:
    if not _STACK_NAME.match(stack):
        raise ConfigError(
            f"stack name {stack!r} cannot name this project's resources: Lambda function and schedule names "
            "allow only letters, digits, '-' and '_'. Rename it: `pulumi stack rename <new name>`"
        )
