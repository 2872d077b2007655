"""No tool output ever holds a phone number or link that is not in the vetted crisis data or
the cited corpus, whatever the user says (including numbers and links of their own).

``ToolsHarness.call`` makes the same check on every output of every other test; here the user
messages are generated."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencouch.contracts.common import TranscriptLine
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.crisis_support import support_template
from opencouch.tools.location import locate_user
from opencouch.tools.testing import ToolsHarness, VettedContacts

PLACES = [
    "New South Wales", "Texas", "Ontario", "the UK", "Ireland", "Sydney", "Birmingham, Alabama",
    "Northern Ireland", "France", "Japan", "Brazil", "New Zealand", "India", "Oz", "the States",
    "Quebec", "Wales", "Berlin", "Lagos", "somewhere quiet",
]  # fmt: skip
FRAMES = [
    "I live in {p}", "I'm in {p}", "my sister lives in {p}", "I used to live in {p}", "{p}",
    "I'm from {p} but I live in {p2}", 'she said "I\'m in {p}"', "I'd rather not say where I am",
    "I'm calling from {p}", "I'm in {p}, not in {p2} anymore",
]  # fmt: skip
FEELINGS = [
    "", "I want to die.", "I can't do this anymore.", "work is killing me.",
    "I'm going to kill myself tonight.", "I just need someone to talk to.",
]  # fmt: skip
# What a user might say that looks like a contact: none of it may come back.
NOISE = [
    "", "my number is 555 0199", "call me on +44 7700 900123", "I saw www.fake-help.example",
    "is 0800 123 4567 a real helpline?", "my therapist's site is https://my-therapist.com",
    "text 12345 for help", "my friend said to ring 13 00 00", "the code was 911-1234",
]  # fmt: skip

message = st.builds(
    lambda frame, p, p2, feeling, noise, case: case(
        " ".join(part for part in (frame.format(p=p, p2=p2), feeling, noise) if part)
    ),
    st.sampled_from(FRAMES),
    st.sampled_from(PLACES),
    st.sampled_from(PLACES),
    st.sampled_from(FEELINGS),
    st.sampled_from(NOISE),
    st.sampled_from([str, str.lower, str.upper]),
)
risk = st.sampled_from(["moderate", "high", "imminent"])


@settings(max_examples=400, deadline=None)
@given(current=message, earlier=st.lists(message, max_size=3), level=risk)
def test_crisis_outputs_hold_only_vetted_contacts(
    current: str, earlier: list[str], level: str, vetted: VettedContacts
) -> None:
    transcript = [TranscriptLine(role="user", text=text) for text in earlier]
    lookup = _directory().lookup(locate_user(current, transcript))
    template = support_template(level, lookup)  # type: ignore[arg-type]
    for output in (lookup, template):
        assert not vetted.unvetted(output.model_dump(mode="json")), current


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(current=message, level=risk, query=message)
async def test_every_tool_over_nats_holds_only_vetted_contacts(
    tools: ToolsHarness, current: str, level: str, query: str
) -> None:
    # ``tools.call`` asserts the check on each output.
    await tools.call("lookup_crisis_resources", message=current)
    await tools.call(
        "get_crisis_support_template",
        {"risk_level": level, "inferred_location": current[:120]},
        message=current,
    )
    await tools.call("answer_grounded_lookup", {"query": query[:500]})
    await tools.call("start_guided_exercise", {"exercise_type": "grounding_box_breathing"})
    await tools.call(
        "record_guided_exercise_progress",
        {
            "expected_skill_id": "grounding_box_breathing",
            "expected_step_id": "inhale",
            "outcome": "partial",
            "user_response_summary": query[:500],
        },
    )


def test_the_check_itself_catches_an_unvetted_contact(vetted: VettedContacts) -> None:
    assert vetted.unvetted({"text": "call 555 0199"}) == ["555 0199"]
    assert vetted.unvetted({"url": "https://fake-help.example.org/x"})
    assert not vetted.unvetted({"phone": "13 11 14", "url": "https://988lifeline.org"})
    assert not vetted.unvetted({"guidance": "breathe in for 4, hold for 4, one to ten"})


_DIRECTORY: list[CrisisDirectory] = []


def _directory() -> CrisisDirectory:
    if not _DIRECTORY:
        _DIRECTORY.append(CrisisDirectory.packaged())
    return _DIRECTORY[0]
