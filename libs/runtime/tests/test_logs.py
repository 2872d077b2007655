"""JSON log lines carry the trace they belong to, and never the data an error quotes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ValidationError

from opencouch.runtime.logs import (
    BODY_LOGGERS,
    JsonFormatter,
    RepeatedFailure,
    configure_logging,
    format_error,
)
from opencouch.runtime.tracing import tracer

PRIVATE_WORDS = "I told my brother Anselm about the debt"


class Turn(BaseModel):
    count: int


def line(record: logging.LogRecord) -> dict[str, object]:
    entry: dict[str, object] = json.loads(JsonFormatter("test").format(record))
    return entry


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("test", logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_line_logged_in_a_trace_names_its_trace_and_span(
    recorded_spans: InMemorySpanExporter,
) -> None:
    with tracer().start_as_current_span("turn") as span:
        inside = line(record("turn acknowledged"))
    outside = line(record("idle"))
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside


def test_a_validation_error_is_logged_without_the_input_it_quotes() -> None:
    with pytest.raises(ValidationError) as caught:
        Turn.model_validate({"count": PRIVATE_WORDS})
    assert PRIVATE_WORDS in str(caught.value)  # pydantic's own message quotes it
    logged = line(record("event handling failed", caught.value))
    assert PRIVATE_WORDS not in json.dumps(logged)
    assert "count: Input should be a valid integer" in str(logged["exc"])
    assert "test_logs.py" in str(logged["exc"])  # the traceback is kept


def test_a_database_error_is_logged_without_the_row_or_value_it_quotes(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE turns (text TEXT CHECK (length(text) < 5))")
        with pytest.raises(psycopg.errors.CheckViolation) as check:
            conn.execute("INSERT INTO turns VALUES (%s)", (PRIVATE_WORDS,))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation) as syntax:
            conn.execute("SELECT (%s)::int", (PRIVATE_WORDS,))
    for error, sqlstate in ((check.value, "23514"), (syntax.value, "22P02")):
        assert PRIVATE_WORDS in str(error)  # psycopg's own message quotes it
        text = format_error(error)
        assert PRIVATE_WORDS not in text
        assert f"sqlstate {sqlstate}" in text
    assert "violates check constraint" in format_error(check.value)


def test_a_cause_is_kept_with_its_own_message() -> None:
    try:
        try:
            raise ConnectionError("nats unreachable")
        except ConnectionError as cause:
            raise RuntimeError("a background worker stopped") from cause
    except RuntimeError as error:
        text = format_error(error)
    assert "builtins.ConnectionError: nats unreachable" in text
    assert text.endswith("builtins.RuntimeError: a background worker stopped")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in BODY_LOGGERS}
    yield
    root.handlers[:], root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("restored_logging")
def test_debug_logging_keeps_libraries_that_print_request_bodies_or_urls_at_warning() -> None:
    # httpx logs every request's URL at INFO: a webhook URL's key ("?code=...") was in every
    # finalizer's log once per report.
    configure_logging("test", "DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    for name in BODY_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


@pytest.mark.usefixtures("restored_logging")
def test_a_webhook_url_s_key_is_in_no_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "INFO")
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(204))) as client:
        client.post("https://receiver.example/reports?code=fnkey-SECRET-0123")
    assert "fnkey-SECRET" not in capsys.readouterr().err


def test_a_call_s_own_fields_never_replace_the_line_s() -> None:
    # The crisis screening logged extra={"level": 3}: its error lines read "level": 3, and a
    # search or alert on level "error" missed them.
    logged = record("incognito crisis turn not logged")
    logged.__dict__.update({"level": 3, "service": "elsewhere", "trace_id": "x", "reason": "plan"})
    entry = line(logged)
    assert entry["level"] == "error"
    assert entry["service"] == "test"
    assert "trace_id" not in entry  # logged outside any trace
    assert (entry["level_"], entry["service_"], entry["trace_id_"]) == (3, "elsewhere", "x")
    assert entry["reason"] == "plan"


def test_a_repeated_failure_is_logged_once_a_while_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    down = RepeatedFailure(
        logging.getLogger("test.outage"), "redis unavailable", every=10, clock=lambda: now[0]
    )
    with caplog.at_level(logging.ERROR, "test.outage"):
        for second in range(25):  # a failing request every half second for 12.5 s, then later
            now[0] = 100 + second / 2
            down(path="/tools")
        now[0] = 200
        down(path="/turn")
    logged = [(r.getMessage(), r.path, r.failures) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [
        ("redis unavailable", "/tools", 1),
        ("redis unavailable", "/tools", 20),  # at 110 s: the 20 since the first line
        ("redis unavailable", "/turn", 5),  # the 4 left after 110 s, and this one
    ]
    assert all(r.levelno == logging.ERROR for r in caplog.records)
