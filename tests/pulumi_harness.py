"""Run the Pulumi program under Pulumi's mocks and keep everything it registered, for assertions.

``run_program()`` sets the mocks and the stack config BEFORE the program file is executed (otherwise
nothing would reach the mocks and tests would pass vacuously), runs ``__main__.py`` the way the
language host does, waits for every registration, and returns the registered resources with the
region of the provider each one is bound to, and the resolved stack outputs.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

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
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    """Resource name -> names in its ``depends_on`` option (mocks never see dependencies)."""

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


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would, with plausible ids and ARNs, and records every registration."""

    def __init__(self) -> None:
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
        if args.token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {
                "json": json.dumps({"Version": "2012-10-17", "Statement": args.args.get("statements", [])})
            }
        return {}


def _fake_outputs(typ: str, name: str, resource_id: str, region: str | None, inputs: dict) -> dict:
    """The computed outputs AWS would add for the resource types this program uses."""
    region = region or "us-east-1"
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
    return {"arn": f"arn:aws:mock:{region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{name}"}


def _dependency_recorder(run: ProgramRun) -> Callable[[pulumi.ResourceTransformationArgs], None]:
    """A stack transformation that notes each resource's explicit depends_on, changing nothing.

    (A legacy transformation, not register_resource_transform: that one needs the engine's callback
    service, which mocks do not provide.)
    """

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        depends_on = args.opts.depends_on if args.opts else None
        if isinstance(depends_on, pulumi.Resource):
            depends_on = [depends_on]
        if isinstance(depends_on, list):
            run.depends_on[args.name] = [getattr(d, "_name", repr(d)) for d in depends_on]

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
) -> ProgramRun:
    """Run __main__.py (or ``program``, e.g. one component) under mocks with the stack's config,
    changed by ``overrides`` (a None value removes the key)."""
    config = stack_config(stack)
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    raw = {
        f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }

    mocks = RecordingMocks()
    settings.ROOT.set(None)  # a fresh root stack for every run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.register_stack_transformation(_dependency_recorder(mocks.run))
    pulumi.runtime.set_all_config(raw)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    body = program or (lambda: runpy.run_path(str(PROGRAM), run_name="__main__"))
    _sync_await(run_pulumi_func(body))

    root = settings.get_root_resource()
    exported = getattr(root, "outputs", {}) or {}
    mocks.run.outputs = {
        name: _sync_await(pulumi.Output.from_input(value).future()) for name, value in exported.items()
    }
    return mocks.run
