"""Structured logs on stderr, one JSON object a line, with the trace and span ids when in a trace.

Privacy rule for every caller: log ids, types, counts and durations, never transcript text,
tool arguments or outputs, or secrets. Two guards back the rule up: libraries that print request
bodies at DEBUG stay at INFO, and a logged error keeps its traceback but not the parts of its
message that quote data (a validation error's input, a database error's row).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from opencouch.runtime.tracing import current_trace_ids

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of msg with terminal colour codes
}

BODY_LOGGERS: Final = ("openai", "httpx", "httpcore", "httpx2", "httpcore2", "hpack")
"""Libraries whose DEBUG lines carry request bodies or headers (a session's instructions, a key)
and whose INFO lines carry every request's full URL (a webhook's ``?code=`` key): never below
WARNING, whatever the service's level. Our own lines say what was called, without its URL."""


_LINE_FIELDS: Final = frozenset(
    {"ts", "level", "service", "logger", "msg", "trace_id", "span_id", "exc"}
)
"""The fields every line has, which a call's ``extra=`` may not replace."""


class JsonFormatter(logging.Formatter):
    """Formats a record and its ``extra=`` fields as one JSON line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _RESERVED:
                # A field of the call's own never replaces one of the line's ("level": 3
                # made an error line unfindable by its level): it gets a trailing "_".
                entry[f"{key}_" if key in _LINE_FIELDS else key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = format_error(record.exc_info[1])
        return json.dumps(entry, default=str)


def format_error(error: BaseException) -> str:
    """``error``'s traceback (with its causes), its message reduced to what quotes no data."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for link in reversed(chain):
        if parts:
            parts.append("\nwhich led to:\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(link.__traceback__))
        parts.append(f"{type(link).__module__}.{type(link).__qualname__}: {error_message(link)}")
    return "".join(parts)


def error_message(error: BaseException) -> str:
    """An error's message without the data it may quote."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
    diagnostic = getattr(error, "diag", None)  # a psycopg error: its DETAIL may quote a row
    if diagnostic is not None:
        sqlstate = str(getattr(error, "sqlstate", None) or "")
        if sqlstate.startswith(_DATA_EXCEPTIONS):  # "invalid input syntax ...: <the value>"
            return f"sqlstate {sqlstate}"
        return f"sqlstate {sqlstate}: {diagnostic.message_primary}"
    return str(error)


_DATA_EXCEPTIONS: Final = "22"


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as JSON, tagged with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    floor = max(root.level, logging.WARNING)
    for name in BODY_LOGGERS:
        logging.getLogger(name).setLevel(floor)


class RepeatedFailure:
    """A failure that repeats on every request while something is down, logged once a while.

    The first is logged at once; those within the next ``every`` seconds are only counted, and
    the next line says how many there were since the last (``failures``). An outage under a
    thousand requests a second is then a line every ``every`` seconds, not a thousand: the
    metrics keep the exact counts.
    """

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        level: int = logging.ERROR,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._message, self._level = logger, message, level
        self._every, self._clock = every, clock
        self._failures = 0
        self._logged_at: float | None = None

    def __call__(self, **fields: object) -> None:
        """Count one failure; log it, with ``fields`` and the count, unless one was just logged."""
        self._failures += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._every:
            return
        self._logger.log(self._level, self._message, extra={**fields, "failures": self._failures})
        self._failures, self._logged_at = 0, now
