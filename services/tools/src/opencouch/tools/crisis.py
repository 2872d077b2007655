"""Crisis resources: where the user said they are, and the verified lines for that place.

Location comes only from the user's own words in this conversation: never from IP, timezone
or accent, never from quoted text, and never from places that belong to someone else ("my
sister lives in Canada"). The resources come only from the verified data file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

from opencouch.contracts.care import CrisisResource, CrisisResourcesOutput, LocationStatus
from opencouch.contracts.common import TranscriptLine

MAX_RESOURCES: Final = 5
DIRECTORY_REGION: Final = "INTL"

# Place names a user might say, by the region code the data file uses.
_PLACES: Final[dict[str, tuple[str, ...]]] = {
    "US": (
        "united states",
        "the us",
        "the u.s.",
        "usa",
        "u.s.a.",
        "america",
        "the states",
        "california",
        "texas",
        "new york",
        "florida",
        "illinois",
        "washington state",
        "ohio",
        "georgia",
        "michigan",
        "pennsylvania",
        "arizona",
        "massachusetts",
        "oregon",
        "colorado",
        "chicago",
        "los angeles",
        "seattle",
        "boston",
        "san francisco",
    ),
    "CA": (
        "canada",
        "ontario",
        "quebec",
        "québec",
        "british columbia",
        "alberta",
        "manitoba",
        "nova scotia",
        "saskatchewan",
        "toronto",
        "montreal",
        "montréal",
        "vancouver",
        "calgary",
        "ottawa",
    ),
    "GB": (
        "united kingdom",
        "the uk",
        "the u.k.",
        "britain",
        "great britain",
        "england",
        "scotland",
        "wales",
        "northern ireland",
        "london",
        "manchester",
        "birmingham",
        "glasgow",
        "edinburgh",
        "cardiff",
        "belfast",
        "leeds",
        "liverpool",
        "bristol",
    ),
    "IE": ("ireland", "republic of ireland", "dublin", "cork", "galway", "limerick"),
    "AU": (
        "australia",
        "sydney",
        "melbourne",
        "brisbane",
        "perth",
        "adelaide",
        "canberra",
        "hobart",
        "darwin",
        "queensland",
        "victoria, australia",
        "new south wales",
    ),
}
_REGION_NAMES: Final = {
    "US": "the United States",
    "CA": "Canada",
    "GB": "the United Kingdom",
    "IE": "Ireland",
    "AU": "Australia",
}

# First-person phrasing that puts the speaker in a place.
_SELF_LOCATORS: Final = (
    r"i'?m (?:currently |now |living |staying |based )?(?:in|from|near|over in|out in)",
    r"i am (?:currently |now |living |staying |based )?(?:in|from|near)",
    r"i live (?:in|near)",
    r"i'?ve been living in",
    r"we'?re (?:in|from)",
    r"we live in",
    r"i'?m calling from",
    r"i'?m based in",
    r"(?:here|back home) in",
    r"my (?:home|location) is (?:in )?",
)
_REFUSALS: Final = (
    r"(?:don'?t|do not|won'?t|will not|rather not|prefer not to|not going to) "
    r"(?:want to )?(?:say|tell|share|give)(?: you)? where",
    r"(?:don'?t|do not|won'?t|will not) (?:want to )?(?:share|give|tell)(?: you)? my location",
    r"not telling you where",
    r"none of your business where",
    r"keep my location (?:private|to myself)",
)
# Only double quotes mark quoted speech: a single quote is too often an apostrophe.
_QUOTED: Final = re.compile('"[^"]*"|\u201c[^\u201d]*\u201d')


@dataclass(frozen=True)
class UserLocation:
    """What the user's words say about where they are."""

    status: LocationStatus
    region: str | None = None

    @property
    def label(self) -> str | None:
        """A readable name of the region, if one was provided."""
        return _REGION_NAMES.get(self.region) if self.region else None


def _normalise(text: str) -> str:
    text = _QUOTED.sub(" ", text)
    text = text.replace("\u2019", "'").lower()
    return re.sub(r"\s+", " ", text)


def _place_pattern(place: str) -> str:
    return r"(?<![\w])" + re.escape(place) + r"(?![\w])"


def locate_user(current_message: str, transcript: Sequence[TranscriptLine]) -> UserLocation:
    """Where the user said they are: the latest statement wins, and a refusal counts as one."""
    user_lines = [line.text for line in transcript if line.role == "user"]
    if current_message and (not user_lines or user_lines[-1] != current_message):
        user_lines.append(current_message)
    for raw in reversed(user_lines):
        text = _normalise(raw)
        if any(re.search(refusal, text) for refusal in _REFUSALS):
            return UserLocation(status="refused")
        region = _stated_region(text)
        if region is not None:
            return UserLocation(status="provided", region=region)
    return UserLocation(status="not_provided")


def _stated_region(text: str) -> str | None:
    """The region of the last place the speaker puts themselves in ("I'm from X, I live in Y")."""
    best: tuple[int, str] | None = None
    for locator in _SELF_LOCATORS:
        for match in re.finditer(locator, text):
            # The place must follow the locator closely: "I'm in Toronto", not a later clause.
            window = text[match.end() : match.end() + 40]
            for region, places in _PLACES.items():
                for place in places:
                    hit = re.search(_place_pattern(place), window)
                    if hit and (best is None or match.end() + hit.start() > best[0]):
                        best = (match.end() + hit.start(), region)
    return best[1] if best else None


class CrisisDirectory:
    """The verified crisis resources, loaded once from the packaged data file."""

    def __init__(self, rows: Iterable[CrisisResource]) -> None:
        self._rows = list(rows)

    @classmethod
    def packaged(cls) -> CrisisDirectory:
        """The directory shipped with this service."""
        raw = resources.files(__package__).joinpath("data/crisis_resources.json").read_text()
        return cls(CrisisResource.model_validate(row) for row in json.loads(raw)["resources"])

    def for_region(self, region: str) -> list[CrisisResource]:
        """The rows for ``region``, then the international directory, at most five."""
        rows = [row for row in self._rows if row.region == region]
        rows += [row for row in self._rows if row.region == DIRECTORY_REGION]
        return rows[:MAX_RESOURCES]

    def international(self) -> list[CrisisResource]:
        """The international directory rows only."""
        return [row for row in self._rows if row.region == DIRECTORY_REGION]

    def lookup(self, location: UserLocation) -> CrisisResourcesOutput:
        """Crisis lines for ``location``, with guidance for the model on how to use them."""
        if location.status == "refused":
            return CrisisResourcesOutput(
                status="location_refused",
                location_status="refused",
                resources=self.international(),
                guidance=(
                    "The user does not want to share where they are; respect that. Offer the "
                    "international directory, and say that local emergency services can help "
                    "right away if they are in danger."
                ),
            )
        if location.status == "not_provided" or location.region is None:
            return CrisisResourcesOutput(
                status="no_location",
                location_status="not_provided",
                resources=self.international(),
                guidance=(
                    "The user has not said where they are. Ask gently which country they are "
                    "in before naming a line; meanwhile only the international directory may "
                    "be named, and local emergency services if they are in danger."
                ),
            )
        rows = [row for row in self.for_region(location.region) if row.region != DIRECTORY_REGION]
        if not rows:
            return CrisisResourcesOutput(
                status="no_verified_results",
                location_status="provided",
                location=location.label,
                resources=self.international(),
                guidance=(
                    "There is no verified line for that place. Offer the international "
                    "directory and local emergency services; do not name any other number."
                ),
            )
        return CrisisResourcesOutput(
            status="found",
            location_status="provided",
            location=location.label,
            resources=self.for_region(location.region),
            guidance=(
                "Name only these resources, exactly as given. Offer one clearly, and say that "
                "local emergency services can help right away if the user is in danger."
            ),
        )
