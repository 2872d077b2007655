"""Crisis resources: the verified lines for where the user said they are, and nothing else.

Every row comes from the packaged data file, which names the page each row was checked against
and when. The region's emergency number comes from its own sourced file. Nothing here invents
a number, a name or a link: if the data has no line for a place, the answer says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from importlib import resources
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from opencouch.contracts.care import CrisisResource, CrisisResourcesOutput
from opencouch.contracts.tools import CRISIS_FALLBACK
from opencouch.tools.content import ContentError
from opencouch.tools.location import UserLocation

MAX_RESOURCES: Final = 5
DIRECTORY_REGION: Final = "INTL"


class EmergencyNumber(BaseModel):
    """A region's emergency number, and the page that says so."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    number: str
    source_url: str
    verified_on: date


GUIDANCE: Final = {
    "found": (
        "Name only these resources, exactly as given, and offer one clearly. If the user may be "
        "in immediate danger, say that the emergency number can help right away."
    ),
    "no_location": (
        "The user has not said where they are. Ask gently which country they are in before "
        "naming a line; until then name only the international directory listed here, and say "
        "that local emergency services can help right away if they are in danger."
    ),
    "location_refused": (
        "The user would rather not say where they are; respect that and do not ask again now. "
        "Offer the international directory listed here, and say that local emergency services "
        "can help right away if they are in danger."
    ),
    "no_verified_results": (
        "There is no verified crisis line for that place in our data. Offer the international "
        "directory listed here and the emergency number if one is given; name no other number "
        "or service."
    ),
    "lookup_error": CRISIS_FALLBACK,
}


class CrisisDirectory:
    """The verified crisis resources and emergency numbers, loaded once from packaged data."""

    def __init__(
        self, rows: Iterable[CrisisResource], emergency_numbers: Iterable[EmergencyNumber]
    ) -> None:
        self._rows = list(rows)
        self._emergency = {entry.region: entry for entry in emergency_numbers}

    @classmethod
    def packaged(cls) -> CrisisDirectory:
        """The directory shipped with this service; a malformed file stops the service."""
        data = resources.files(__package__).joinpath("data")
        try:
            rows = [
                CrisisResource.model_validate(row)
                for row in json.loads(data.joinpath("crisis_resources.json").read_text())[
                    "resources"
                ]
            ]
            numbers = [
                EmergencyNumber.model_validate(row)
                for row in json.loads(data.joinpath("emergency_numbers.json").read_text())[
                    "numbers"
                ]
            ]
        except (KeyError, ValueError, ValidationError) as error:
            raise ContentError(f"crisis data is malformed: {error}") from error
        for row in rows:
            if not (row.phone or row.text or row.url):
                raise ContentError(f"crisis resource {row.name!r} has no way to reach it")
            if not row.source_url.startswith("https://"):
                raise ContentError(f"crisis resource {row.name!r} has no https source")
        return cls(rows, numbers)

    @property
    def rows(self) -> list[CrisisResource]:
        """Every verified row."""
        return list(self._rows)

    @property
    def emergency_numbers(self) -> list[EmergencyNumber]:
        """Every sourced emergency number."""
        return list(self._emergency.values())

    def international(self) -> list[CrisisResource]:
        """The rows that serve anyone, anywhere."""
        return [row for row in self._rows if row.region == DIRECTORY_REGION]

    def lookup(self, location: UserLocation) -> CrisisResourcesOutput:
        """Crisis lines for ``location``, with guidance on how the model may use them."""
        if location.status == "refused":
            return self._answer("location_refused", location, self.international())
        if location.status == "not_provided" or location.region is None:
            return self._answer("no_location", location, self.international())
        country = location.region.country
        local = [row for row in self._rows if row.region == country]
        if not local:
            return self._answer("no_verified_results", location, self.international())
        return self._answer("found", location, local + self.international())

    def _answer(
        self, status: str, location: UserLocation, rows: list[CrisisResource]
    ) -> CrisisResourcesOutput:
        region = location.region.country if location.region else None
        emergency = self._emergency.get(region) if region else None
        guidance = GUIDANCE[status]
        if location.origin_only:
            guidance += (
                f" The user said they are from {location.in_sentence}, not that they are there"
                " now; check gently before relying on it."
            )
        return CrisisResourcesOutput.model_validate(
            {
                "status": status,
                "location_status": location.status,
                "location": location.label,
                "region": region,
                "emergency_number": emergency.number if emergency else None,
                "resources": rows[:MAX_RESOURCES],
                "guidance": guidance,
            }
        )


def lookup_failed() -> CrisisResourcesOutput:
    """What the lookup says when it could not run: no resource, and the safe fallback."""
    return CrisisResourcesOutput(
        status="lookup_error",
        location_status="not_provided",
        guidance=GUIDANCE["lookup_error"],
    )
