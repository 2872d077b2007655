"""Location comes only from the user's own first-person words; resources only from the data."""

from __future__ import annotations

import pytest

from opencouch.contracts.common import TranscriptLine
from opencouch.tools.crisis import CrisisDirectory, UserLocation, locate_user


@pytest.mark.parametrize(
    ("message", "status", "region"),
    [
        ("I'm in Toronto and I can't do this anymore", "provided", "CA"),
        ("I live in London", "provided", "GB"),
        ("I\u2019m from the UK but I live in Dublin now", "provided", "IE"),
        ("we're in Sydney", "provided", "AU"),
        ("my sister lives in Canada and I feel awful", "not_provided", None),
        ('she kept saying "I am in Australia" to me', "not_provided", None),
        ("work is killing me", "not_provided", None),
        ("I don't want to say where I am", "refused", None),
    ],
)
def test_location_is_only_what_the_user_says_of_themselves(
    message: str, status: str, region: str | None
) -> None:
    assert locate_user(message, []) == UserLocation(status=status, region=region)  # type: ignore[arg-type]


def test_location_from_earlier_user_turns_but_not_the_assistant() -> None:
    transcript = [
        TranscriptLine(role="assistant", text="Are you in the US?"),
        TranscriptLine(role="user", text="I'm in Melbourne"),
        TranscriptLine(role="user", text="I just feel so alone"),
    ]
    assert locate_user("I just feel so alone", transcript).region == "AU"
    assistant_only = [TranscriptLine(role="assistant", text="I'm in the United States")]
    assert locate_user("help", assistant_only).status == "not_provided"


def test_lookup_names_only_verified_rows_with_sources() -> None:
    directory = CrisisDirectory.packaged()
    found = directory.lookup(UserLocation(status="provided", region="US"))
    assert found.status == "found"
    assert [row.name for row in found.resources][:2] == [
        "988 Suicide & Crisis Lifeline",
        "Crisis Text Line",
    ]
    assert all(row.source_url.startswith("https://") for row in found.resources)
    assert len(found.resources) <= 5

    unknown = directory.lookup(UserLocation(status="not_provided"))
    assert unknown.status == "no_location"
    assert [row.region for row in unknown.resources] == ["INTL"]

    refused = directory.lookup(UserLocation(status="refused"))
    assert refused.status == "location_refused"
