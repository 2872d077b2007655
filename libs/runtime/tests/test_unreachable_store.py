"""A store that is down or unreachable is ``service_unavailable`` (a tool: ``tool_unavailable``),
logged as a warning without a traceback, whichever handler met it; any other failure stays
``internal_error`` (``tool_failed``) with its traceback. It once was ``internal_error`` and a
traceback on every request for as long as Postgres or Redis was away."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import nats
import nats.js.errors
import psycopg
import psycopg.errors
import psycopg_pool
import pytest
import redis.exceptions

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import (
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolOwner,
    tools_owned_by,
)
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.errors import ServiceError, unreachable_store
from opencouch.runtime.messaging import flushed, request
from opencouch.runtime.tools import tool_endpoints

CALL = ToolCallRequest(
    tool_name="show_memory_status",
    arguments={},
    context=ToolCallContext(
        session_id=f"vs_{uuid.uuid4().hex}", thread_id="t", memory_mode=MemoryMode.PERSISTENT
    ),
)

DOWN: list[tuple[BaseException, str]] = [
    (psycopg.OperationalError("connection refused"), "postgres"),
    (psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec"), "postgres"),
    (psycopg_pool.PoolClosed("the pool is closed"), "postgres"),
    (redis.exceptions.ConnectionError("Error 111 connecting"), "redis"),
    (redis.exceptions.TimeoutError("Timeout reading from socket"), "redis"),
    # A handler's event not taken by JetStream (an erasure's announcement, say): it was 500.
    (nats.errors.TimeoutError(), "nats"),
    (nats.errors.NoRespondersError(), "nats"),
    (nats.js.errors.ServiceUnavailableError(), "nats"),
    (nats.errors.ConnectionReconnectingError(), "nats"),
]
NOT_DOWN: list[BaseException] = [
    psycopg.errors.UniqueViolation("duplicate key"),
    psycopg.ProgrammingError("syntax error"),
    redis.exceptions.ResponseError("WRONGTYPE"),
    nats.js.errors.BadRequestError(),
    ValueError("a bug"),
]


@pytest.mark.parametrize(("error", "store"), DOWN, ids=lambda value: type(value).__name__)
def test_the_errors_of_a_store_that_cannot_be_reached_name_it(
    error: BaseException, store: str
) -> None:
    assert unreachable_store(error) == store


@pytest.mark.parametrize("error", NOT_DOWN, ids=lambda value: type(value).__name__)
def test_other_failures_are_no_outage(error: BaseException) -> None:
    assert unreachable_store(error) is None


async def _serve_raising(nats_url: str, error: BaseException) -> tuple[Any, Any, str]:
    nc = await nats.connect(nats_url)

    async def fail(_: ToolCallRequest) -> ToolCallReply:
        raise error

    name = f"test-unreachable-{uuid.uuid4().hex[:8]}"
    service = await start_service(
        nc,
        name=name,
        version="0.0.1",
        description="test",
        endpoints=[Endpoint("fail", f"{name}.fail", ToolCallRequest, fail)],
    )
    await flushed(nc)
    return nc, service, f"{name}.fail"


@pytest.mark.parametrize(
    ("error", "code"),
    [(DOWN[1][0], ErrorCode.SERVICE_UNAVAILABLE), (NOT_DOWN[0], ErrorCode.INTERNAL)],
    ids=["pool-timeout", "unique-violation"],
)
async def test_an_endpoint_answers_an_outage_unavailable_and_a_bug_internal(
    nats_url: str, error: BaseException, code: ErrorCode, caplog: pytest.LogCaptureFixture
) -> None:
    nc, service, subject = await _serve_raising(nats_url, error)
    try:
        with (
            caplog.at_level(logging.WARNING, "opencouch.runtime.endpoints"),
            pytest.raises(ServiceError) as failed,
        ):
            await request(nc, subject, CALL, ToolCallReply, timeout=5)
    finally:
        await service.stop()
        await nc.close()
    assert failed.value.code is code
    (logged,) = [r for r in caplog.records if r.name == "opencouch.runtime.endpoints"]
    if code is ErrorCode.SERVICE_UNAVAILABLE:
        assert "postgres" in failed.value.message
        assert (logged.levelno, logged.getMessage(), logged.exc_info) == (
            logging.WARNING,
            "store unreachable",
            None,
        )
        assert logged.store == "postgres"  # type: ignore[attr-defined]
    else:
        assert logged.levelno == logging.ERROR
        assert logged.exc_info is not None  # a bug keeps its traceback


@pytest.mark.parametrize(
    ("error", "code"),
    [(DOWN[4][0], ErrorCode.TOOL_UNAVAILABLE), (NOT_DOWN[2], ErrorCode.TOOL_FAILED)],
    ids=["redis-timeout", "redis-wrongtype"],
)
async def test_a_tool_answers_an_outage_unavailable_and_a_bug_failed(
    error: BaseException, code: ErrorCode, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(_: Any, __: ToolCallContext) -> Any:
        raise error

    (served,) = [
        endpoint
        for endpoint in tool_endpoints(ToolOwner.MEMORY, _every_memory_tool(fail))
        if endpoint.name == "show_memory_status"
    ]
    with caplog.at_level(logging.WARNING, "opencouch.runtime.tools"):
        reply = await served.handler(CALL)
    assert reply.ok is False
    assert reply.output["error"]["code"] == code.value
    (logged,) = [r for r in caplog.records if r.name == "opencouch.runtime.tools"]
    assert (logged.exc_info is None) is (code is ErrorCode.TOOL_UNAVAILABLE)


def _every_memory_tool(handler: Any) -> dict[str, Any]:
    return {spec.name: handler for spec in tools_owned_by(ToolOwner.MEMORY)}
