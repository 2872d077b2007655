"""Validate JSON against the official OpenAI Realtime schemas in ``../shared/openai-realtime``.

The spec is read where CI and developers keep it (beside the clone); the product never needs
it. ``OPENCOUCH_SHARED_DIR`` overrides the search.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_RELATIVE = Path("openai-realtime") / "openapi-realtime.json"


class SpecNotFoundError(RuntimeError):
    """The official spec is not where CI keeps it."""


def shared_dir() -> Path:
    """The ``shared/`` folder: ``$OPENCOUCH_SHARED_DIR``, else ``../shared`` from the repo root."""
    configured = os.environ.get("OPENCOUCH_SHARED_DIR")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent.parent / "shared"
        if (candidate / SPEC_RELATIVE).is_file():
            return candidate
    raise SpecNotFoundError("../shared/openai-realtime/openapi-realtime.json not found")


@cache
def _spec() -> dict[str, Any]:
    with (shared_dir() / SPEC_RELATIVE).open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


@cache
def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    spec = _spec()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema named {schema_name!r} in the official spec")
    registry: Registry[Any] = Registry().with_resource(
        "urn:openai-realtime", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:openai-realtime#/components/schemas/{schema_name}"}
    validator_cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft202012Validator)
    return validator_cls(schema, registry=registry)


def validate_against(schema_name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches the named schema."""
    _validator(schema_name).validate(instance)


def errors_against(schema_name: str, instance: Any) -> list[str]:
    """Every validation error message, empty when ``instance`` is valid."""
    return [error.message for error in _validator(schema_name).iter_errors(instance)]


def event_problems(schema_name: str, events: list[dict[str, Any]]) -> list[str]:
    """One line per event that fails the named schema: its type and the first error."""
    problems = []
    for event in events:
        errors = errors_against(schema_name, event)
        if errors:
            problems.append(f"{event.get('type')}: {errors[0][:300]}")
    return problems
