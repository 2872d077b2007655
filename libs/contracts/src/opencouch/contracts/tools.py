"""The tool catalog: each tool's name, argument model, memory modes, owner service and schema.

Realtime function schemas are generated from the argument models here and nowhere else. A
tool call travels from the gateway to its owner over NATS as ``ToolCallRequest`` and comes
back as ``ToolCallReply``; its ``output`` goes to the model as a ``function_call_output``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opencouch.contracts.care import (
    CrisisResourcesOutput,
    CrisisSupportTemplateOutput,
    ExerciseId,
    ExerciseListOutput,
    ExerciseProgressOutput,
    ExerciseStepOutput,
    GroundedLookupOutput,
    ResponseSkillOutput,
    ResponseStyle,
    TherapeuticApproach,
    WaitForUserOutput,
)
from opencouch.contracts.common import (
    Contract,
    ErrorBody,
    Identifier,
    JsonObject,
    MemoryMode,
    SessionId,
    Transcript,
    UtteranceText,
)
from opencouch.contracts.memory import (
    DeletionOutput,
    MemoryChangeOutput,
    MemoryStatusOutput,
    RecallOutput,
    SavedMemoryOutput,
)
from opencouch.contracts.realtime import RealtimeFunctionTool
from opencouch.contracts.subjects import tool_subject
from opencouch.contracts.voice_api import Route

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
UserQuote = Annotated[
    str,
    Field(description="The user's own words asking for this, quoted exactly.", max_length=500),
]


class ToolArguments(BaseModel):
    """Base of every tool's arguments: the model may send nothing it was not offered."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArguments(ToolArguments):
    """A tool that takes no arguments."""


class LoadTherapeuticResponseSkillArgs(ToolArguments):
    response_style: ResponseStyle = Field(description="The kind of reply about to be given.")
    therapeutic_approach: TherapeuticApproach | None = Field(
        default=None, description="The approach that fits the conversation, if any."
    )


class AnswerGroundedLookupArgs(ToolArguments):
    query: ShortText = Field(description="The factual question, in the user's terms.")


class GetCrisisSupportTemplateArgs(ToolArguments):
    risk_level: Literal["moderate", "high", "imminent"] = Field(
        description="How acute the risk sounds right now."
    )
    inferred_location: Annotated[str, StringConstraints(max_length=120)] | None = Field(
        default=None, description="Where the user said they are, only if they said it."
    )


class ListGuidedExerciseSkillsArgs(ToolArguments):
    therapeutic_approach: TherapeuticApproach | None = Field(
        default=None, description="Only exercises that fit this approach."
    )
    channel: Literal["voice", "text"] | None = Field(
        default=None, description="Only exercises that work in this channel."
    )


class LoadGuidedExerciseSkillArgs(ToolArguments):
    exercise_type: ExerciseId = Field(description="Which exercise.")
    runtime_action: Literal["start", "continue", "repeat_step", "simplify", "finish"] = Field(
        description="What to do in the exercise now."
    )
    current_step_index: Annotated[int, Field(ge=0, le=20)] | None = Field(
        default=None, description="The 0-based step the user is on, when continuing."
    )


class StartGuidedExerciseArgs(ToolArguments):
    exercise_type: ExerciseId = Field(description="The exercise the user asked for or accepted.")
    therapeutic_approach: TherapeuticApproach | None = Field(
        default=None, description="The approach it is offered under, if any."
    )


class RecordGuidedExerciseProgressArgs(ToolArguments):
    expected_skill_id: ExerciseId = Field(description="The exercise believed to be running.")
    expected_step_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The step believed to be current."
    )
    outcome: Literal["complete", "partial", "hold", "stuck", "exit", "unsafe"] = Field(
        description="How the user did with this step."
    )
    user_response_summary: ShortText = Field(description="A brief neutral summary of the reply.")


class RecallSavedMemoryArgs(ToolArguments):
    query: ShortText = Field(description="What to look for in saved memory.")
    limit: Annotated[int, Field(ge=1, le=10)] = Field(default=5, description="At most this many.")


class SaveResponsePreferenceArgs(ToolArguments):
    preference_text: ShortText = Field(description="How the user wants to be answered.")
    user_quote: UserQuote


class SetProactiveMemoryRecallArgs(ToolArguments):
    enabled: bool = Field(description="Whether saved memory may be brought up unprompted.")
    user_quote: UserQuote


class PrepareMemoryDeletionByIndexArgs(ToolArguments):
    target_kind: Literal["fact", "session", "rule"] = Field(description="Which list.")
    target_index: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="The 1-based number shown by show_saved_memory."
    )
    user_quote: UserQuote


class PrepareMemoryDeletionByQueryArgs(ToolArguments):
    query: ShortText = Field(description="What the memory to delete is about.")
    user_quote: UserQuote


class ToolOwner(StrEnum):
    """The service that serves a tool's subject."""

    TOOLS = "tools"
    MEMORY = "memory"


BOTH_MODES = frozenset({MemoryMode.INCOGNITO, MemoryMode.PERSISTENT})
PERSISTENT_ONLY = frozenset({MemoryMode.PERSISTENT})


@dataclass(frozen=True)
class ToolSpec:
    """One entry of the catalog: the single source of a tool's identity and shape.

    Owners build their endpoints from it, the gateway offers and checks calls by it, and turn
    routing reads ``route`` from it.
    """

    name: str
    description: str
    arguments: type[ToolArguments]
    output: type[Contract]
    """The success output; anything else the owner returns is a ``ToolErrorOutput``."""
    modes: frozenset[MemoryMode]
    owner: ToolOwner
    route: Route = "therapeutic"
    """What a turn that used this tool is about (see ``voice_api.ROUTE_PRIORITY``)."""
    failure_guidance: str | None = None
    """What the model should do instead when the tool cannot run (down, slow, refused)."""
    pure: bool = False
    """The answer depends on the arguments and the owner's packaged content alone: the tool
    reads and keeps no state of any session, user or store, and the same arguments give the
    same answer. The gateway may then ask the owner while it is still deciding whether to run
    the call (claim, rate limits, session state), drops the answer when it refuses (a refused
    call costs the owner one cheap answer and changes nothing), and answers a replay by asking
    again instead of storing the output. The owner's tests hold each pure tool to this."""

    @property
    def subject(self) -> str:
        """The NATS subject the owner serves this tool on."""
        return tool_subject(self.name)

    def offered_in(self, mode: MemoryMode) -> bool:
        """Whether a session in ``mode`` may see and call this tool."""
        return mode in self.modes

    def realtime_tool(self) -> RealtimeFunctionTool:
        """The Realtime function definition, generated from the argument model once per spec
        (pydantic builds a JSON schema anew each time: it was a quarter of ``/session``'s work)."""
        return _realtime_tool(self)


@functools.cache
def _realtime_tool(spec: ToolSpec) -> RealtimeFunctionTool:
    return RealtimeFunctionTool(
        name=spec.name,
        description=spec.description,
        parameters=function_parameters(spec.arguments),
    )


def function_parameters(model: type[ToolArguments]) -> dict[str, Any]:
    """A Realtime ``parameters`` object for ``model``.

    Optional arguments are left out of ``required`` rather than typed nullable, because models
    call functions more reliably with plain types; titles are pydantic noise and are dropped.
    """
    schema = model.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {key: value for key, value in prop.items() if key != "title"}
        branches = prop.pop("anyOf", None)
        if branches is not None:
            non_null = [branch for branch in branches if branch.get("type") != "null"]
            if len(non_null) == 1:
                prop = {**non_null[0], **prop}
            else:
                prop["anyOf"] = non_null
            if prop.get("default", ...) is None:
                del prop["default"]
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": list(schema.get("required", [])),
        "additionalProperties": False,
    }


_TOOLS = ToolOwner.TOOLS
_MEMORY = ToolOwner.MEMORY

# When the crisis path cannot run, the model must still help, and never from its own memory
# of phone numbers: a step that holds anywhere, and the one question that unblocks the lookup.
CRISIS_FALLBACK = (
    "Crisis resources could not be looked up right now. Do not name any hotline, number or "
    "website from your own knowledge. Stay with the user, say that if they are in immediate "
    "danger they should contact local emergency services or go to the nearest emergency "
    "department, and gently ask which country or region they are in."
)

TOOL_CATALOG: Mapping[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "wait_for_user",
            "Stay silent and let the user keep talking or thinking; use when they ask for a "
            "moment or are clearly not finished.",
            NoArguments,
            WaitForUserOutput,
            BOTH_MODES,
            _TOOLS,
            pure=True,
        ),
        ToolSpec(
            "show_memory_status",
            "Tell the user whether memory is on in this conversation and what it keeps.",
            NoArguments,
            MemoryStatusOutput,
            BOTH_MODES,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "load_therapeutic_response_skill",
            "Get guidance for the style of reply you are about to give, optionally for one "
            "therapeutic approach.",
            LoadTherapeuticResponseSkillArgs,
            ResponseSkillOutput,
            BOTH_MODES,
            _TOOLS,
            pure=True,
        ),
        ToolSpec(
            "answer_grounded_lookup",
            "Answer a factual question about mental-health information or official guidance "
            "from verified sources only, with citations. Call before stating such facts.",
            AnswerGroundedLookupArgs,
            GroundedLookupOutput,
            BOTH_MODES,
            _TOOLS,
            "grounded_lookup",
        ),
        ToolSpec(
            "lookup_crisis_resources",
            "Find verified crisis lines for where the user said they are. Call before naming "
            "any hotline, number or crisis website.",
            NoArguments,
            CrisisResourcesOutput,
            BOTH_MODES,
            _TOOLS,
            "crisis",
            CRISIS_FALLBACK,
        ),
        ToolSpec(
            "get_crisis_support_template",
            "Get a safe structure for replying to someone at risk: what to say first, one "
            "safety step, one question, and what to avoid.",
            GetCrisisSupportTemplateArgs,
            CrisisSupportTemplateOutput,
            BOTH_MODES,
            _TOOLS,
            "crisis",
            CRISIS_FALLBACK,
        ),
        ToolSpec(
            "list_guided_exercise_skills",
            "List guided exercises that fit, for offering one when the user asks for it.",
            ListGuidedExerciseSkillsArgs,
            ExerciseListOutput,
            BOTH_MODES,
            _TOOLS,
            "guided_exercise",
            pure=True,
        ),
        ToolSpec(
            "start_guided_exercise",
            "Start a guided exercise the user asked for or accepted, from its first step.",
            StartGuidedExerciseArgs,
            ExerciseStepOutput,
            BOTH_MODES,
            _TOOLS,
            "guided_exercise",
        ),
        ToolSpec(
            "load_guided_exercise_skill",
            "Start, continue, repeat or simplify a guided exercise the user agreed to.",
            LoadGuidedExerciseSkillArgs,
            ExerciseStepOutput,
            BOTH_MODES,
            _TOOLS,
            "guided_exercise",
        ),
        ToolSpec(
            "record_guided_exercise_progress",
            "Record how the user did with the current exercise step and learn what comes next.",
            RecordGuidedExerciseProgressArgs,
            ExerciseProgressOutput,
            BOTH_MODES,
            _TOOLS,
            "guided_exercise",
        ),
        ToolSpec(
            "show_saved_memory",
            "List what is saved about the user: facts, past session summaries and "
            "preferences, numbered.",
            NoArguments,
            SavedMemoryOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "recall_saved_memory",
            "Search saved memory for something relevant to the conversation.",
            RecallSavedMemoryArgs,
            RecallOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "save_response_preference",
            "Save how the user wants to be answered, only when they explicitly ask.",
            SaveResponsePreferenceArgs,
            MemoryChangeOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "set_proactive_memory_recall",
            "Turn on or off bringing up saved memory unprompted, when the user asks.",
            SetProactiveMemoryRecallArgs,
            MemoryChangeOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "prepare_memory_deletion_by_index",
            "Stage deleting one numbered item of saved memory; confirm with the user next.",
            PrepareMemoryDeletionByIndexArgs,
            DeletionOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "prepare_memory_deletion_by_query",
            "Stage deleting saved memory about a topic, or list the candidates.",
            PrepareMemoryDeletionByQueryArgs,
            DeletionOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "confirm_memory_deletion",
            "Delete what was staged, after the user confirmed.",
            NoArguments,
            DeletionOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
        ToolSpec(
            "cancel_memory_deletion",
            "Drop a staged deletion.",
            NoArguments,
            DeletionOutput,
            PERSISTENT_ONLY,
            _MEMORY,
            "memory_control",
        ),
    )
}


def tools_for_mode(mode: MemoryMode) -> list[ToolSpec]:
    """The catalog entries a session in ``mode`` is offered, in catalog order."""
    return [spec for spec in TOOL_CATALOG.values() if spec.offered_in(mode)]


def tools_owned_by(owner: ToolOwner) -> list[ToolSpec]:
    """The catalog entries ``owner`` must serve."""
    return [spec for spec in TOOL_CATALOG.values() if spec.owner is owner]


# -- tool calls over NATS ---------------------------------------------------------------------


class ToolCallContext(Contract):
    """Who is calling and what was just said; owners use it for policy (intent, location).

    Built by the gateway from the voice-session token, never from what the browser claims.
    """

    session_id: SessionId
    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode
    current_user_message: UtteranceText = ""
    transcript: Transcript = []
    client_turn_id: Identifier | None = None
    call_id: Identifier | None = None
    session_expires_at: int | None = None
    """Unix seconds after which the gateway refuses the session's tool calls: state an owner
    keeps for the session need not outlive it. None from a gateway that does not say."""


class ToolCallRequest(Contract):
    """A validated call of a catalog tool, sent to ``ToolSpec.subject``."""

    tool_name: str
    arguments: JsonObject
    context: ToolCallContext


class ToolCallReply(Contract):
    """What the tool returns to the model, as a JSON object.

    ``ok`` tells a result (the tool's ``ToolSpec.output``) from a ``ToolErrorOutput``.
    """

    output: dict[str, Any]
    ok: bool = True


class RunningCallQuery(Contract):
    """Does the gateway process that claimed a tool call still run it? Asked by another that
    got a replay of the call and found no output stored (``subjects.running_calls``)."""

    claimant: Annotated[str, Field(min_length=1, max_length=80)]
    """The claim's ``by``: the process's instance id and its attempt, as the claim named it."""


class RunningCallAnswer(Contract):
    """Whether the asked process still runs the call: until its output is stored, so one it
    no longer runs has its output stored already or never will."""

    running: bool


class ToolErrorOutput(Contract):
    """A tool that could not run (``error``) or declined to (``refused``).

    The model is told why in words it can use, and speaks around it.
    """

    status: Literal["error", "refused"] = "error"
    error: ErrorBody
    guidance: str | None = None
