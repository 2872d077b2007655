"""Therapeutic response skills: how to shape the reply about to be spoken.

A skill is one data file per response style (supportive, reflective, ...) and per therapeutic
approach (CBT, ACT, ...). ``load_therapeutic_response_skill`` joins the style's guidance with the
approach's, so the model gets one short list to follow while it speaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources.abc import Traversable
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opencouch.contracts.care import ResponseSkillOutput, ResponseStyle, TherapeuticApproach
from opencouch.tools.content import ContentError, load_models

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=320)]


class SkillFile(BaseModel):
    """One skill file: a style or an approach, and what to do (and avoid) under it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["style", "approach"]
    title: Annotated[str, StringConstraints(min_length=3, max_length=80)]
    guidance: Annotated[list[Line], Field(min_length=2, max_length=8)]
    avoid: Annotated[list[Line], Field(max_length=6)] = []


class ResponseSkills:
    """Every style and approach, checked complete: each style and approach has its file."""

    def __init__(self, files: Iterable[SkillFile]) -> None:
        self._styles: dict[str, SkillFile] = {}
        self._approaches: dict[str, SkillFile] = {}
        for skill in files:
            shelf = self._styles if skill.kind == "style" else self._approaches
            if skill.id in self._styles or skill.id in self._approaches:
                raise ContentError(f"skill id {skill.id!r} is used twice")
            shelf[skill.id] = skill
        styles = set(get_args(ResponseStyle))
        approaches = set(get_args(TherapeuticApproach)) - {"none"}
        for kind, expected, present in (
            ("style", styles, self._styles),
            ("approach", approaches, self._approaches),
        ):
            if missing := sorted(expected - present.keys()):
                raise ContentError(f"no skill file for {kind}: {', '.join(missing)}")
            if unknown := sorted(present.keys() - expected):
                raise ContentError(f"skill files for unknown {kind}: {', '.join(unknown)}")

    @classmethod
    def load(cls, root: Traversable) -> ResponseSkills:
        """The skills in ``root/skills/``; each file must be named after its id."""
        files = []
        for stem, skill in load_models(root, "skills", SkillFile):
            if stem != skill.id:
                raise ContentError(
                    f"skills/{stem}.toml holds id {skill.id!r}; name it {skill.id}.toml"
                )
            files.append(skill)
        return cls(files)

    def skill(
        self, style: ResponseStyle, approach: TherapeuticApproach | None
    ) -> ResponseSkillOutput:
        """The guidance for a reply in ``style``, under ``approach`` when one applies."""
        base = self._styles[style]
        extra = self._approaches.get(approach) if approach and approach != "none" else None
        if extra is None:
            return ResponseSkillOutput(
                skill_id=style,
                response_style=style,
                therapeutic_approach=approach,
                title=base.title,
                guidance=list(base.guidance),
                avoid=list(base.avoid),
            )
        avoid = list(dict.fromkeys([*base.avoid, *extra.avoid]))
        return ResponseSkillOutput(
            skill_id=f"{style}.{extra.id}",
            response_style=style,
            therapeutic_approach=approach,
            title=f"{base.title}, {extra.title}",
            guidance=[*base.guidance, *extra.guidance],
            avoid=avoid,
        )
