"""Drive the dynamic providers the way the Pulumi engine does, and a moto_server for them to call.

``ProviderServer`` starts the SDK's own dynamic-provider server, ``python -m pulumi.dynamic``, as the
engine does: a child process whose working directory is the project root, which prints its port on
stdout. The test then speaks gRPC to it with the SDK's own stubs (``pulumi.runtime.proto``) and
properties serialized as the engine sends them: a ``google.protobuf.Struct`` whose unknown values are
the engine's sentinel string, with ``__provider`` holding the provider exactly as the program
serializes it (``pulumi.dynamic.dynamic.serialize_provider``; the engine strips its secret wrapper
because the server does not accept secrets).

``MotoServer`` runs ``moto.server`` as a separate process on a free loopback port, so the provider
server reaches it through ``AWS_ENDPOINT_URL`` like any boto3 program.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
HOOKS = Path(__file__).resolve().parent / "engine_hooks"
UNKNOWN = rpc.UNKNOWN  # what the engine puts in a Struct for a value it does not know yet
STACK, PROJECT = "test", "dsql-users-api"
START_TIMEOUT_SECONDS = 60
CALL_TIMEOUT_SECONDS = 120


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties as the engine marshals them (numbers become doubles, as in JSON)."""
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct the server returned, as plain Python values (the sentinel stays a string)."""
    return MessageToDict(message)


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::pulumi-python:{type_token}::{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ProviderServer:
    """One ``python -m pulumi.dynamic`` process and a gRPC stub to it."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        # -u as the engine's pulumi-resource-pulumi-python shim runs it: the server writes its port
        # without a flush, so a buffered stdout (no PYTHONUNBUFFERED, as on hosted runners) never sends it.
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic"],
            cwd=ROOT,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        port = self._read_port(log_path)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_SECONDS)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def _read_port(self, log_path: Path) -> int:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()  # the server prints its port first
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"provider server printed {line!r}, not a port: {log_path.read_text()}")
        return int(line)

    def configure(self, config: Mapping[str, str]) -> provider_pb2.ConfigureResponse:
        request = provider_pb2.ConfigureRequest(
            args=struct(config), variables=dict(config), acceptSecrets=True, acceptResources=True
        )
        return self.stub.Configure(request, timeout=CALL_TIMEOUT_SECONDS)

    def check(self, type_token: str, name: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        request = provider_pb2.CheckRequest(urn=urn(type_token, name), olds=struct(olds), news=struct(news))
        return self.stub.Check(request, timeout=CALL_TIMEOUT_SECONDS)

    def diff(
        self,
        type_token: str,
        name: str,
        resource_id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        old_inputs: Mapping[str, Any],
    ) -> Any:
        request = provider_pb2.DiffRequest(
            id=resource_id,
            urn=urn(type_token, name),
            olds=struct(olds),
            news=struct(news),
            old_inputs=struct(old_inputs),
        )
        return self.stub.Diff(request, timeout=CALL_TIMEOUT_SECONDS)

    def create(self, type_token: str, name: str, properties: Mapping[str, Any]) -> Any:
        request = provider_pb2.CreateRequest(urn=urn(type_token, name), properties=struct(properties))
        return self.stub.Create(request, timeout=CALL_TIMEOUT_SECONDS)

    def read(
        self,
        type_token: str,
        name: str,
        resource_id: str,
        properties: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> Any:
        request = provider_pb2.ReadRequest(
            id=resource_id, urn=urn(type_token, name), properties=struct(properties), inputs=struct(inputs)
        )
        return self.stub.Read(request, timeout=CALL_TIMEOUT_SECONDS)

    def update(
        self,
        type_token: str,
        name: str,
        resource_id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        old_inputs: Mapping[str, Any],
    ) -> Any:
        request = provider_pb2.UpdateRequest(
            id=resource_id,
            urn=urn(type_token, name),
            olds=struct(olds),
            news=struct(news),
            old_inputs=struct(old_inputs),
        )
        return self.stub.Update(request, timeout=CALL_TIMEOUT_SECONDS)

    def delete(self, type_token: str, name: str, resource_id: str, properties: Mapping[str, Any]) -> Any:
        request = provider_pb2.DeleteRequest(
            id=resource_id, urn=urn(type_token, name), properties=struct(properties)
        )
        return self.stub.Delete(request, timeout=CALL_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if hasattr(self, "channel"):
            self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def with_provider(provider: Any, props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs the engine sends: the program's properties plus the serialized provider."""
    return {**props, "__provider": serialize_provider(provider)}


class MotoServer:
    """``python -m moto.server`` on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):  # noqa: S310 - loopback
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start: {log_path.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def server_environment(aws_endpoint_url: str, **extra: str) -> dict[str, str]:
    """The provider server's environment: fake credentials, moto for AWS, nothing from the developer."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "PULUMI_")) and key not in ("PYTHONPATH",)
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "AKIAENGINETESTS00001",
            "AWS_SECRET_ACCESS_KEY": "engine-test-secret",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra)
    return env
