"""Turn untrusted request parts into typed values, or raise a 4xx ApiError with field-level messages.

Every limit here mirrors the schema (name varchar(100) with a 1..100 CHECK, email varchar(255)) and the
OpenAPI document, so the database never sees a value it would reject.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, NamedTuple

from handler.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

NAME_MAX = 100
EMAIL_MAX = 255
EMAIL_LOCAL_MAX = 64
LIMIT_DEFAULT = 50
LIMIT_MAX = 200
USER_FIELDS = ("name", "email")

# A plausible address: a local part of up to 64 printable characters, a dotted DNS domain (IDNs in
# their xn-- form). The OpenAPI document carries the same pattern.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{{1,64}}@(?:{_LABEL}\.)+{_LABEL}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DIGITS = re.compile(r"^[0-9]{1,4}$")


class NewUser(NamedTuple):
    name: str
    email: str


class UserPatch(NamedTuple):
    name: str | None
    email: str | None


# ---------------------------------------------------------------- request bodies


def header(headers: dict[str, str] | None, name: str) -> str | None:
    """A header's value whatever its case (API Gateway passes header names as the client sent them)."""
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def json_object(event: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object: 415 unless JSON, 413 when too large, 400 when malformed."""
    content_type = header(event.get("headers"), "content-type")
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != "application/json":
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies must be UTF-8")

    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("a JSON body is required")
    if event.get("isBase64Encoded"):
        if len(body) > (max_bytes * 4) // 3 + 4:
            raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
        payload = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8 JSON"
        raise BadRequest(f"malformed JSON body: {detail}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the JSON body must be an object")
    return payload


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ---------------------------------------------------------------- users


def new_user(payload: dict[str, Any]) -> NewUser:
    """POST /users: both fields required, nothing else accepted."""
    problems = _unknown_fields(payload)
    values: dict[str, str] = {}
    for field in USER_FIELDS:
        if field not in payload:
            problems[field] = "is required"
            continue
        value, problem = _check_field(field, payload[field])
        if problem:
            problems[field] = problem
        else:
            values[field] = value
    if problems:
        raise ValidationFailed("the user is not valid", fields=problems)
    return NewUser(name=values["name"], email=values["email"])


def user_patch(payload: dict[str, Any]) -> UserPatch:
    """PATCH /users/{id}: name and/or email, at least one."""
    problems = _unknown_fields(payload)
    values: dict[str, str] = {}
    for field in USER_FIELDS:
        if field in payload:
            value, problem = _check_field(field, payload[field])
            if problem:
                problems[field] = problem
            else:
                values[field] = value
    if not problems and not values:
        raise ValidationFailed(
            "nothing to change", fields={"name": "give name and/or email", "email": "give name and/or email"}
        )
    if problems:
        raise ValidationFailed("the change is not valid", fields=problems)
    return UserPatch(name=values.get("name"), email=values.get("email"))


def _unknown_fields(payload: dict[str, Any]) -> dict[str, str]:
    return {key: "is not a known field" for key in payload if key not in USER_FIELDS}


def _check_field(field: str, value: Any) -> tuple[str, str | None]:
    if not isinstance(value, str):
        return "", "must be a string"
    return normalise_name(value) if field == "name" else normalise_email(value)


def normalise_name(value: str) -> tuple[str, str | None]:
    """The name trimmed: at most 100 characters as sent, not blank, no control characters."""
    if len(value) > NAME_MAX:
        return "", f"must be at most {NAME_MAX} characters"
    # Checked before trimming: str.strip() would silently drop control characters such as NEL (\x85)
    # at the ends, which the document's pattern refuses anywhere.
    if _UNPRINTABLE.search(value):
        return "", "must not contain control characters"
    name = value.strip()
    if not name:
        return "", "must not be empty"
    return name, None


def normalise_email(value: str) -> tuple[str, str | None]:
    """The address trimmed and lower-cased (ASCII only, so its length never changes).

    Stored that way because DSQL has no expression index: uniqueness of lower(email) can only be
    enforced by storing it lowered. The pattern is the OpenAPI document's, so both say the same.
    """
    if len(value) > EMAIL_MAX:
        return "", f"must be at most {EMAIL_MAX} characters"
    email = value.strip().translate(_ASCII_LOWER)
    if not email:
        return "", "must not be empty"
    if not _EMAIL.fullmatch(email):
        return "", "must be an email address like name@example.com"
    return email, None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Cc: control characters (NUL cannot even be stored); Cs: lone surrogates, which JSON allows as \ud800
# escapes but UTF-8 cannot encode.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# ---------------------------------------------------------------- path and query


def user_id(raw: str | None) -> str:
    """The canonical hyphenated form only (the database casts the text to uuid).

    Not uuid.UUID: it also takes braces, urn: and bare hex, and importing uuid alone costs 2% of the
    cold-import budget.
    """
    if not raw or not _UUID.fullmatch(raw):
        raise ValidationFailed("the user id is not valid", fields={"id": "must be a UUID"})
    return raw.lower()


def page_limit(values: list[str] | None) -> int:
    if not values:
        return LIMIT_DEFAULT
    if len(values) > 1:
        raise ValidationFailed("limit given more than once", fields={"limit": "give it once"})
    raw = values[0].strip()
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= LIMIT_MAX:
        raise ValidationFailed(
            "limit is not valid", fields={"limit": f"must be a whole number from 1 to {LIMIT_MAX}"}
        )
    return int(raw)


def encode_cursor(created_at: str, id_: str) -> str:
    """Opaque to clients: the created_at (RFC 3339 text) and id of a page's last user, base64url."""
    return base64.urlsafe_b64encode(f"{created_at}|{id_}".encode()).decode().rstrip("=")


def decode_cursor(values: list[str] | None) -> tuple[datetime, str] | None:
    if not values:
        return None
    bad = ValidationFailed("cursor is not valid", fields={"cursor": "use the next_cursor of a previous page"})
    if len(values) > 1 or not values[0] or len(values[0]) > 200:
        raise bad
    token = values[0]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        created_text, id_text = raw.split("|")
        created_at = datetime.fromisoformat(created_text)
        if not _UUID.fullmatch(id_text):
            raise ValueError(id_text)
    except (binascii.Error, ValueError):
        raise bad from None
    # The decoder skips characters outside the alphabet: only the canonical spelling is accepted.
    if created_at.tzinfo is None or encode_cursor(created_text, id_text) != token.rstrip("="):
        raise bad
    return created_at, id_text
