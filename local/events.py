"""HTTP requests as API Gateway REST proxy events (payload v1), and a Lambda context to go with them.

The local server and the tests build events here, so the handler sees locally what API Gateway would
send it: path parameters, single- and multi-value query strings and headers, the body (base64 when it
is not UTF-8 text), and a requestContext with requestId, stage, resourcePath and httpMethod.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

# The API's resources, as handler/openapi.yaml declares them to API Gateway (a test keeps them equal).
RESOURCES = ("/health", "/users", "/users/me", "/users/{id}")


def resource_of(path: str) -> tuple[str, dict[str, str] | None]:
    """The API Gateway resource a raw (percent-encoded) path falls under, and its decoded path parameters.

    As API Gateway matches: segment by segment, a literal segment before a {variable} one (so
    ``/users/me`` is its own resource, not ``/users/{id}`` with id "me"). A path no resource declares
    becomes ``/{proxy+}``: the deployed API answers those itself with 404, locally the function does.
    """
    segments = path.strip("/").split("/") if path.strip("/") else []
    best: tuple[int, str, dict[str, str]] | None = None
    for template in RESOURCES:
        parts = template.strip("/").split("/")
        if len(parts) != len(segments):
            continue
        params: dict[str, str] = {}
        literal = 0
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}"):
                if not segment:
                    break
                params[part[1:-1]] = unquote(segment)  # decoded, as API Gateway passes them
            elif part == unquote(segment):
                literal += 1
            else:
                break
        else:
            if best is None or literal > best[0]:
                best = (literal, template, params)
    if best is None:
        return "/{proxy+}", {"proxy": unquote(path.lstrip("/"))}
    return best[1], (best[2] or None)


def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(key, []).append(value)
    return (single or None), (multi or None)


def api_gateway_event(
    method: str,
    path: str,
    *,
    query_string: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str | None = None,
    stage: str = "local",
    request_id: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event API Gateway would send for this request; ``path`` is the raw (percent-encoded) path."""
    decoded_path = unquote(path)
    resource, path_params = resource_of(path)
    query, multi_query = _multi(parse_qsl(query_string, keep_blank_values=True))
    header_map, multi_headers = _multi(headers)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    is_base64 = False
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": decoded_path,
        "httpMethod": method.upper(),
        "headers": header_map,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": decoded_path,
            "stage": stage,
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip},
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    function_name: str = "users-api-local"
    region: str = "local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    log_group_name: str = "/local/users-api"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
