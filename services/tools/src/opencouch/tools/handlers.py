"""Thin handlers: the catalog has parsed the arguments; run the tool, return its output."""

from __future__ import annotations

from opencouch.contracts.care import CrisisResourcesOutput, WaitForUserOutput
from opencouch.contracts.tools import NoArguments, ToolCallContext
from opencouch.tools.crisis import CrisisDirectory, locate_user


class ToolHandlers:
    """The tools this service answers, bound to the data they read."""

    def __init__(self, crisis: CrisisDirectory) -> None:
        self._crisis = crisis

    async def wait_for_user(self, _: NoArguments, context: ToolCallContext) -> WaitForUserOutput:
        """Tell the model to stay silent until the user speaks again."""
        return WaitForUserOutput()

    async def lookup_crisis_resources(
        self, _: NoArguments, context: ToolCallContext
    ) -> CrisisResourcesOutput:
        """Verified crisis lines for where the user said they are."""
        location = locate_user(context.current_user_message, context.transcript)
        return self._crisis.lookup(location)
