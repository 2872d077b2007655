"""Guided exercises: the catalog (one data file each), and how a running exercise moves on.

A voice session runs at most one exercise at a time. Its ``ExerciseRun`` (which exercise, which
step) is the truth: the model says which step it believes is current, and a mismatch is a
conflict that changes nothing, so a confused or replayed call can never skip a step. An answer
that sounds unsafe stops the exercise and turns to the crisis path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from opencouch.contracts.care import (
    Channel,
    CompletionMode,
    ExerciseId,
    ExerciseListOutput,
    ExerciseProgressOutput,
    ExerciseStep,
    ExerciseStepOutput,
    ExerciseSummary,
    TherapeuticApproach,
)
from opencouch.contracts.tools import (
    ListGuidedExerciseSkillsArgs,
    LoadGuidedExerciseSkillArgs,
    RecordGuidedExerciseProgressArgs,
)
from opencouch.tools.content import ContentError, load_models

Sentence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=400)]
Word = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_ \-]{0,40}$")]


class StepFile(BaseModel):
    """One step as written in an exercise file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    completion_mode: CompletionMode
    min_items: Annotated[int, Field(ge=1, le=10)] | None = None
    instruction: Sentence
    simpler: Sentence
    """The same step made easier, for when the user is stuck."""

    @model_validator(mode="after")
    def _items_need_a_count(self) -> StepFile:
        if (self.completion_mode == "items") != (self.min_items is not None):
            raise ValueError(
                f"step {self.id}: min_items is required for items steps, and only them"
            )
        return self


class ExerciseFile(BaseModel):
    """One exercise file: its catalog metadata, its framing and its steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ExerciseId
    display_name: Annotated[str, StringConstraints(min_length=3, max_length=60)]
    category: Word
    tags: Annotated[list[Word], Field(min_length=1, max_length=12)]
    duration_seconds: Annotated[int, Field(ge=30, le=1800)]
    intensity: Literal["low", "medium", "high"]
    approaches: Annotated[list[TherapeuticApproach], Field(min_length=1)]
    channels: Annotated[list[Channel], Field(min_length=1)]
    voice_fit: Literal["good", "okay", "text_only"]
    interaction_pattern: Word
    cognitive_load: Literal["low", "medium", "high"]
    aliases: list[Word] = []
    intro: Sentence
    closing: Sentence
    steps: Annotated[list[StepFile], Field(min_length=1, max_length=12)]

    @model_validator(mode="after")
    def _consistent(self) -> ExerciseFile:
        ids = [step.id for step in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids repeat: {ids}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels repeat")
        # The voice-suitable list is derived from this, so the two must agree.
        if ("voice" in self.channels) == (self.voice_fit == "text_only"):
            raise ValueError("voice_fit text_only must go with channels lacking voice, and back")
        if "text" not in self.channels:
            raise ValueError("every exercise must work in text")
        return self

    @property
    def fits_voice(self) -> bool:
        """Whether it can be led in a spoken conversation."""
        return "voice" in self.channels

    def summary(self) -> ExerciseSummary:
        """The catalog entry, without steps."""
        return ExerciseSummary(
            id=self.id,
            display_name=self.display_name,
            category=self.category,
            tags=list(self.tags),
            duration_seconds=self.duration_seconds,
            intensity=self.intensity,
            approaches=list(self.approaches),
            channels=list(self.channels),
            voice_fit=self.voice_fit,
            interaction_pattern=self.interaction_pattern,
            cognitive_load=self.cognitive_load,
            aliases=list(self.aliases),
            step_count=len(self.steps),
        )

    def step(self, index: int, *, simpler: bool = False) -> ExerciseStep:
        """Step ``index`` as the model should lead it."""
        step = self.steps[index]
        return ExerciseStep(
            step_id=step.id,
            index=index,
            instruction=step.simpler if simpler else step.instruction,
            completion_mode=step.completion_mode,
            min_items=step.min_items,
        )


_VOICE_FIT_ORDER = {"good": 0, "okay": 1, "text_only": 2}


class ExerciseCatalog:
    """Every exercise, checked complete and consistent when loaded."""

    def __init__(self, exercises: Iterable[ExerciseFile]) -> None:
        self._exercises: dict[str, ExerciseFile] = {}
        for exercise in exercises:
            if exercise.id in self._exercises:
                raise ContentError(f"exercise id {exercise.id!r} is used twice")
            self._exercises[exercise.id] = exercise
        if missing := sorted(set(get_args(ExerciseId)) - self._exercises.keys()):
            raise ContentError(f"no exercise file for: {', '.join(missing)}")

    @classmethod
    def load(cls, root: Traversable) -> ExerciseCatalog:
        """The exercises in ``root/exercises/``; each file must be named after its id."""
        files = []
        for stem, exercise in load_models(root, "exercises", ExerciseFile):
            if stem != exercise.id:
                raise ContentError(
                    f"exercises/{stem}.toml holds id {exercise.id!r}; name it {exercise.id}.toml"
                )
            files.append(exercise)
        return cls(files)

    def __getitem__(self, exercise_id: str) -> ExerciseFile:
        return self._exercises[exercise_id]

    @property
    def voice_suitable(self) -> list[str]:
        """The ids of exercises that can be led by voice."""
        return [key for key, exercise in self._exercises.items() if exercise.fits_voice]

    def listing(self, arguments: ListGuidedExerciseSkillsArgs) -> ExerciseListOutput:
        """The exercises that fit ``arguments``, those that fit a voice call best first."""
        approach = arguments.therapeutic_approach
        chosen = [
            exercise
            for exercise in self._exercises.values()
            if (approach in (None, "none") or approach in exercise.approaches)
            and (arguments.channel is None or arguments.channel in exercise.channels)
        ]
        chosen.sort(key=lambda item: (_VOICE_FIT_ORDER[item.voice_fit], item.duration_seconds))
        if not chosen:
            guidance = (
                "No exercise fits that filter. Ask without a filter, or simply keep talking; "
                "an exercise is only for when the user wants one."
            )
        else:
            guidance = (
                "Offer one or two of these by name, briefly, only if the user wants an exercise; "
                "vary your suggestions. Start one with start_guided_exercise once they agree. "
                "Exercises whose channels lack voice cannot be led in a voice call."
            )
        return ExerciseListOutput(
            exercises=[exercise.summary() for exercise in chosen], guidance=guidance
        )


# -- a running exercise -----------------------------------------------------------------------

RunStatus = Literal["active", "completed", "cancelled", "crisis"]


class ExerciseRun(BaseModel):
    """The exercise a voice session is doing (or last did), and the step it is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exercise_id: ExerciseId
    step_index: int = 0
    status: RunStatus = "active"
    holds: int = 0
    """How often the current step was held or simplified."""
    started_at: datetime
    updated_at: datetime
    last_call_id: str | None = None
    last_reply: dict[str, Any] | None = None
    """The reply to ``last_call_id``, so a retried call gets the same answer."""
    revision: int = 0
    """How many times the session's run was changed: its durable copy never goes back to an
    older one written late."""

    @property
    def active(self) -> bool:
        """Whether the exercise is still going."""
        return self.status == "active"


def _now() -> datetime:
    return datetime.now(UTC)


def unavailable(
    exercise: ExerciseFile, action: str, catalog: ExerciseCatalog
) -> ExerciseStepOutput:
    """The answer for an exercise that cannot be led in a voice call."""
    voice = [catalog[key].display_name for key in catalog.voice_suitable[:3]]
    return ExerciseStepOutput.model_validate(
        {
            "status": "unavailable",
            "exercise_id": exercise.id,
            "display_name": exercise.display_name,
            "runtime_action": action,
            "step_count": len(exercise.steps),
            "guidance": (
                f"{exercise.display_name} is done in writing and cannot be led in a voice call. "
                f"If the user wants an exercise now, offer one that works by voice, such as "
                f"{', '.join(voice)}."
            ),
        }
    )


def start(exercise: ExerciseFile, index: int = 0) -> tuple[ExerciseRun, ExerciseStepOutput]:
    """A new run of ``exercise`` at step ``index``, and the step to lead."""
    now = _now()
    run = ExerciseRun(exercise_id=exercise.id, step_index=index, started_at=now, updated_at=now)
    framing = exercise.intro if index == 0 else "Pick up where the user left off."
    return run, ExerciseStepOutput(
        status="ok",
        exercise_id=exercise.id,
        display_name=exercise.display_name,
        runtime_action="start",
        step=exercise.step(index),
        step_count=len(exercise.steps),
        guidance=(
            f"{framing} Lead only this step, in your own words, then wait for the user. After "
            "their reply, call record_guided_exercise_progress with this step id."
        ),
    )


def load_step(
    exercise: ExerciseFile, run: ExerciseRun | None, arguments: LoadGuidedExerciseSkillArgs
) -> tuple[ExerciseRun | None, ExerciseStepOutput]:
    """Start, continue, repeat, simplify or finish ``exercise``; the run's step is the truth."""
    action = arguments.runtime_action
    mine = run if run is not None and run.active and run.exercise_id == exercise.id else None
    if action != "start" and run is not None and run.active and mine is None:
        # Another exercise is under way. Finishing this one must not leave that one running
        # behind a closing that says the user is done; continuing, repeating or simplifying
        # this one must not silently replace it (at a step the user never did). Starting this
        # one is the one way to switch.
        return run, ExerciseStepOutput.model_validate(
            {
                "status": "unavailable",
                "exercise_id": exercise.id,
                "display_name": exercise.display_name,
                "runtime_action": action,
                "step_count": len(exercise.steps),
                "guidance": (
                    f"{exercise.display_name} is not under way: the exercise running is "
                    f"{run.exercise_id}, at step {run.step_index + 1}. Go on with "
                    f"{run.exercise_id}, finish it, or start {exercise.id} to switch."
                ),
            }
        )
    if action == "finish":
        ended = (
            mine.model_copy(update={"status": "completed", "updated_at": _now()}) if mine else run
        )
        return ended, ExerciseStepOutput(
            status="finished",
            exercise_id=exercise.id,
            display_name=exercise.display_name,
            runtime_action="finish",
            step_count=len(exercise.steps),
            guidance=f"Close gently: {exercise.closing}",
        )
    requested = arguments.current_step_index
    if mine is None:
        index = requested or 0
        if action == "start":
            index = 0
        if index >= len(exercise.steps):
            return run, _no_such_step(exercise, action, index)
        new_run, output = start(exercise, index)
        return new_run, output.model_copy(update={"runtime_action": action})
    index = mine.step_index
    note = ""
    if requested is not None and requested != index:
        note = f" The exercise is on step {index + 1}, not step {requested + 1}; lead this one."
    if action == "start":
        new_run, output = start(exercise)
        return new_run, output
    simpler = action == "simplify"
    updated = mine.model_copy(
        update={"holds": mine.holds + (1 if action != "continue" else 0), "updated_at": _now()}
    )
    how = {
        "continue": "Lead this step.",
        "repeat_step": "Repeat this step, a little more slowly.",
        "simplify": "Offer this easier version of the step.",
    }[action]
    return updated, ExerciseStepOutput(
        status="ok",
        exercise_id=exercise.id,
        display_name=exercise.display_name,
        runtime_action=action,
        step=exercise.step(index, simpler=simpler),
        step_count=len(exercise.steps),
        guidance=f"{how}{note} Then wait for the user and record their progress.",
    )


def _no_such_step(exercise: ExerciseFile, action: str, index: int) -> ExerciseStepOutput:
    return ExerciseStepOutput.model_validate(
        {
            "status": "unavailable",
            "exercise_id": exercise.id,
            "display_name": exercise.display_name,
            "runtime_action": action,
            "step_count": len(exercise.steps),
            "guidance": (
                f"{exercise.display_name} has {len(exercise.steps)} steps; there is no step "
                f"{index + 1}. Start it again from the beginning if the user wants to."
            ),
        }
    )


CRISIS_GUIDANCE = (
    "Stop the exercise now and do not return to it. The user's answer sounded unsafe: ask them "
    "directly and calmly whether they are safe right now, call get_crisis_support_template, and "
    "call lookup_crisis_resources before naming any line or number."
)


def record_progress(
    catalog: ExerciseCatalog, run: ExerciseRun | None, arguments: RecordGuidedExerciseProgressArgs
) -> tuple[ExerciseRun | None, ExerciseProgressOutput]:
    """Apply one progress report to ``run``; returns the new run and what to do next."""
    if arguments.outcome == "unsafe":
        # Safety comes before any bookkeeping: even a mismatched report stops the exercise.
        ended = (
            run.model_copy(update={"status": "crisis", "updated_at": _now()})
            if run is not None and run.active
            else run
        )
        return ended, ExerciseProgressOutput(
            status="recorded" if run is not None and run.active else "no_active_exercise",
            runtime_action="crisis",
            exercise_id=run.exercise_id if run is not None else None,
            guidance=CRISIS_GUIDANCE,
        )
    if run is None or not run.active:
        return run, ExerciseProgressOutput(
            status="no_active_exercise",
            runtime_action="conflict",
            guidance=(
                "No exercise is running in this conversation, so nothing was recorded. Start one "
                "with start_guided_exercise only if the user wants it."
            ),
        )
    exercise = catalog[run.exercise_id]
    current = exercise.steps[run.step_index]
    if arguments.expected_skill_id != run.exercise_id or arguments.expected_step_id != current.id:
        return run, ExerciseProgressOutput(
            status="conflict",
            runtime_action="conflict",
            exercise_id=run.exercise_id,
            step_id=current.id,
            next_step=exercise.step(run.step_index),
            guidance=(
                f"Nothing was recorded: {exercise.display_name} is on step {current.id!r}. Lead "
                "that step and report progress on it."
            ),
        )
    now = _now()
    outcome = arguments.outcome
    if outcome == "exit":
        return run.model_copy(update={"status": "cancelled", "updated_at": now}), (
            ExerciseProgressOutput(
                status="recorded",
                runtime_action="cancel",
                exercise_id=run.exercise_id,
                step_id=current.id,
                guidance="Stop the exercise without fuss; thank them and ask what they need now.",
            )
        )
    if outcome == "complete":
        if run.step_index + 1 >= len(exercise.steps):
            return run.model_copy(update={"status": "completed", "updated_at": now}), (
                ExerciseProgressOutput(
                    status="recorded",
                    runtime_action="complete",
                    exercise_id=run.exercise_id,
                    step_id=current.id,
                    guidance=f"That was the last step. Close gently: {exercise.closing}",
                )
            )
        advanced = run.model_copy(
            update={"step_index": run.step_index + 1, "holds": 0, "updated_at": now}
        )
        step = exercise.step(advanced.step_index)
        return advanced, ExerciseProgressOutput(
            status="recorded",
            runtime_action="advance",
            exercise_id=run.exercise_id,
            step_id=step.step_id,
            next_step=step,
            guidance="Acknowledge briefly what they did, then lead this next step and wait.",
        )
    held = run.model_copy(update={"holds": run.holds + 1, "updated_at": now})
    if outcome == "stuck":
        return held, ExerciseProgressOutput(
            status="recorded",
            runtime_action="simplify",
            exercise_id=run.exercise_id,
            step_id=current.id,
            next_step=exercise.step(run.step_index, simpler=True),
            guidance="Reassure them there is no wrong way, and offer this easier version.",
        )
    # partial or hold: stay on the step until it is done.
    return held, ExerciseProgressOutput(
        status="recorded",
        runtime_action="hold",
        exercise_id=run.exercise_id,
        step_id=current.id,
        next_step=exercise.step(run.step_index),
        guidance=(
            "Stay on this step: acknowledge what they managed, and gently invite the rest, "
            "or give them a moment."
        ),
    )
