"""Tool endpoints built from the catalog: an owner serves exactly the tools the catalog gives it.

A handler takes the tool's parsed arguments and the call context and returns the tool's
``ToolSpec.output`` (or a ``ToolErrorOutput``), or raises ``ServiceError``. Whatever happens, the
reply is a ``ToolCallReply`` the model can hear: nothing crosses NATS as an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from opencouch.contracts.common import Contract, ErrorBody, ErrorCode
from opencouch.contracts.tools import (
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolErrorOutput,
    ToolOwner,
    ToolSpec,
    tools_owned_by,
)
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.errors import ServiceError, describe_validation, unreachable_store

log = logging.getLogger(__name__)

ToolHandler = Callable[[Any, ToolCallContext], Awaitable[Contract]]
"""``handler(arguments, context) -> output``; ``arguments`` is the spec's argument model."""

REFUSALS: Final = frozenset(
    {
        ErrorCode.TOOL_NOT_IN_MODE,
        ErrorCode.USER_INTENT_NOT_VERIFIED,
        ErrorCode.OWNER_OR_SESSION_MISSING,
        ErrorCode.MEMORY_OFF,
        ErrorCode.RECALL_OFF,
    }
)
"""Codes that mean the tool declined on purpose, rather than failed."""


class MissingToolHandlerError(RuntimeError):
    """An owner was started without a handler for a tool the catalog gives it (or with extras)."""


def tool_error(code: ErrorCode, message: str, guidance: str | None = None) -> ToolErrorOutput:
    """The output a tool gives when it cannot, or will not, do what was asked."""
    return ToolErrorOutput(
        status="refused" if code in REFUSALS else "error",
        error=ErrorBody(code=code, message=message[:500]),
        guidance=guidance,
    )


def error_reply(error: ToolErrorOutput) -> ToolCallReply:
    """A ``ToolCallReply`` carrying ``error``."""
    return ToolCallReply(output=error.model_dump(mode="json", exclude_none=True), ok=False)


def tool_endpoints(
    owner: ToolOwner, handlers: Mapping[str, ToolHandler]
) -> list[Endpoint[ToolCallRequest, ToolCallReply]]:
    """One endpoint per catalog tool of ``owner``; refuses to start if any has no handler."""
    owned = {spec.name: spec for spec in tools_owned_by(owner)}
    missing = sorted(owned.keys() - handlers.keys())
    extra = sorted(handlers.keys() - owned.keys())
    if missing or extra:
        raise MissingToolHandlerError(
            f"{owner.value} must serve exactly its catalog tools; "
            f"missing handlers: {missing or 'none'}; not in its catalog: {extra or 'none'}"
        )
    return [
        # A pure tool reads and keeps no state: its handler has nothing to wait on.
        Endpoint(name, spec.subject, ToolCallRequest, _serving(spec, handlers[name]), spec.pure)
        for name, spec in owned.items()
    ]


def _serving(
    spec: ToolSpec, handler: ToolHandler
) -> Callable[[ToolCallRequest], Awaitable[ToolCallReply]]:
    async def serve(call: ToolCallRequest) -> ToolCallReply:
        if not spec.offered_in(call.context.memory_mode):
            # The gateway checks this too; an owner never trusts a caller to have done so.
            return error_reply(
                tool_error(
                    ErrorCode.TOOL_NOT_IN_MODE,
                    f"{spec.name} is not available in a {call.context.memory_mode.value} "
                    "conversation.",
                )
            )
        try:
            arguments = spec.arguments.model_validate(call.arguments)
        except ValidationError as error:
            return error_reply(
                tool_error(
                    ErrorCode.INVALID_ARGUMENTS,
                    describe_validation(error, root="arguments"),
                    "Call the tool again with arguments that match its schema.",
                )
            )
        try:
            output = await handler(arguments, call.context)
        except ServiceError as error:
            return error_reply(tool_error(error.code, error.message))
        except Exception as error:
            store = unreachable_store(error)
            if store is None:
                log.exception("tool failed", extra={"tool": spec.name})
                return error_reply(tool_error(ErrorCode.TOOL_FAILED, f"{spec.name} failed."))
            log.warning(
                "store unreachable",
                extra={"tool": spec.name, "store": store, "error": type(error).__name__},
            )
            return error_reply(
                tool_error(ErrorCode.TOOL_UNAVAILABLE, f"{spec.name} is not available right now.")
            )
        if isinstance(output, ToolErrorOutput):
            return error_reply(output)
        if not isinstance(output, spec.output):
            log.error(
                "tool returned the wrong output",
                extra={"tool": spec.name, "output": type(output).__name__},
            )
            return error_reply(tool_error(ErrorCode.TOOL_FAILED, f"{spec.name} failed."))
        return ToolCallReply(output=output.model_dump(mode="json"))

    return serve
