"""Run the Pulumi program under Pulumi's mocks and keep everything it registered, for assertions.

``run_program()`` sets the mocks and the stack config BEFORE the program file is executed (otherwise
nothing would reach the mocks and tests would pass vacuously), runs ``__main__.py`` the way the
language host does, waits for every registration, and returns the registered resources with the
region of the provider each one is bound to, and the resolved stack outputs.

``preview=True`` runs it as ``pulumi preview`` runs a new stack: the mocks answer a registration with
its inputs only, as the engine plans a create, so every computed output (ids, ARNs, anything derived
from them) is unknown, and ``apply`` callbacks on them never run. Unknown inputs reach the mocks as
None; unknown exports resolve to ``UNKNOWN``.

Only public SDK APIs are used: ``reset_options``, ``set_mocks``, ``set_all_config``,
``register_stack_transformation`` and ``pulumi.runtime.test`` (which waits for every outstanding
registration). Exports are recorded by wrapping ``pulumi.export`` for the run.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import yaml

from components.config import PROJECT

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "__main__.py"
ACCOUNT = "123456789012"
AWS_PROVIDER = "pulumi:providers:aws"


@dataclass
class Registered:
    """One resource the program registered: its type, name, inputs, outputs and provider region."""

    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    provider: str | None
    region: str | None


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs by name; ``UNKNOWN`` where a preview cannot know the value yet."""
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    """Resource name -> names in its ``depends_on`` option (mocks never see dependencies)."""
    retained: set[str] = field(default_factory=set)
    """Names of resources registered with ``retain_on_delete``."""
    parents: dict[str, str] = field(default_factory=dict)
    """Resource name -> its parent's name (mocks never see the parent; tools.diagram draws the tree)."""

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, region: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if region is None or r.region == region]
        assert len(found) == 1, f"expected one {typ} in {region or 'any region'}, found {len(found)}"
        return found[0]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]


UNKNOWN = "<unknown in preview>"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would, with plausible ids and ARNs, and records every registration.

    In a preview it answers as the engine plans a create: the inputs, no id, no computed outputs. With
    ``unknown_outputs_of``, only resources of those types are answered so (e.g. a dynamic resource that
    a preview plans to update: a Python dynamic provider cannot preview, so the engine takes its new
    inputs as its outputs); the others answer as resources that already exist.
    """

    def __init__(self, preview: bool = False, unknown_outputs_of: frozenset[str] | None = None) -> None:
        self.preview = preview
        self.unknown_outputs_of = unknown_outputs_of
        self.run = ProgramRun()
        self.provider_regions: dict[str, str] = {}  # provider resource id -> region

    def region_of(self, provider: str | None) -> str | None:
        if not provider:
            return None
        return self.provider_regions.get(provider.rsplit("::", 1)[-1])

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id = f"{args.name}-id"
        outputs = dict(args.inputs)
        region = self.region_of(args.provider)
        if args.typ == AWS_PROVIDER:
            self.provider_regions[resource_id] = args.inputs.get("region")
            region = args.inputs.get("region")
        planned = self.unknown_outputs_of is None or args.typ in self.unknown_outputs_of
        if self.preview and planned and args.typ != AWS_PROVIDER:
            self.run.resources.append(
                Registered(args.typ, args.name, dict(args.inputs), outputs, args.provider, region)
            )
            return "", outputs
        outputs.update(_fake_outputs(args.typ, args.name, resource_id, region, args.inputs))
        self.run.resources.append(
            Registered(args.typ, args.name, dict(args.inputs), outputs, args.provider, region)
        )
        return outputs.get("id", resource_id), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        region = self.region_of(args.provider) or "us-east-1"
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token == "aws:route53/getZone:getZone":
            return {
                "zoneId": args.args.get("zoneId"),
                "name": "example.com.",
                "nameServers": ["ns-2048.awsdns-64.com", "ns-2049.awsdns-65.net", "ns-2050.awsdns-66.org"],
                "id": args.args.get("zoneId"),
            }
        if args.token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {
                "json": json.dumps({"Version": "2012-10-17", "Statement": args.args.get("statements", [])})
            }
        return {}


def _fake_outputs(typ: str, name: str, resource_id: str, region: str | None, inputs: dict) -> dict:
    """The computed outputs AWS would add for the resource types this program uses."""
    region = region or "us-east-1"
    if typ == "pulumi-python:dynamic/cognito:UserPoolReplica":  # same pool ID, the replica's region
        pool = inputs.get("user_pool_id")
        return {
            "user_pool_arn": f"arn:aws:cognito-idp:{inputs.get('replica_region')}:{ACCOUNT}:userpool/{pool}"
        }
    if typ == "pulumi-python:dynamic/cognito:PoolReplicationSettings":
        pool, home = inputs.get("user_pool_id"), inputs.get("region")
        return {"issuer_url": f"https://issuer-cognito-idp.{home}.amazonaws.com/{pool}"}
    if typ == "aws:kms/key:Key":  # a multi-Region key's ID starts with mrk-
        key_id = "mrk-" + hashlib.sha256(name.encode()).hexdigest()[:32]
        return {"id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"}
    if typ == "aws:kms/replicaKey:ReplicaKey":  # the primary's key ID, in the replica's region
        key_id = str(inputs.get("primaryKeyArn", "")).rsplit("/", 1)[-1]
        return {"id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"}
    if typ == "aws:dsql/cluster:Cluster":
        identifier = (name.replace("-", "") + "a" * 26)[:26]
        return {
            "id": identifier,
            "identifier": identifier,
            "arn": f"arn:aws:dsql:{region}:{ACCOUNT}:cluster/{identifier}",
            "vpcEndpointServiceName": f"com.amazonaws.{region}.dsql-{identifier[:4]}",
        }
    if typ == "aws:iam/role:Role":
        return {
            "arn": f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name') or name}",
            "name": inputs.get("name") or name,
        }
    if typ == "aws:lambda/function:Function":
        arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{inputs.get('name') or name}"
        return {
            "arn": arn,
            "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            "name": inputs.get("name") or name,
            # publish=True makes a numbered version; otherwise Lambda reports $LATEST.
            "version": "1" if inputs.get("publish") else "$LATEST",
        }
    if typ == "pulumi-python:dynamic/lambda:PublishedVersion":
        return {"state": "Active", "active_version": inputs.get("version")}  # after the wait
    if typ == "aws:lambda/alias:Alias":
        arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{inputs.get('functionName')}:{inputs.get('name')}"
        return {
            "arn": arn,
            "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        }
    if typ == "aws:lambda/layerVersion:LayerVersion":
        return {"arn": f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:1"}
    if typ == "aws:apigateway/restApi:RestApi":
        api_id = (name.replace("-", "")[:10] + "0000000000")[:10]
        return {
            "id": api_id,
            "rootResourceId": "root00",
            "executionArn": f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}",
        }
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        return {"arn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{inputs.get('name') or name}"}
    if typ == "aws:sns/topic:Topic":
        return {"arn": f"arn:aws:sns:{region}:{ACCOUNT}:{inputs.get('name') or name}"}
    if typ == "aws:acm/certificate:Certificate":
        return {
            "arn": f"arn:aws:acm:{region}:{ACCOUNT}:certificate/{name}",
            "domainValidationOptions": [
                {
                    "domainName": inputs.get("domainName"),
                    "resourceRecordName": f"_x.{inputs.get('domainName')}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": "_y.acm-validations.aws.",
                }
            ],
        }
    if typ == "aws:apigateway/stage:Stage":
        return {
            "invokeUrl": f"https://{inputs.get('restApi')}.execute-api.{region}.amazonaws.com/"
            f"{inputs.get('stageName')}",
            "executionArn": f"arn:aws:execute-api:{region}:{ACCOUNT}:{inputs.get('restApi')}/"
            f"{inputs.get('stageName')}",
        }
    if typ == "command:local:Command":
        # The layer build prints the zip's base64 sha256 last.
        return {"stdout": f"built\n{name}-sha256=", "stderr": ""}
    if typ == "aws:apigateway/domainName:DomainName":
        return {
            "regionalDomainName": f"d-{name}.execute-api.{region}.amazonaws.com",
            "regionalZoneId": "ZREGIONAL",
        }
    if typ == "aws:cognito/userPool:UserPool":
        pool_id = f"{region}_" + (name.replace("-", "") + "A" * 9)[:9]
        return {
            "id": pool_id,
            "arn": f"arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{pool_id}",
            "endpoint": f"cognito-idp.{region}.amazonaws.com/{pool_id}",
        }
    if typ == "aws:cloudfront/distribution:Distribution":
        distribution_id = "E" + (name.replace("-", "").upper() + "0" * 13)[:13]
        return {
            "id": distribution_id,
            "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution_id}",
            "domainName": f"d{distribution_id.lower()}.cloudfront.net",
            "hostedZoneId": "Z2FDTNDATAQYW2",
        }
    if typ == "aws:s3/bucket:Bucket":
        bucket = (
            inputs.get("bucket") or f"{inputs.get('bucketPrefix') or name + '-'}20261206abcdef0123456789ab"
        )
        return {
            "id": bucket,
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
        }
    if typ == "aws:cloudfront/originAccessControl:OriginAccessControl":
        return {"id": "E2OACEXAMPLE01"}
    if typ == "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy":
        return {"id": f"{name}-policy-id"}
    if typ == "aws:secretsmanager/secret:Secret":  # Secrets Manager adds a 6-character suffix to the name
        return {
            "arn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{inputs.get('name') or name}-AbCdEf"
        }
    if typ == "aws:cognito/userPoolDomain:UserPoolDomain":
        return {
            "id": inputs.get("domain"),
            "cloudfrontDistribution": "d111111abcdef8.cloudfront.net",
            "cloudfrontDistributionZoneId": "Z2FDTNDATAQYW2",
        }
    return {"arn": f"arn:aws:mock:{region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{name}"}


def _dependency_recorder(run: ProgramRun) -> Callable[[pulumi.ResourceTransformationArgs], None]:
    """A stack transformation that notes each resource's explicit depends_on, changing nothing.

    (A legacy transformation, not register_resource_transform: that one needs the engine's callback
    service, which mocks do not provide.)
    """

    names: dict[int, str] = {}  # id(resource object) -> its name, to name the depends_on entries

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        names[id(args.resource)] = args.name
        opts = args.opts
        if opts is not None and opts.retain_on_delete:
            run.retained.add(args.name)
        if opts is not None and isinstance(opts.parent, pulumi.Resource) and id(opts.parent) in names:
            run.parents[args.name] = names[id(opts.parent)]
        depends_on = opts.depends_on if opts else None
        if isinstance(depends_on, pulumi.Resource):
            depends_on = [depends_on]
        if isinstance(depends_on, list):
            run.depends_on[args.name] = [names.get(id(d), repr(d)) for d in depends_on]

    return record


def stack_config(stack: str = "prod") -> dict[str, Any]:
    """The stack file's config for this project, keyed without the project prefix."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in document["config"].items() if key.startswith(prefix)}


def run_program(
    overrides: Mapping[str, Any] | None = None,
    *,
    stack: str = "prod",
    program: Callable[[], object] | None = None,
    preview: bool = False,
    unknown_outputs_of: set[str] | None = None,
    stack_name: str | None = None,
) -> ProgramRun:
    """Run __main__.py (or ``program``, e.g. one component) under mocks with the stack's config,
    changed by ``overrides`` (a None value removes the key); ``preview`` as ``pulumi preview`` would
    (of a new stack, or, with ``unknown_outputs_of``, of a deployed stack where only resources of those
    types have outputs the preview cannot know). ``stack_name`` runs the stack file's config under another
    stack name (names derived from it, e.g. the longest one accepted)."""
    config = stack_config(stack)
    stack = stack_name or stack
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    raw = {
        f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }

    unknown = frozenset(unknown_outputs_of) if unknown_outputs_of is not None else None
    mocks = RecordingMocks(preview=preview, unknown_outputs_of=unknown)
    pulumi.runtime.reset_options(project=PROJECT, stack=stack, preview=preview)  # a fresh root stack
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview)
    pulumi.runtime.register_stack_transformation(_dependency_recorder(mocks.run))
    pulumi.runtime.set_all_config(raw)
    exports: dict[str, Any] = {}

    def record_export(name: str, value: Any) -> None:
        exports[name] = value

    async def resolve_exports() -> None:
        for name, value in exports.items():
            output = pulumi.Output.from_input(value)
            known = await output.is_known()
            mocks.run.outputs[name] = await output.future() if known else UNKNOWN

    def body() -> Any:
        with mock.patch.object(pulumi, "export", record_export):
            if program is not None:
                program()
            else:
                runpy.run_path(str(PROGRAM), run_name="__main__")
        return resolve_exports()

    # pulumi.runtime.test runs the body in the SDK's event loop and waits for every registration.
    pulumi.runtime.test(body)()
    return mocks.run
