"""The Pulumi program: config -> one provider per region -> components -> stack outputs."""

import dataclasses

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.auth_replica import AuthReplica, AuthReplicaArgs
from components.boundary import register_boundary
from components.config import load_config
from components.drill_identity import DrillIdentityArgs
from components.dsql_cluster import DsqlMultiRegionCluster, DsqlMultiRegionClusterArgs
from components.dynamic.migration import SchemaMigration
from components.edge import Edge, EdgeArgs, origin_name
from components.failover_drill import DrillTiming, FailoverDrill, FailoverDrillArgs
from components.global_routing import GlobalRouting, GlobalRoutingArgs, RegionalEndpoint
from components.identity import PASSWORD_POLICY, Identity, IdentityArgs
from components.lambda_artifact import LambdaArtifacts, LambdaArtifactsArgs
from components.managed_login import (
    ManagedLogin,
    ManagedLoginArgs,
    custom_domain_host,
    default_domain_prefix,
    prefix_domain_host,
)
from components.monitoring import ROUTE53_METRICS_REGION, MonitoredRegion, Monitoring, MonitoringArgs
from components.probe_artifact import ProbeArtifacts
from components.regional_app import RegionalApp, RegionalAppArgs
from components.smoke_check import SmokeCheck, SmokeCheckArgs
from components.web_client import (
    WebContent,
    WebContentArgs,
    WebDomain,
    WebHosting,
    WebHostingArgs,
    client_settings,
    identity_endpoints,
    web_host,
)
from migrations.runner import load_migrations

# Validated before anything is registered: a bad key fails here with the key's name and the fix.
config = load_config()
tags = {"project": pulumi.get_project(), "stack": pulumi.get_stack(), **config.tags}
# Before the first resource: every IAM role of the stack, in any component, carries the boundary.
register_boundary(config.permissions_boundary_arn)


def regional_provider(region: str) -> aws.Provider:
    """An explicit provider for ``region``: the stack's AWS access setting, and its tags on every resource.

    The dynamic resources read the same awsProfile/awsAssumeRoleArn keys in their configure(), so every
    AWS call of the deployment is made by one identity.
    """
    return aws.Provider(
        f"aws-{region}",
        region=region,
        profile=config.aws_profile,
        assume_roles=(
            [
                aws.ProviderAssumeRoleArgs(
                    role_arn=config.aws_assume_role_arn,
                    session_name=f"{pulumi.get_project()}-{pulumi.get_stack()}"[:64],
                )
            ]
            if config.aws_assume_role_arn
            else None
        ),
        default_tags=aws.ProviderDefaultTagsArgs(tags=tags),
    )


# One explicit provider per application region; the default provider is disabled in the stack config.
providers = {region: regional_provider(region) for region in config.app_regions}
# Route 53 health check metrics and CloudFront's certificates exist only in us-east-1: a provider there,
# unless it is an app region.
health_alarm_provider = (
    None if ROUTE53_METRICS_REGION in providers else regional_provider(ROUTE53_METRICS_REGION)
)
us_east_1_provider = health_alarm_provider or providers[ROUTE53_METRICS_REGION]

database = DsqlMultiRegionCluster(
    "users-db",
    DsqlMultiRegionClusterArgs(
        primary_region=config.primary_region,
        primary_provider=providers[config.primary_region],
        secondary_region=config.secondary_region,
        secondary_provider=providers[config.secondary_region],
        witness_region=config.witness_region,
        deletion_protection=config.deletion_protection,
        kms_key_arns=config.kms_key_arns,
        peering_timeout_seconds=config.peering_timeout_seconds,
    ),
)

# Once for the pair (DSQL replicates the schema), on the primary, after the pair is ACTIVE.
schema = SchemaMigration(
    "users-schema",
    endpoint=database.primary.endpoint,
    region=config.primary_region,
    migrations=load_migrations(),
    opts=pulumi.ResourceOptions(depends_on=[database.peering]),
)

pulumi.export(
    "dsqlClusters",
    {
        cluster.region: {"id": cluster.identifier, "arn": cluster.arn, "endpoint": cluster.endpoint}
        for cluster in database.clusters
    },
)
pulumi.export("witnessRegion", config.witness_region)
pulumi.export("schemaVersion", schema.schema_version)

# The dependency layer is built once on this machine (for Lambda's platform) and uploaded per region.
artifacts = LambdaArtifacts(
    "users-api-lambda",
    LambdaArtifactsArgs(architecture=config.lambda_architecture, runtime=config.lambda_runtime),
)

# Managed login (docs/web-hosting.md): on auth.<domainName>, or a Cognito prefix domain without a domain.
# The web client is served where TLS 1.2 can be enforced, i.e. on the custom domain: the cdn
# distribution's own name, or app.<domainName> (CloudFront's default certificate accepts TLS 1.0).
managed_login_on = config.web_client and config.auth_mode == "cognito"
# The regions whose Cognito holds the pool: the primary, and with authReplica the secondary's replica.
identity_regions = [config.primary_region, *([config.secondary_region] if config.auth_replica else [])]
web: WebHosting | None = None
web_origin: str | None = None
auth_host: pulumi.Input[str] | None = None
auth_domain_prefix: pulumi.Input[str] | None = None
if managed_login_on:
    if config.domain_name:
        auth_host = custom_domain_host(config.domain_name)
    else:
        auth_domain_prefix = config.auth_domain_prefix or aws.get_caller_identity_output(
            opts=pulumi.InvokeOptions(provider=providers[config.primary_region])
        ).account_id.apply(
            lambda account: default_domain_prefix(pulumi.get_project(), pulumi.get_stack(), account)
        )
        auth_host = pulumi.Output.from_input(auth_domain_prefix).apply(
            lambda prefix: prefix_domain_host(prefix, config.primary_region)
        )
if managed_login_on and config.domain_name and config.hosted_zone_id and auth_host is not None:
    host = web_host(config.domain_name, config.cdn)
    web_origin = f"https://{host}"
    web = WebHosting(
        "users-web",
        WebHostingArgs(
            regions=list(config.app_regions),
            auth_origin=pulumi.Output.from_input(auth_host).apply(lambda name: f"https://{name}"),
            extra_connect_origins=[url.rstrip("/") for url in identity_endpoints(identity_regions).values()],
            own_domain=None
            if config.cdn
            else WebDomain(
                name=host,
                hosted_zone_id=config.hosted_zone_id,
                us_east_1_provider=us_east_1_provider,
                dns_provider=providers[config.primary_region],
            ),
            tags=config.tags,
        ),
        opts=pulumi.ResourceOptions(provider=providers[config.primary_region]),
    )
elif managed_login_on:
    pulumi.log.info(
        "webClient: managed login and `python -m tools.token` are deployed; the web client itself needs "
        "domainName and hostedZoneId (it is served over TLS 1.2+ on app.<domainName>, or on domainName "
        "with cdn)"
    )
elif config.web_client:
    pulumi.log.warn(
        "webClient is on but authMode is none: the web client signs in through Cognito, so none is "
        "deployed; `pulumi config set webClient false` silences this"
    )
# The APIs answer the web client's origin with CORS headers.
app_settings = (
    dataclasses.replace(config, cors_allow_origins=(*config.cors_allow_origins, web_origin))
    if web_origin and web_origin not in config.cors_allow_origins
    else config
)

# One Cognito user pool for both regions, in the primary (pools are regional; API Gateway accepts a pool
# of another region). authMode none is an explicit opt-out, warned about on every preview and up.
identity = (
    Identity(
        "users-identity",
        IdentityArgs(
            region=config.primary_region,
            deletion_protection=config.deletion_protection,
            token_validity_minutes=config.token_validity_minutes,
            managed_login_client=managed_login_on,
            web_origin=web_origin,
        ),
        opts=pulumi.ResourceOptions(provider=providers[config.primary_region]),
    )
    if config.auth_mode == "cognito"
    else None
)
if identity is None:
    pulumi.log.warn(
        "authMode is none: both regional APIs are open to anyone, and no user pool is created; "
        "set it back with `pulumi config set authMode cognito`"
    )
else:
    pulumi.export("userPoolId", identity.user_pool_id)
    pulumi.export("userPoolArn", identity.user_pool_arn)
    pulumi.export("userPoolClientId", identity.user_pool_client_id)
    pulumi.export("userPoolIssuer", identity.issuer_url)
    pulumi.export("userPoolSmokeClientId", identity.smoke_client_id)

# With authReplica, the pool is replicated to the secondary region and each region's authorizer names
# its own region's pool ARN (docs/identity.md); without it, both name the primary's pool.
user_pool_arns: dict[str, pulumi.Input[str]] = {}
auth_replica: AuthReplica | None = None
if identity is not None:
    user_pool_arns = {region: identity.user_pool_arn for region in config.app_regions}
if identity is not None and config.auth_replica:
    auth_replica = AuthReplica(
        "users-identity-replication",
        AuthReplicaArgs(
            user_pool_id=identity.user_pool_id,
            primary_region=config.primary_region,
            secondary_region=config.secondary_region,
            primary_provider=providers[config.primary_region],
            secondary_provider=providers[config.secondary_region],
            deletion_protection=config.deletion_protection,
            tags=tags,
        ),
    )
    user_pool_arns.update(auth_replica.user_pool_arns)
    pulumi.export("userPoolIssuer", auth_replica.issuer_url)
    pulumi.export("userPoolArns", user_pool_arns)

# One API per region against its own cluster; each function waits for the schema and its role mapping.
apps = {
    cluster.region: RegionalApp(
        f"users-api-{cluster.region}",
        RegionalAppArgs(
            region=cluster.region,
            settings=app_settings,
            cluster_arn=cluster.arn,
            cluster_endpoint=cluster.endpoint,
            schema=schema,
            artifacts=artifacts,
            user_pool_arn=user_pool_arns.get(cluster.region),
            user_pool_client_ids=identity.client_ids if identity else (),
            manage_api_gateway_account=config.manage_api_gateway_account,
        ),
        opts=pulumi.ResourceOptions(provider=providers[cluster.region]),
    )
    for cluster in database.clusters
}
pulumi.export("invokeUrls", {region: app.invoke_url for region, app in apps.items()})

# With smokeAfterDeploy, `pulumi up` ends with the acceptance checks against both regions.
if config.smoke_after_deploy:
    SmokeCheck(
        "users-api-smoke",
        SmokeCheckArgs(
            invoke_urls=[app.invoke_url for app in apps.values()],
            triggers=[artifacts.code_hash, artifacts.layer_hash, schema.schema_version],
            user_pool_id=identity.user_pool_id if identity else None,
            smoke_client_id=identity.smoke_client_id if identity else None,
            aws_profile=config.aws_profile,
            assume_role_arn=config.aws_assume_role_arn,
            depends_on=list(apps.values()),
        ),
        opts=pulumi.ResourceOptions(providers=[command.Provider("local-command")]),
    )

# Health checks on each region's /health and, with a domain, latency records that leave a failed region.
routing = GlobalRouting(
    "users-api-routing",
    GlobalRoutingArgs(
        endpoints=[
            RegionalEndpoint(region, providers[region], app.invoke_url, app.api_id, app.stage_name)
            for region, app in apps.items()
        ],
        # Route 53 health checks and records are global: the primary's provider only signs the calls.
        dns_provider=providers[config.primary_region],
        health_check_interval_seconds=config.health_check_interval_seconds,
        health_check_failure_threshold=config.health_check_failure_threshold,
        domain_name=config.domain_name,
        hosted_zone_id=config.hosted_zone_id,
        # With CloudFront the regions serve origin.<domain>, and domainName aliases the distribution.
        record_name=origin_name(config.domain_name) if config.cdn and config.domain_name else None,
    ),
)

monitoring = Monitoring(
    "users-api-ops",
    MonitoringArgs(
        regions=[
            MonitoredRegion(
                region=region,
                provider=providers[region],
                function_name=app.function_name,
                rest_api_name=app.function_name,  # RegionalApp names its REST API after its function
                stage_name=app.stage_name,
                health_check_id=routing.health_check_ids[region],
                cluster_identifier=database.in_region(region).identifier,
            )
            for region, app in apps.items()
        ],
        alarm_email=config.alarm_email,
        health_alarm_provider=health_alarm_provider,
        # The managed-login domain follows the primary's health check to the replica (docs/identity.md).
        sign_in_failover=(config.primary_region, config.secondary_region)
        if managed_login_on and auth_replica
        else None,
    ),
)
pulumi.export("healthCheckIds", routing.health_check_ids)
pulumi.export("alarmTopicArns", monitoring.topic_arns)
pulumi.export("dashboardName", monitoring.dashboard_name)
pulumi.export("runbookArns", monitoring.runbook_arns)
if routing.global_url is not None:
    pulumi.export("globalUrl", routing.global_url)

# CloudFront (viewer certificate and WAF in us-east-1) in front of origin.<domain>; see docs/operations.md.
edge: Edge | None = None
if config.cdn and config.domain_name and config.hosted_zone_id and routing.record_name:
    edge = Edge(
        "users-api-edge",
        EdgeArgs(
            domain_name=config.domain_name,
            hosted_zone_id=config.hosted_zone_id,
            origin_domain_name=routing.record_name,
            us_east_1_provider=us_east_1_provider,
            dns_provider=providers[config.primary_region],
            waf=config.waf,
            waf_rate_limit=config.waf_rate_limit,
            web=web,
            origin_resources=[routing],
        ),
    )
    pulumi.export("cdnDomainName", edge.distribution_domain_name)
    pulumi.export("cdnDistributionId", edge.distribution_id)
    if edge.web_acl_arn is not None:
        pulumi.export("webAclArn", edge.web_acl_arn)

# Managed login on its domain, then the client's files and config.json (which name the APIs, the domain
# and the client): after the routing or the edge, whose records the custom domain's parent needs.
if identity is not None and identity.web_client_id is not None and auth_host is not None:
    managed_login = ManagedLogin(
        "users-login",
        ManagedLoginArgs(
            region=config.primary_region,
            user_pool_id=identity.user_pool_id,
            client_id=identity.web_client_id,
            domain_prefix=auth_domain_prefix,
            custom_domain=custom_domain_host(config.domain_name) if config.domain_name else None,
            hosted_zone_id=config.hosted_zone_id,
            us_east_1_provider=us_east_1_provider,
            dns_provider=providers[config.primary_region],
            # Cognito checks that the custom domain's parent (domainName) has an A record.
            after=[routing, *([edge] if edge else [])] if config.domain_name else [],
            # With authReplica, sign-in follows the primary region's health check to the replica.
            failover_region=config.secondary_region if auth_replica else None,
            failover_health_check_id=routing.health_check_ids[config.primary_region]
            if auth_replica
            else None,
            failover_after=[auth_replica.replica] if auth_replica else [],
        ),
        opts=pulumi.ResourceOptions(provider=providers[config.primary_region]),
    )
    pulumi.export("authDomain", managed_login.domain)
    pulumi.export("webClientId", identity.web_client_id)
    if web is not None:
        distribution = edge or web.distribution
        assert distribution is not None  # the edge with cdn, else the client's own
        WebContent(
            "users-web-content",
            WebContentArgs(
                hosting=web,
                distribution_arn=distribution.distribution_arn
                if isinstance(distribution, Edge)
                else distribution.arn,
                settings=pulumi.Output.all(
                    pulumi.Output.all(**{region: app.invoke_url for region, app in apps.items()}),
                    managed_login.domain,
                    identity.web_client_id,
                    identity.user_pool_id,
                ).apply(
                    lambda values: client_settings(
                        values[0], values[1], values[2], values[3], identity_regions
                    )
                ),
            ),
            opts=pulumi.ResourceOptions(provider=providers[config.primary_region]),
        )
        pulumi.export("webUrl", web_origin)
        pulumi.export("webBucketName", web.bucket_name)

# The failover drill needs the hosted zone: its probe asks the zone's own name servers, then the domain
# over HTTPS; it reports to the primary region's topic (docs/operations.md). With authReplica, a drill of
# the primary also signs in and refreshes at the replica, as a user of its own that the API refuses.
if (
    config.hosted_zone_id
    and config.domain_name
    and routing.regions_record_name
    and routing.region_record_name
):
    probe_artifacts = ProbeArtifacts(
        "drill-probe",
        LambdaArtifactsArgs(architecture=config.lambda_architecture, runtime=config.lambda_runtime),
    )
    drill = FailoverDrill(
        "users-api-drill",
        FailoverDrillArgs(
            provider=providers[config.primary_region],
            health_check_ids=routing.health_check_ids,
            hosted_zone_id=config.hosted_zone_id,
            regions_record_name=routing.regions_record_name,
            region_record_name=routing.region_record_name,
            domain=config.domain_name,
            invoke_urls={region: app.invoke_url for region, app in apps.items()},
            probe_artifacts=probe_artifacts,
            topic_arn=monitoring.topic_arns[config.primary_region],
            timing=DrillTiming.for_health_checks(
                config.health_check_interval_seconds, config.health_check_failure_threshold
            ),
            scheduled_region=config.secondary_region,
            schedule=config.drill_schedule,
            log_retention_days=config.log_retention_days,
            identity=DrillIdentityArgs(
                user_pool_id=identity.user_pool_id,
                primary_region=config.primary_region,
                secondary_region=config.secondary_region,
                password_policy=PASSWORD_POLICY,
            )
            if identity is not None and auth_replica is not None
            else None,
        ),
    )
    pulumi.export("failoverDrillArn", drill.state_machine_arn)
