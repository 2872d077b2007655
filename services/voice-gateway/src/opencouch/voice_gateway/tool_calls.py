"""``/tools``: check a model's function call against the catalog, then run it at its owner.

Whatever goes wrong, the reply is a tool output the model can speak around; a slow or dead
tool costs at most ``tool_timeout_seconds``.
"""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from opencouch.contracts.common import ErrorBody, ErrorCode
from opencouch.contracts.tools import (
    TOOL_CATALOG,
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolErrorOutput,
)
from opencouch.contracts.voice_api import ToolsReply, ToolsRequest
from opencouch.runtime.messaging import (
    ServiceCallError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    request,
)
from opencouch.voice_gateway.state import Gateway

log = logging.getLogger(__name__)


def _error_output(code: ErrorCode, message: str) -> ToolsReply:
    output = ToolErrorOutput(error=ErrorBody(code=code, message=message[:500]))
    return ToolsReply(output=output.model_dump(mode="json"))


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors(include_input=False)
    )


async def call_tool(gateway: Gateway, body: ToolsRequest) -> ToolsReply:
    """Run ``body.tool_name`` for the session, as a tool output in every case."""
    session = await gateway.voice_session(body.thread_id, body.session_id)
    mode = session.effective_mode(body.memory_mode)
    spec = TOOL_CATALOG.get(body.tool_name)
    if spec is None:
        return _error_output(ErrorCode.UNKNOWN_TOOL, f"There is no tool named {body.tool_name!r}.")
    if not spec.offered_in(mode):
        return _error_output(
            ErrorCode.TOOL_NOT_IN_MODE,
            f"{spec.name} is not available in a {mode.value} conversation.",
        )
    try:
        arguments = spec.arguments.model_validate(body.arguments)
    except ValidationError as error:
        return _error_output(ErrorCode.INVALID_ARGUMENTS, _describe(error))

    call = ToolCallRequest(
        tool_name=spec.name,
        arguments=arguments.model_dump(mode="json", exclude_none=True),
        context=ToolCallContext(
            session_id=session.session_id,
            thread_id=session.thread_id,
            user_id=session.user_id,
            memory_mode=mode,
            current_user_message=body.current_user_message,
            transcript=body.transcript,
            client_turn_id=body.client_turn_id,
        ),
    )
    started = time.perf_counter()
    outcome = "ok"
    try:
        reply = await request(
            gateway.nc,
            spec.subject,
            call,
            ToolCallReply,
            timeout=gateway.settings.tool_timeout_seconds,
        )
        return ToolsReply(output=reply.output)
    except ServiceUnavailableError:
        outcome = "unavailable"
        return _error_output(ErrorCode.TOOL_UNAVAILABLE, f"{spec.name} is not available right now.")
    except ServiceTimeoutError:
        outcome = "timeout"
        return _error_output(ErrorCode.TOOL_TIMEOUT, f"{spec.name} took too long to answer.")
    except ServiceCallError as error:
        outcome = "failed"
        return _error_output(ErrorCode.TOOL_FAILED, error.message)
    finally:
        log.info(
            "tool call",
            extra={
                "tool": spec.name,
                "outcome": outcome,
                "session_id": session.session_id,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
