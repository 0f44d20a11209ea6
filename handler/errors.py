"""Every failure the API can report, and the one place that turns an exception into an HTTP status.

Routes and validation raise ``ApiError`` subclasses; database exceptions are translated by
``to_api_error``. Nothing else in the package picks a status code for an error.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors

# OCC conflicts: PostgreSQL's serialization failure, and DSQL's own codes for data/schema conflicts.
OCC_SQLSTATES = frozenset({"40001", "OC000", "OC001"})


class ApiError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a message for humans."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class ValidationFailed(ApiError):
    """Input that parsed but is not acceptable; ``fields`` names each field and what is wrong."""

    status = 400
    code = "validation_failed"


class Unauthorized(ApiError):
    """No verified identity reached the function (API Gateway answers a bad token itself, before it)."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """The caller is known but may not do this (the email rule); another owner's row is a 404 instead."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key was used for a different request (handler/idempotency.py)."""

    status = 422
    code = "idempotency_key_reused"


class RequestInFlight(Conflict):
    """A request with the same Idempotency-Key has not finished yet; retry after ``retry_after`` s."""

    code = "request_in_flight"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(ApiError):
    """The database is unreachable or too busy; the client should retry after ``retry_after`` seconds."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(Exception):
    """No connection could be made (network, TLS, authentication, token generation)."""


# The unique index that allows one profile per token subject (migrations/0004_users_owner.sql).
OWNER_INDEX = "users_owner_sub_idx"


def _violates(exc: psycopg.Error, index: str, column: str) -> bool:
    """Whether a unique violation is on ``index``: by constraint name, or the column in the detail."""
    diag = exc.diag
    return diag.constraint_name == index or f"({column})=" in (diag.message_detail or "")


def is_occ_conflict(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and exc.sqlstate in OCC_SQLSTATES


def to_api_error(exc: BaseException) -> ApiError:
    """The API's answer to any exception; unknown ones become a bare 500 that leaks no detail."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, pg_errors.UniqueViolation):
        if _violates(exc, OWNER_INDEX, "owner_sub"):
            return Conflict("you already have a profile: read or change it at /users/me")
        return Conflict(
            "a user with this email already exists", fields={"email": "is already used by another user"}
        )
    if is_occ_conflict(exc):
        # Only after the retries in db.Database.run: the row is hot; a later attempt will get through.
        return ServiceUnavailable("the request conflicted with concurrent changes; retry it", retry_after=1)
    if isinstance(exc, pg_errors.QueryCanceled):
        return ServiceUnavailable("the database did not answer in time; retry later", retry_after=2)
    if isinstance(exc, DatabaseUnavailable | psycopg.OperationalError):
        return ServiceUnavailable("the database is unavailable; retry later", retry_after=5)
    if isinstance(exc, pg_errors.CheckViolation | pg_errors.StringDataRightTruncation | psycopg.DataError):
        # validation.py rejects these first; this is the backstop, never a 500.
        return ValidationFailed("a value is not acceptable to the database")
    return ApiError("internal error")
