"""Turn untrusted request parts into typed values, or raise a 4xx ApiError with field-level messages.

Every limit here mirrors the schema (name varchar(100) with a 1..100 CHECK, email varchar(255)) and the
OpenAPI document, so the database never sees a value it would reject. Each refusal names the rule that
failed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from datetime import datetime
from typing import Any, NamedTuple

from handler.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

NAME_MAX = 100
EMAIL_MAX = 254  # RFC 5321: a path is at most 256 octets, two of them the angle brackets
EMAIL_LOCAL_MAX = 64
LIMIT_DEFAULT = 50
LIMIT_MAX = 200
USER_FIELDS = ("name", "email")

# Characters no name or address may hold anywhere, as inclusive code point ranges: C0 and C1 controls,
# the line and paragraph separators, and every invisible or bidirectional control, i.e. Unicode's
# Default_Ignorable_Code_Point set (zero-width space and joiners, soft hyphen, word joiner, variation
# selectors, tags, Hangul fillers, the bidi embeddings, overrides and isolates) plus the remaining
# format characters (category Cf). Each lets two different strings look identical ("ann\u200b@x.io")
# or reorders what a reader sees (U+202E). The OpenAPI document's Name and Email patterns list the same
# ranges; tests/test_openapi.py checks them character by character.
INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Characters that are fine as typed but whose canonical form (NFKC) holds a space or an @: spacing
# accents such as U+00A8 become a space and a combining mark, U+FF20 becomes @. An address holding one
# would stop being an address once canonical, so the local part refuses them (the document too).
EMAIL_LOCAL_EXCLUDED_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A8, 0x00A8),
    (0x00AF, 0x00AF),
    (0x00B4, 0x00B4),
    (0x00B8, 0x00B8),
    (0x02D8, 0x02DD),
    (0x037A, 0x037A),
    (0x0384, 0x0385),
    (0x1FBD, 0x1FBD),
    (0x1FBF, 0x1FC1),
    (0x1FCD, 0x1FCF),
    (0x1FDD, 0x1FDF),
    (0x1FED, 0x1FEE),
    (0x1FFD, 0x1FFE),
    (0x2017, 0x2017),
    (0x203E, 0x203E),
    (0x309B, 0x309C),
    (0xFC5E, 0xFC63),
    (0xFDFA, 0xFDFB),
    (0xFE49, 0xFE4C),
    (0xFE6B, 0xFE6B),
    (0xFE70, 0xFE70),
    (0xFE72, 0xFE72),
    (0xFE74, 0xFE74),
    (0xFE76, 0xFE76),
    (0xFE78, 0xFE78),
    (0xFE7A, 0xFE7A),
    (0xFE7C, 0xFE7C),
    (0xFE7E, 0xFE7E),
    (0xFF20, 0xFF20),
    (0xFFE3, 0xFFE3),
)
# Lone surrogates: JSON allows them as \ud800 escapes, UTF-8 (and so the database) cannot hold them.
_SURROGATES = ((0xD800, 0xDFFF),)


def regex_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """The ranges as the inside of a regular-expression character class (``\\uXXXX`` escapes)."""

    def escape(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    return "".join(escape(a) if a == b else f"{escape(a)}-{escape(b)}" for a, b in ranges)


# The only invisible characters ASCII has: checked with this small pattern, the full one is compiled on
# the first text that is not ASCII (it costs milliseconds, a noticeable share of a cold start).
_ASCII_CONTROLS = re.compile("[\\x00-\\x1f\\x7f]")
_lazy_patterns: dict[str, re.Pattern[str]] = {}


def _pattern(name: str) -> re.Pattern[str]:
    if name not in _lazy_patterns:
        ranges = INVISIBLE_RANGES + _SURROGATES if name == "invisible" else EMAIL_LOCAL_EXCLUDED_RANGES
        _lazy_patterns[name] = re.compile(f"[{regex_class(ranges)}]")
    return _lazy_patterns[name]


# A plausible address: a local part of up to 64 printable characters, a dotted DNS domain (IDNs in
# their xn-- form). The OpenAPI document carries the same pattern, with the invisible and excluded
# characters in the local part's class; here they are refused by their own checks first.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(f"^[^@\\s]{{1,64}}@(?:{_LABEL}\\.)+{_LABEL}$")
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
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8"
        ) from None
    try:
        payload = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant, parse_int=_bounded_int
        )
    except _RefusedJson as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise BadRequest(
            "malformed JSON body: nested too deeply; send one flat object such as "
            '{"name": "Ann", "email": "ann@example.com"}'
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest("the JSON body must be an object")
    return payload


class _RefusedJson(ValueError):
    """Text the json module parses but the API refuses; the message names the rule."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RefusedJson(f"the key {key!r} appears more than once; give each field once")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _RefusedJson(f"{name} is not a JSON value (JSON has no NaN or Infinity)")


# No field of the API is a number; integers are parsed only to refuse them with a field-level message.
# Python refuses to convert an integer of more than 4,300 digits (sys.get_int_max_str_digits) with a
# plain ValueError, which would otherwise escape as a 500: a far lower bound is checked first.
INT_DIGITS_MAX = 100


def _bounded_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > INT_DIGITS_MAX:
        raise _RefusedJson(
            f"a number has {digits} digits, more than the {INT_DIGITS_MAX} accepted; "
            "no field of this API is a number"
        )
    return int(text)


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
    """The name trimmed: at most 100 characters as sent, not blank, nothing invisible."""
    if len(value) > NAME_MAX:
        return "", f"must be at most {NAME_MAX} characters"
    # Checked before trimming: str.strip() would silently drop control characters such as NEL (\x85)
    # at the ends, which the document's pattern refuses anywhere.
    problem = invisible_character(value)
    if problem:
        return "", problem
    name = value.strip()
    if not name:
        return "", "must not be empty"
    return name, None


def normalise_email(value: str) -> tuple[str, str | None]:
    """The address in its canonical form: trimmed, Unicode NFKC, lower case.

    Two addresses that differ only in composition (a + U+0308 or U+00E4), compatibility forms (fullwidth
    letters) or case are one address: stored canonical, the unique index on the column makes the second
    a 409. DSQL has no expression index, so uniqueness of a canonical form needs it stored that way.
    The shape is checked as sent (the OpenAPI document's pattern) and again once canonical.
    """
    if len(value) > EMAIL_MAX:
        return "", f"must be at most {EMAIL_MAX} characters"
    problem = invisible_character(value)
    if problem:
        return "", problem
    email = value.strip()
    if not email:
        return "", "must not be empty"
    if not _EMAIL.fullmatch(email.translate(_ASCII_LOWER)) or (
        not email.isascii() and _pattern("excluded").search(email.partition("@")[0])
    ):
        return "", "must be an email address like name@example.com"
    email = canonical_email(email)
    if len(email) > EMAIL_MAX:
        return "", f"must be at most {EMAIL_MAX} characters once normalised (NFKC)"
    if not _EMAIL.fullmatch(email):
        return "", "must be an email address like name@example.com"
    return email, None


def canonical_email(text: str) -> str:
    """NFKC, lower case, NFKC again (lower-casing can leave a sequence NFKC would change)."""
    if text.isascii():
        return text.lower()  # NFKC leaves ASCII as it is
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())


def invisible_character(value: str) -> str | None:
    """The rule a value breaks by holding a control, invisible or bidirectional character, if it does."""
    found = (_ASCII_CONTROLS if value.isascii() else _pattern("invisible")).search(value)
    if found is None:
        return None
    return (
        f"must not contain control, invisible or bidirectional characters (found U+{ord(found.group()):04X} "
        f"at position {found.start() + 1})"
    )


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


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
