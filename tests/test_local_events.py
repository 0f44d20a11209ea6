"""HTTP requests as API Gateway proxy events (local/events.py): the resource a path falls under and its
path parameters, as API Gateway matches them, for every resource the deployed API declares."""

from __future__ import annotations

import pytest

from components.openapi import load_document
from local.events import RESOURCES, api_gateway_event, resource_of

USER_ID = "0b0e6c2e-3c1d-4f5a-9d7e-2f1a3b4c5d6e"


def test_the_local_resources_are_exactly_the_documents_paths() -> None:
    assert set(RESOURCES) == set(load_document()["paths"])


@pytest.mark.parametrize(
    ("raw_path", "resource", "params"),
    [
        ("/health", "/health", None),
        ("/users", "/users", None),
        ("/users/", "/users", None),
        ("/users/me", "/users/me", None),  # a literal segment wins over {id}, as in API Gateway
        (f"/users/{USER_ID}", "/users/{id}", {"id": USER_ID}),
        ("/users/not-a-uuid", "/users/{id}", {"id": "not-a-uuid"}),  # the handler decides it is bad
        ("/users/caf%C3%A9", "/users/{id}", {"id": "café"}),  # decoded, as API Gateway passes them
        ("/users/a%2Fb", "/users/{id}", {"id": "a/b"}),  # an encoded slash stays inside the segment
        ("/users/a/b", "/{proxy+}", {"proxy": "users/a/b"}),
        ("/elsewhere", "/{proxy+}", {"proxy": "elsewhere"}),
        ("/", "/{proxy+}", {"proxy": ""}),
    ],
)
def test_paths_fall_under_their_resource_with_decoded_parameters(
    raw_path: str, resource: str, params: dict[str, str] | None
) -> None:
    assert resource_of(raw_path) == (resource, params)


def test_the_event_carries_resource_path_and_parameters_where_api_gateway_puts_them() -> None:
    event = api_gateway_event(
        "patch",
        f"/users/{USER_ID}",
        query_string="a=1&a=2&b=",
        headers=[("Content-Type", "application/json"), ("X-Many", "1"), ("X-Many", "2")],
        body=b'{"name": "A"}',
        request_id="req-1",
    )
    assert event["resource"] == event["requestContext"]["resourcePath"] == "/users/{id}"
    assert event["pathParameters"] == {"id": USER_ID}
    assert event["httpMethod"] == event["requestContext"]["httpMethod"] == "PATCH"
    assert event["path"] == event["requestContext"]["path"] == f"/users/{USER_ID}"
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["headers"]["X-Many"] == "2" and event["multiValueHeaders"]["X-Many"] == ["1", "2"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"name": "A"}', False)
    assert event["requestContext"]["requestId"] == "req-1"
    binary = api_gateway_event("POST", "/users", body=b"\xff\x00")
    assert (binary["body"], binary["isBase64Encoded"]) == ("/wA=", True)
    assert binary["pathParameters"] is None
