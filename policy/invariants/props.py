"""Reading resource properties the way the policy SDK hands them over.

The engine passes a resource's inputs keyed by their wire names (camelCase: ``retentionInDays``), and
the SDK wraps every object and list in read-only proxies (``Mapping``/``Sequence``, not ``dict``/``list``)
that raise when a value is unknown during preview. So these helpers test for the abstract types and never
catch that error: the SDK turns it into an advisory "can't run during preview" note and the policy runs
again with known values before ``pulumi up`` creates the resource.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is an object, else an empty one (an absent block reads as empty)."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """``value`` as a list: IAM and OpenAPI accept a single value where a list is allowed."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [value]
    return list(value)


class DocumentError(ValueError):
    """A JSON/YAML document property cannot be read; the message says why."""


def json_document(value: Any, what: str) -> Mapping[str, Any]:
    """A document given as JSON text (IAM policies) or as an object (pulumi-aws ``PolicyDocument``)."""
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        raise DocumentError(f"{what} is a {type(value).__name__}, not a JSON document")
    try:
        document = json.loads(value)
    except json.JSONDecodeError as error:
        raise DocumentError(f"{what} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, Mapping):
        raise DocumentError(f"{what} is JSON but not an object")
    return document


def json_or_yaml_document(value: Any, what: str) -> Mapping[str, Any]:
    """A document API Gateway accepts as JSON or YAML text (an OpenAPI body)."""
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        try:
            document = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise DocumentError(f"{what} is neither JSON nor valid YAML ({error})") from None
        if not isinstance(document, Mapping):
            raise DocumentError(f"{what} is YAML but not an object")
        return document
    return json_document(value, what)
