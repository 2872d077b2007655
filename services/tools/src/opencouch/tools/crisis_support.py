"""The crisis support scaffold: a fixed shape for replying to someone at risk.

The same risk level and the same session lookup always give the same scaffold. Resources appear
only if the session's latest ``lookup_crisis_resources`` returned them; the model-supplied
``inferred_location`` is never used to pick them (location comes only from the user's words).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from opencouch.contracts.care import (
    CrisisResourcesOutput,
    CrisisSupportTemplateOutput,
    RiskLevel,
)

AVOID: Final = [
    "Diagnosing, or naming a condition.",
    "Promising confidentiality or secrecy.",
    "Saying that emergency services or anyone else has been contacted: you cannot contact anyone.",
    "Naming any hotline, number or website that is not in this scaffold's resources.",
    "Any detail about methods of self-harm or suicide, even if asked.",
    "Arguing with their reasons, minimising, or making them feel guilty.",
    "More than one question at a time.",
]


@dataclass(frozen=True)
class _Scaffold:
    opening: str
    validation: str
    safety_step: str
    question: str


_SCAFFOLDS: Final[dict[RiskLevel, _Scaffold]] = {
    "moderate": _Scaffold(
        opening="Thank you for telling me. I'm really glad you said it out loud.",
        validation=(
            "It makes sense to feel worn down with this much on you, and you don't have to "
            "carry it on your own right now."
        ),
        safety_step=(
            "Suggest one thing for the next little while: being near someone they trust, or "
            "letting one person know how they are feeling today."
        ),
        question="Are you having thoughts of ending your life?",
    ),
    "high": _Scaffold(
        opening="I'm really glad you told me, and I'm staying right here with you.",
        validation=(
            "What you're feeling sounds unbearably heavy, and it makes sense that you want the "
            "pain to stop. Reaching out like this matters."
        ),
        safety_step=(
            "Ask them to put some distance between themselves and anything they could use to "
            "hurt themselves, and to contact a crisis line or someone they trust now."
        ),
        question="Are you safe right now?",
    ),
    "imminent": _Scaffold(
        opening="I'm very worried about your safety right now, and I'm here with you.",
        validation=("You are in a lot of pain, and you deserve help with it right now, not alone."),
        safety_step=(
            "They need help now: ask them to contact {emergency} or go to the nearest emergency "
            "department, and to get someone nearby to stay with them."
        ),
        question="Is there someone near you who can be with you right now?",
    ),
}
_ASK_WHERE: Final = "Which country are you in right now, so I can find the right help for you?"


def support_template(
    risk_level: RiskLevel, lookup: CrisisResourcesOutput | None
) -> CrisisSupportTemplateOutput:
    """The scaffold for ``risk_level``, with the resources of the session's latest lookup."""
    scaffold = _SCAFFOLDS[risk_level]
    emergency_number = lookup.emergency_number if lookup is not None else None
    emergency = (
        f"emergency services on {emergency_number}"
        if emergency_number
        else "local emergency services"
    )
    # With the place unknown and no time to lose, the one question is where they are; unless
    # they would rather not say, which the lookup asked to respect: then the scaffold's own.
    ask_where = lookup is None or lookup.location_status == "not_provided"
    question = _ASK_WHERE if risk_level == "imminent" and ask_where else scaffold.question
    if lookup is None:
        guidance = (
            "Follow this shape in your own words, briefly. No resources were looked up in this "
            "conversation: call lookup_crisis_resources before naming any line or number."
        )
    elif lookup.resources:
        guidance = (
            "Follow this shape in your own words, briefly. Offer one of these resources, named "
            "exactly as given; name no other."
        )
    else:
        guidance = (
            "Follow this shape in your own words, briefly. The lookup found no resource to name; "
            "name none."
        )
    return CrisisSupportTemplateOutput(
        risk_level=risk_level,
        opening=scaffold.opening,
        validation=scaffold.validation,
        safety_step=scaffold.safety_step.format(emergency=emergency),
        question=question,
        avoid=list(AVOID),
        resources=list(lookup.resources) if lookup is not None else [],
        lookup_status=lookup.status if lookup is not None else None,
        emergency_number=emergency_number,
        guidance=guidance,
    )
