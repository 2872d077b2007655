"""What the tools service's tools return: care skills, grounded answers, crisis help, exercises.

Each model is the success output of one or more catalog tools (``ToolSpec.output``); the owner
validates its reply against it before it leaves the service. Failures and refusals travel as
``ToolErrorOutput`` instead.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field

from opencouch.contracts.common import Contract

ResponseStyle = Literal[
    "supportive", "reflective", "clarifying", "psychoeducation", "closing", "technique"
]
TherapeuticApproach = Literal[
    "cbt",
    "act",
    "dbt_skills",
    "motivational_interviewing",
    "grief_support",
    "interpersonal_therapy",
    "pfa",
    "none",
]
ExerciseId = Literal[
    "grounding_5_4_3_2_1",
    "grounding_box_breathing",
    "grounding_stop_technique",
    "grounding_muscle_relaxation",
    "self_compassion_break",
    "emotion_regulation_improve",
    "emotion_regulation_gratitude",
    "behavioral_activation_tiny_action",
    "defusion_values_compass",
    "thought_work_continuum",
    "thought_work_simple_record",
    "thought_work_behavioral_experiment",
    "defusion_leaves_on_stream",
]
RiskLevel = Literal["moderate", "high", "imminent"]
Channel = Literal["voice", "text"]


class WaitForUserOutput(Contract):
    """The model must stay silent until the user speaks again."""

    status: Literal["waiting"] = "waiting"
    should_respond: Literal[False] = False
    instruction: str = "Do not reply now. Wait for the user to speak again."


# -- load_therapeutic_response_skill ------------------------------------------------------------


class ResponseSkillOutput(Contract):
    """Guidance for the reply about to be spoken, in one style and (optionally) one approach."""

    status: Literal["ok"] = "ok"
    skill_id: str
    response_style: ResponseStyle
    therapeutic_approach: TherapeuticApproach | None = None
    title: str
    guidance: list[str]
    """What to do, in order; short enough to follow while speaking."""
    avoid: list[str] = []


# -- answer_grounded_lookup ---------------------------------------------------------------------


class Citation(Contract):
    """One passage a grounded answer is made of, and where it comes from."""

    passage_id: str
    title: str
    publisher: str
    url: str
    text: str
    """The passage as it stands in the answer: a short spoken answer can be this one alone."""


GroundedLookupStatus = Literal[
    "answered", "no_verified_answer", "search_unavailable", "search_failed"
]


class GroundedLookupOutput(Contract):
    """An answer built only from verified passages, with their citations; never a guess.

    The query is not echoed back: the model has it, and an output holds only verified text.
    """

    status: GroundedLookupStatus
    answer: str | None = None
    citations: list[Citation] = []
    guidance: str


# -- crisis -------------------------------------------------------------------------------------


class CrisisResource(Contract):
    """One verified crisis service; every row carries where and when it was verified.

    ``region`` is an ISO 3166-1 country code, or ``INTL`` for a directory that covers many.
    """

    name: str
    region: str
    phone: str | None = None
    text: str | None = None
    url: str | None = None
    languages: list[str] = []
    hours: str | None = None
    source_url: str
    verified_on: date


LocationStatus = Literal["provided", "not_provided", "refused"]
CrisisLookupStatus = Literal[
    "found", "no_location", "location_refused", "no_verified_results", "lookup_error"
]


class CrisisResourcesOutput(Contract):
    """Crisis lines for where the user said they are; only these may be named to the user."""

    status: CrisisLookupStatus
    location_status: LocationStatus
    location: str | None = None
    """Where the user said they are, readable ("New South Wales, Australia")."""
    region: str | None = None
    """That place's country, as an ISO 3166-1 code."""
    emergency_number: str | None = None
    """The region's emergency number, when the region is known."""
    resources: Annotated[list[CrisisResource], Field(max_length=5)] = []
    guidance: str


class CrisisSupportTemplateOutput(Contract):
    """A fixed scaffold for a reply to someone at risk; the same inputs give the same scaffold."""

    status: Literal["ok"] = "ok"
    risk_level: RiskLevel
    opening: str
    validation: str
    safety_step: str
    question: str
    """Exactly one question to ask."""
    avoid: list[str]
    resources: Annotated[list[CrisisResource], Field(max_length=5)] = []
    """Only what the session's latest verified lookup returned; empty if there was none."""
    lookup_status: CrisisLookupStatus | None = None
    emergency_number: str | None = None
    guidance: str


# -- guided exercises ---------------------------------------------------------------------------

CompletionMode = Literal["items", "confirmation", "response", "judged"]


class ExerciseSummary(Contract):
    """A catalog entry, without its steps."""

    id: ExerciseId
    display_name: str
    category: str
    tags: list[str]
    duration_seconds: int
    intensity: Literal["low", "medium", "high"]
    approaches: list[TherapeuticApproach]
    channels: list[Channel]
    voice_fit: Literal["good", "okay", "text_only"]
    interaction_pattern: str
    cognitive_load: Literal["low", "medium", "high"]
    aliases: list[str] = []
    step_count: int


class ExerciseListOutput(Contract):
    """Exercises that fit the request, best fits first."""

    status: Literal["ok"] = "ok"
    exercises: list[ExerciseSummary]
    guidance: str


class ExerciseStep(Contract):
    """One step, as the model should lead it."""

    step_id: str
    index: int
    instruction: str
    completion_mode: CompletionMode
    min_items: int | None = None


class ExerciseStepOutput(Contract):
    """The step to lead now, after starting, continuing, repeating or simplifying an exercise."""

    status: Literal["ok", "finished", "unavailable"]
    exercise_id: ExerciseId
    display_name: str
    runtime_action: Literal["start", "continue", "repeat_step", "simplify", "finish"]
    step: ExerciseStep | None = None
    step_count: int
    guidance: str


ProgressAction = Literal["advance", "hold", "simplify", "complete", "cancel", "crisis", "conflict"]


class ExerciseProgressOutput(Contract):
    """What recording the user's progress decided, and the step to lead next."""

    status: Literal["recorded", "conflict", "no_active_exercise"]
    runtime_action: ProgressAction
    exercise_id: ExerciseId | None = None
    step_id: str | None = None
    """The step the exercise is on now."""
    next_step: ExerciseStep | None = None
    guidance: str
