"""Thin handlers: the catalog has parsed the arguments; run the tool, return its output."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from opencouch.contracts.care import (
    CrisisResourcesOutput,
    CrisisSupportTemplateOutput,
    ExerciseListOutput,
    ExerciseProgressOutput,
    ExerciseStepOutput,
    GroundedLookupOutput,
    ResponseSkillOutput,
    WaitForUserOutput,
)
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import (
    AnswerGroundedLookupArgs,
    GetCrisisSupportTemplateArgs,
    ListGuidedExerciseSkillsArgs,
    LoadGuidedExerciseSkillArgs,
    LoadTherapeuticResponseSkillArgs,
    NoArguments,
    RecordGuidedExerciseProgressArgs,
    StartGuidedExerciseArgs,
    ToolCallContext,
)
from opencouch.runtime.redis_client import REDIS_OUTAGES
from opencouch.tools.crisis import CrisisDirectory, lookup_failed
from opencouch.tools.crisis_support import support_template
from opencouch.tools.exercises import (
    ExerciseCatalog,
    ExerciseRun,
    load_step,
    record_progress,
    start,
    unavailable,
)
from opencouch.tools.grounded import GroundedLookup
from opencouch.tools.location import locate_user
from opencouch.tools.session_state import SessionState, state_unavailable
from opencouch.tools.skills import ResponseSkills
from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)

OutputT = TypeVar("OutputT", bound=BaseModel)


class ToolHandlers:
    """The tools this service answers, bound to the content and state they use."""

    def __init__(
        self,
        *,
        skills: ResponseSkills,
        exercises: ExerciseCatalog,
        crisis: CrisisDirectory,
        grounded: GroundedLookup,
        state: SessionState,
        store: ToolsStore,
    ) -> None:
        self._skills = skills
        self._exercises = exercises
        self._crisis = crisis
        self._grounded = grounded
        self._state = state
        self._store = store

    async def wait_for_user(self, _: NoArguments, context: ToolCallContext) -> WaitForUserOutput:
        """Tell the model to stay silent until the user speaks again."""
        return WaitForUserOutput()

    async def load_therapeutic_response_skill(
        self, arguments: LoadTherapeuticResponseSkillArgs, context: ToolCallContext
    ) -> ResponseSkillOutput:
        """Guidance for the reply about to be spoken."""
        return self._skills.skill(arguments.response_style, arguments.therapeutic_approach)

    async def answer_grounded_lookup(
        self, arguments: AnswerGroundedLookupArgs, context: ToolCallContext
    ) -> GroundedLookupOutput:
        """An answer from the verified corpus, or an honest refusal to guess."""
        return await self._grounded.answer(arguments.query)

    async def lookup_crisis_resources(
        self, _: NoArguments, context: ToolCallContext
    ) -> CrisisResourcesOutput:
        """Verified crisis lines for where the user said they are; kept for the session."""
        try:
            location = locate_user(context.current_user_message, context.transcript)
            result = self._crisis.lookup(location)
        except Exception:
            # The crisis path must answer: a bug here gives the safe fallback, never silence.
            log.exception("crisis lookup failed")
            return lookup_failed()
        try:
            await self._state.save_crisis_lookup(
                context.session_id, result, context.session_expires_at
            )
        except REDIS_OUTAGES as error:
            # The user still gets the lines; the scaffold will simply name none of them.
            log.warning("crisis lookup not kept", extra={"error": type(error).__name__})
        return result

    async def get_crisis_support_template(
        self, arguments: GetCrisisSupportTemplateArgs, context: ToolCallContext
    ) -> CrisisSupportTemplateOutput:
        """The fixed scaffold for this risk level, with the session's verified resources."""
        try:
            lookup = await self._state.latest_crisis_lookup(context.session_id)
        except REDIS_OUTAGES as error:
            log.warning("crisis lookup unavailable", extra={"error": type(error).__name__})
            lookup = None
        return support_template(arguments.risk_level, lookup)

    async def list_guided_exercise_skills(
        self, arguments: ListGuidedExerciseSkillsArgs, context: ToolCallContext
    ) -> ExerciseListOutput:
        """The exercises that fit."""
        return self._exercises.listing(arguments)

    async def start_guided_exercise(
        self, arguments: StartGuidedExerciseArgs, context: ToolCallContext
    ) -> ExerciseStepOutput:
        """Start an exercise from its first step, replacing any running one."""
        exercise = self._exercises[arguments.exercise_type]
        if not exercise.fits_voice:
            return unavailable(exercise, "start", self._exercises)
        return await self._change_run(context, ExerciseStepOutput, lambda _current: start(exercise))

    async def load_guided_exercise_skill(
        self, arguments: LoadGuidedExerciseSkillArgs, context: ToolCallContext
    ) -> ExerciseStepOutput:
        """Start, continue, repeat, simplify or finish an exercise."""
        exercise = self._exercises[arguments.exercise_type]
        if not exercise.fits_voice:
            return unavailable(exercise, arguments.runtime_action, self._exercises)
        return await self._change_run(
            context, ExerciseStepOutput, lambda current: load_step(exercise, current, arguments)
        )

    async def record_guided_exercise_progress(
        self, arguments: RecordGuidedExerciseProgressArgs, context: ToolCallContext
    ) -> ExerciseProgressOutput:
        """Check the report against the running exercise and move it on (or not)."""
        return await self._change_run(
            context,
            ExerciseProgressOutput,
            lambda current: record_progress(self._exercises, current, arguments),
        )

    async def _change_run(
        self,
        context: ToolCallContext,
        output_model: type[OutputT],
        decide: Callable[[ExerciseRun | None], tuple[ExerciseRun | None, OutputT]],
    ) -> OutputT:
        """Apply ``decide`` to the session's exercise run; a retried call gets its first reply."""

        def change(current: ExerciseRun | None) -> tuple[ExerciseRun | None, OutputT]:
            replay = _replay(current, context.call_id, output_model)
            if replay is not None:
                return current, replay
            new, output = decide(current)
            if new is not None and context.call_id:
                new = new.model_copy(
                    update={
                        "last_call_id": context.call_id,
                        "last_reply": output.model_dump(mode="json"),
                    }
                )
            return new, output

        persistent = context.memory_mode is MemoryMode.PERSISTENT
        fallback = self._kept_run(context.session_id) if persistent else None
        try:
            new, output, changed = await self._state.change_exercise(
                context.session_id, change, fallback, until=context.session_expires_at
            )
        except REDIS_OUTAGES as error:
            log.warning("exercise state unavailable", extra={"error": type(error).__name__})
            raise state_unavailable() from error
        if changed and persistent and new is not None:
            try:
                await self._store.save_exercise_run(context.session_id, new)
            except Exception as error:
                # Redis holds the run; losing the durable copy only matters if Redis is lost too.
                log.warning("exercise run not persisted", extra={"error": type(error).__name__})
        return output

    def _kept_run(self, session_id: str) -> Callable[[], Awaitable[ExerciseRun | None]]:
        async def read() -> ExerciseRun | None:
            try:
                return await self._store.exercise_run(session_id)
            except Exception as error:
                log.warning("persisted exercise unavailable", extra={"error": type(error).__name__})
                return None

        return read


def _replay(
    run: ExerciseRun | None, call_id: str | None, output_model: type[OutputT]
) -> OutputT | None:
    if run is None or call_id is None or run.last_call_id != call_id or run.last_reply is None:
        return None
    try:
        return output_model.model_validate(run.last_reply)
    except ValidationError:
        return None
