"""Tool endpoints come from the catalog: an owner serves exactly its tools, typed end to end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import pytest

from opencouch.contracts.care import WaitForUserOutput
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.memory import MemoryStatusOutput
from opencouch.contracts.tools import (
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolOwner,
    tools_owned_by,
)
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import request
from opencouch.runtime.tools import MissingToolHandlerError, ToolHandler, tool_endpoints

CONTEXT = ToolCallContext(
    session_id=f"vs_{uuid.uuid4().hex}", thread_id="thread-1", memory_mode=MemoryMode.INCOGNITO
)


def handlers_for(owner: ToolOwner, handler: ToolHandler) -> dict[str, ToolHandler]:
    return {spec.name: handler for spec in tools_owned_by(owner)}


async def silent(_: Any, __: ToolCallContext) -> WaitForUserOutput:
    return WaitForUserOutput()


def call(
    tool: str, arguments: dict[str, Any], mode: MemoryMode = MemoryMode.INCOGNITO
) -> ToolCallRequest:
    return ToolCallRequest(
        tool_name=tool,
        arguments=arguments,
        context=CONTEXT.model_copy(update={"memory_mode": mode}),
    )


def endpoint(owner: ToolOwner, handler: ToolHandler, name: str) -> Any:
    return next(e for e in tool_endpoints(owner, handlers_for(owner, handler)) if e.name == name)


def test_an_owner_missing_a_handler_or_serving_a_stranger_refuses_to_start() -> None:
    handlers = handlers_for(ToolOwner.TOOLS, silent)
    del handlers["lookup_crisis_resources"]
    with pytest.raises(MissingToolHandlerError, match="lookup_crisis_resources"):
        tool_endpoints(ToolOwner.TOOLS, handlers)
    with pytest.raises(MissingToolHandlerError, match="show_memory_status"):
        tool_endpoints(
            ToolOwner.TOOLS, {**handlers_for(ToolOwner.TOOLS, silent), "show_memory_status": silent}
        )


async def test_a_result_is_ok_and_invalid_arguments_are_an_error_output_not_an_exception() -> None:
    wait = endpoint(ToolOwner.TOOLS, silent, "wait_for_user")
    reply: ToolCallReply = await wait.handler(call("wait_for_user", {}))
    assert reply.ok
    assert reply.output["should_respond"] is False
    bad: ToolCallReply = await wait.handler(call("wait_for_user", {"unexpected": 1}))
    assert not bad.ok
    assert bad.output["status"] == "error"
    assert bad.output["error"]["code"] == ErrorCode.INVALID_ARGUMENTS


async def test_the_owner_refuses_a_tool_outside_the_sessions_memory_mode() -> None:
    saved = endpoint(ToolOwner.MEMORY, silent, "show_saved_memory")
    reply: ToolCallReply = await saved.handler(call("show_saved_memory", {}, MemoryMode.INCOGNITO))
    assert not reply.ok
    assert reply.output["status"] == "refused"
    assert reply.output["error"]["code"] == ErrorCode.TOOL_NOT_IN_MODE


async def test_a_wrong_output_type_a_crash_and_a_refusal_each_come_back_as_outputs() -> None:
    async def wrong(_: Any, __: ToolCallContext) -> MemoryStatusOutput:
        return MemoryStatusOutput(
            memory_mode=MemoryMode.INCOGNITO,
            memory_enabled=False,
            proactive_recall_enabled=False,
            kept=[],
            summary="",
        )

    async def crash(_: Any, __: ToolCallContext) -> WaitForUserOutput:
        raise RuntimeError("boom")

    async def refuse(_: Any, __: ToolCallContext) -> WaitForUserOutput:
        raise ServiceError(ErrorCode.USER_INTENT_NOT_VERIFIED, "not in the user's words")

    for handler, status, code in (
        (wrong, "error", ErrorCode.TOOL_FAILED),
        (crash, "error", ErrorCode.TOOL_FAILED),
        (refuse, "refused", ErrorCode.USER_INTENT_NOT_VERIFIED),
    ):
        reply: ToolCallReply = await endpoint(ToolOwner.TOOLS, handler, "wait_for_user").handler(
            call("wait_for_user", {})
        )
        assert (reply.ok, reply.output["status"], reply.output["error"]["code"]) == (
            False,
            status,
            code,
        )


async def test_over_nats_every_owned_tool_answers_with_a_tool_call_reply(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    service = await start_service(
        nc,
        name=f"test-tools-{uuid.uuid4().hex[:6]}",
        version="0.0.1",
        description="test",
        endpoints=tool_endpoints(ToolOwner.TOOLS, handlers_for(ToolOwner.TOOLS, silent)),
    )
    try:
        replies = await asyncio.gather(
            *(
                request(nc, spec.subject, call(spec.name, {}), ToolCallReply, timeout=5)
                for spec in tools_owned_by(ToolOwner.TOOLS)
            )
        )
        # Tools without arguments answer; the others say which arguments are missing.
        by_name = dict(zip([s.name for s in tools_owned_by(ToolOwner.TOOLS)], replies, strict=True))
        assert by_name["wait_for_user"].ok
        assert by_name["answer_grounded_lookup"].output["error"]["code"] == "invalid_arguments"
    finally:
        await service.stop()
        await nc.close()


def test_exactly_the_pure_tools_are_answered_without_a_task_of_their_own() -> None:
    for owner in ToolOwner:
        endpoints = tool_endpoints(owner, handlers_for(owner, silent))
        pure = {spec.name for spec in tools_owned_by(owner) if spec.pure}
        assert {endpoint.name for endpoint in endpoints if endpoint.inline} == pure
    assert "wait_for_user" in {spec.name for spec in tools_owned_by(ToolOwner.TOOLS) if spec.pure}


async def test_slow_calls_run_side_by_side_and_hold_up_no_inline_endpoint(nats_url: str) -> None:
    # The slow calls take every slot the service has: an inline endpoint needs none.
    release = asyncio.Event()
    both_held = asyncio.Event()
    in_flight = 0
    most_in_flight = 0

    async def slow(call: ToolCallRequest) -> ToolCallReply:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if in_flight == 2:
            both_held.set()
        await release.wait()
        in_flight -= 1
        return ToolCallReply(output={"slow": True})

    async def quick(call: ToolCallRequest) -> ToolCallReply:
        return ToolCallReply(output={"quick": True})

    run = uuid.uuid4().hex[:8]
    nc = await nats.connect(nats_url)
    service = await start_service(
        nc,
        name=f"test-inline-{run}",
        version="0.0.1",
        description="test",
        endpoints=[
            Endpoint("slow", f"test.{run}.slow", ToolCallRequest, slow),
            Endpoint("quick", f"test.{run}.quick", ToolCallRequest, quick, inline=True),
        ],
        max_concurrency=2,
    )
    try:
        slow_calls = [
            asyncio.ensure_future(
                request(nc, f"test.{run}.slow", call("x", {}), ToolCallReply, timeout=5)
            )
            for _ in range(2)
        ]
        await asyncio.wait_for(both_held.wait(), 5)
        answered = await asyncio.gather(
            *(request(nc, f"test.{run}.quick", call("x", {}), ToolCallReply, timeout=5)
              for _ in range(3))
        )  # fmt: skip
        assert [reply.output for reply in answered] == [{"quick": True}] * 3
        assert not any(task.done() for task in slow_calls)
        assert most_in_flight == 2
        release.set()
        assert [(await task).output for task in slow_calls] == [{"slow": True}] * 2
    finally:
        await service.stop()
        await nc.close()
