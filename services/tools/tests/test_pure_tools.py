"""A tool the catalog marks pure answers from its arguments and packaged content alone, with the
same answer every time.

The gateway asks a pure tool's owner before it has decided whether to run the call, drops the
answer of a call it then refuses, and answers a replay by asking again (see ``ToolSpec.pure``).
That is only harmless while the tool keeps and reads no state and repeats itself, so these
handlers run here with every store and all session state out of reach, twice: a pure tool that
starts to use one, or to vary its answer, fails this test.
"""

from __future__ import annotations

from typing import Any, NoReturn

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallContext, ToolOwner
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.service import Content

ARGUMENTS: dict[str, dict[str, Any]] = {
    "wait_for_user": {},
    "load_therapeutic_response_skill": {
        "response_style": "supportive",
        "therapeutic_approach": "cbt",
    },
    "list_guided_exercise_skills": {},
}


class OutOfReach:
    """Stands in for a store or session state; any use of it fails the test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> NoReturn:
        raise AssertionError(f"a pure tool used {self._name}.{attribute}")


async def test_pure_tools_use_no_store_and_no_session_state(content: Content) -> None:
    pure = [spec for spec in TOOL_CATALOG.values() if spec.pure]
    assert {spec.name for spec in pure} == set(ARGUMENTS)
    # Only this service's pure tools are held to the rule here.
    assert all(spec.owner is ToolOwner.TOOLS for spec in pure)
    handlers = ToolHandlers(
        skills=content.skills,
        exercises=content.exercises,
        crisis=OutOfReach("crisis"),  # type: ignore[arg-type]
        grounded=OutOfReach("grounded"),  # type: ignore[arg-type]
        state=OutOfReach("state"),  # type: ignore[arg-type]
        store=OutOfReach("store"),  # type: ignore[arg-type]
    )
    for mode in MemoryMode:
        context = ToolCallContext(
            session_id="vs_" + "1" * 32,
            thread_id="thread-pure",
            memory_mode=mode,
            current_user_message="I'm in London and it has been a long day.",
        )
        for spec in pure:
            arguments = spec.arguments.model_validate(ARGUMENTS[spec.name])
            output = await getattr(handlers, spec.name)(arguments, context)
            spec.output.model_validate(output.model_dump())
            # A replay is answered by asking again, so it must get the same answer.
            assert await getattr(handlers, spec.name)(arguments, context) == output
