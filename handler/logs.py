"""Structured JSON logs (Powertools' Logger), loaded on the first line actually logged.

Most invocations log nothing (a warm 2xx writes no line at the default level), so importing Powertools
at cold start would be paid for nothing: it is about half of what the handler adds to the cold import
of psycopg (docs/handler.md). Every line carries the invocation's keys bound by ``bind``:
Lambda's request id, API Gateway's request id (``correlation_id``) and ``cold_start``.

Nothing here ever logs a request body, a header or a connection string.
"""

from __future__ import annotations

import os
from typing import Any

_keys: dict[str, Any] = {}
_logger: Any = None
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def _configured_level() -> int:
    name = (
        os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO"
    ).upper()
    return _LEVELS.get(name, 20)


debug_enabled = _configured_level() <= 10


def bind(**keys: Any) -> None:
    """The keys every line of the current invocation carries; replaces the previous invocation's."""
    _keys.clear()
    _keys.update(keys)


def logger() -> Any:
    """The Powertools Logger, made on first use."""
    global _logger
    if _logger is None:
        from aws_lambda_powertools import Logger

        _logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "users-api")
    return _logger


def _emit(level: str, message: str, extra: dict[str, Any], exc_info: bool = False) -> None:
    log = logger()
    log.append_keys(**_keys)
    getattr(log, level)(message, extra=extra, exc_info=exc_info)


def debug(message: str, **extra: Any) -> None:
    if debug_enabled:
        _emit("debug", message, extra)


def warning(message: str, **extra: Any) -> None:
    _emit("warning", message, extra)


def exception(message: str, **extra: Any) -> None:
    """An error with the current exception's stack trace (our code's frames, never request data)."""
    _emit("error", message, extra, exc_info=True)
