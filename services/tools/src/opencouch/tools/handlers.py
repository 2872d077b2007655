"""Thin handlers: validate the tool's arguments, run it, return its output."""

from __future__ import annotations

from pydantic import ValidationError

from opencouch.contracts.common import ErrorCode
from opencouch.contracts.tools import NoArguments, ToolCallReply, ToolCallRequest, WaitForUserOutput
from opencouch.runtime.endpoints import HandlerError
from opencouch.tools.crisis import CrisisDirectory, locate_user


def _no_arguments(request: ToolCallRequest) -> None:
    try:
        NoArguments.model_validate(request.arguments)
    except ValidationError as error:
        raise HandlerError(ErrorCode.INVALID_REQUEST, "this tool takes no arguments") from error


class ToolHandlers:
    """The tools this service answers, bound to the data they read."""

    def __init__(self, crisis: CrisisDirectory) -> None:
        self._crisis = crisis

    async def wait_for_user(self, request: ToolCallRequest) -> ToolCallReply:
        """Tell the model to stay silent until the user speaks again."""
        _no_arguments(request)
        return ToolCallReply(output=WaitForUserOutput().model_dump(mode="json"))

    async def lookup_crisis_resources(self, request: ToolCallRequest) -> ToolCallReply:
        """Verified crisis lines for where the user said they are."""
        _no_arguments(request)
        location = locate_user(request.context.current_user_message, request.context.transcript)
        return ToolCallReply(output=self._crisis.lookup(location).model_dump(mode="json"))
