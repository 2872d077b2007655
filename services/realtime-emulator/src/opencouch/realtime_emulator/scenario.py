"""Scenarios: what the emulated model hears and does, turn by turn (YAML or JSON).

The emulator has no speech recognition, so a scenario supplies the transcript of each
detected utterance in order, what to call for it and what to say once tool outputs return.
When the script runs out the keyword-driven default brain carries on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RealtimeError
from .faults import Faults

SCENARIO_HEADER = "X-Emulator-Scenario"


class ToolCallStep(BaseModel):
    """One function call the model makes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    """One response: optionally speak, then optionally call tools."""

    model_config = ConfigDict(extra="forbid")

    say: str | None = None
    tools: list[ToolCallStep] = Field(default_factory=list)


class Turn(Step):
    """What happens for one user utterance, spoken or typed."""

    # The transcript of this utterance when it is spoken; typed text keeps its own words.
    user: str | None = None
    # Responses after the tool outputs return, one per ``response.create``; a string is a
    # short way to write ``{say: ...}``.
    after_tools: list[Step] = Field(default_factory=list)

    @field_validator("after_tools", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return [{"say": value}]
        if isinstance(value, dict):
            return [value]
        return value


class Scenario(BaseModel):
    """A whole call's script, its faults and its pace."""

    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    # Said when the client asks for a response before the user has said anything.
    greeting: str = "Hi, I'm here with you. What's on your mind today?"
    # Said when the user stays silent past the session's ``idle_timeout_ms``.
    idle_check_in: str = "Are you still there? Take all the time you need."
    turns: list[Turn] = Field(default_factory=list)
    # Transcript of a spoken utterance once the script has run out.
    unscripted_transcript: str = "I've been feeling a bit overwhelmed lately."
    # What to do once the script has run out: keyword-driven replies, or say nothing.
    after_script: Literal["keywords", "silence"] = "keywords"
    # How many times faster than real time replies are generated (audio still plays in real
    # time over WebRTC); 1.0 keeps a response in progress for as long as its audio lasts.
    generation_speed: float = Field(default=4.0, gt=0, le=1000)
    faults: Faults = Field(default_factory=Faults)


def load_scenario(path: Path) -> Scenario:
    """A scenario file (``.yaml``, ``.yml`` or ``.json``)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return Scenario.model_validate(data or {})


def parse_scenario(text: str, *, source: str = SCENARIO_HEADER) -> Scenario:
    """A scenario given inline (JSON or YAML); 400 in OpenAI's shape when invalid."""
    try:
        data = yaml.safe_load(text)
        return Scenario.model_validate(data or {})
    except (yaml.YAMLError, ValidationError) as error:
        problem = str(error).splitlines()[0]
        if isinstance(error, ValidationError) and error.errors():
            first = error.errors()[0]
            problem = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise RealtimeError(
            message=f"Invalid scenario in {source}: {problem}",
            code="invalid_value",
            param=source,
        ) from error
