"""Validate JSON against OpenAI's Realtime schemas.

Two sources, by the schema names of OpenAI's official spec (``RealtimeServerEvent``, ...):

- Always: the types of the locked ``openai`` SDK (``openai.types.realtime``), which OpenAI
  generates from that same spec. What a client sends (requests, client events, tools) is checked
  strictly: no unknown field, no coercion. What a server sends is checked as the SDK reads it
  (strict types; fields the SDK does not know yet are allowed, as OpenAI may add some).
- When present: the official spec itself, at ``../shared/openai-realtime/openapi-realtime.json``
  beside the clone (or ``$OPENCOUCH_SHARED_DIR``), as a stricter JSON-schema check on top. A
  clone with nothing beside it simply runs without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import jsonschema
from openai.types.realtime import (
    ClientSecretCreateParams,
    ClientSecretCreateResponse,
    RealtimeClientEventParam,
    RealtimeFunctionToolParam,
    RealtimeServerEvent,
    RealtimeSessionCreateRequestParam,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import ErrorDetails
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_RELATIVE = Path("openai-realtime") / "openapi-realtime.json"

# The official spec's schema name -> the SDK type for it, and whether it is something a client
# sends (closed: unknown fields are errors, as the API refuses them) or a server sends (open).
SDK_TYPES: dict[str, tuple[Any, bool]] = {
    "RealtimeClientEvent": (RealtimeClientEventParam, True),
    "RealtimeCreateClientSecretRequest": (ClientSecretCreateParams, True),
    "RealtimeFunctionTool": (RealtimeFunctionToolParam, True),
    "RealtimeSessionCreateRequestGA": (RealtimeSessionCreateRequestParam, True),
    "RealtimeServerEvent": (RealtimeServerEvent, False),
    "RealtimeCreateClientSecretResponse": (ClientSecretCreateResponse, False),
}


class SchemaMismatchError(AssertionError):
    """An instance does not match the named schema; the message lists every problem."""


# -- the official spec, when it is beside the clone ------------------------------------------


def shared_dir() -> Path | None:
    """The ``shared/`` folder holding the official spec, or None when there is none.

    ``$OPENCOUCH_SHARED_DIR`` when set, else the first ``shared/`` beside a parent of this file
    that holds the spec (``../shared`` from the repository root).
    """
    configured = os.environ.get("OPENCOUCH_SHARED_DIR")
    if configured:
        return Path(configured) if (Path(configured) / SPEC_RELATIVE).is_file() else None
    for parent in Path(__file__).resolve().parents:
        candidate = parent.parent / "shared"
        if (candidate / SPEC_RELATIVE).is_file():
            return candidate
    return None


@cache
def official_spec() -> dict[str, Any] | None:
    """The official Realtime OpenAPI document, or None when it is not beside the clone."""
    folder = shared_dir()
    if folder is None:
        return None
    with (folder / SPEC_RELATIVE).open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


@cache
def _spec_validator(schema_name: str) -> jsonschema.protocols.Validator | None:
    spec = official_spec()
    if spec is None:
        return None
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema named {schema_name!r} in the official spec")
    registry: Registry[Any] = Registry().with_resource(
        "urn:openai-realtime", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:openai-realtime#/components/schemas/{schema_name}"}
    validator_cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft202012Validator)
    return validator_cls(schema, registry=registry)


# -- the SDK's types -------------------------------------------------------------------------


def _tagged(sdk_type: Any) -> Any:
    """A union of event types as a union tagged by ``type``, so an error names one member."""
    if get_origin(sdk_type) is Annotated:
        sdk_type = get_args(sdk_type)[0]
    if get_origin(sdk_type) is not Union:
        return sdk_type
    return Annotated[Union[get_args(sdk_type)], Field(discriminator="type")]  # noqa: UP007


@cache
def _sdk_adapter(schema_name: str) -> TypeAdapter[Any]:
    if schema_name not in SDK_TYPES:
        raise KeyError(f"no openai SDK type is mapped to {schema_name!r}")
    sdk_type, closed = SDK_TYPES[schema_name]
    # The SDK's request types are TypedDicts with no config of their own, so they take this
    # wrapper's: closed and strict all the way down. Its response models keep their own
    # (unknown fields allowed); strictness for them comes from the validate call.
    wrapper = create_model(
        f"Checked{schema_name}",
        __config__=ConfigDict(extra="forbid" if closed else "ignore", strict=True),
        value=(_tagged(sdk_type), ...),
    )
    return TypeAdapter(wrapper)


def _location(path: Iterable[int | str]) -> str:
    return ".".join(str(part) for part in path) or "(root)"


def _describe(errors: list[ErrorDetails], prefix: tuple[int | str, ...]) -> list[str]:
    return [f"{_location((*prefix, *error['loc']))}: {error['msg']}" for error in errors]


def _materialize(value: Any, path: tuple[int | str, ...], problems: list[str]) -> None:
    """Validate what pydantic left lazy (``Iterable`` fields), collecting its errors."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _materialize(getattr(value, name), (*path, name), problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            _materialize(item, (*path, key), problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _materialize(item, (*path, index), problems)
    elif type(value).__name__ == "ValidatorIterator":
        try:
            items = list(value)
        except ValidationError as error:
            problems.extend(_describe(error.errors(include_url=False), path))
            return
        for index, item in enumerate(items):
            _materialize(item, (*path, index), problems)


def _sdk_problems(schema_name: str, instance: Any) -> list[str]:
    adapter = _sdk_adapter(schema_name)
    try:
        checked = adapter.validate_json(json.dumps({"value": instance}), strict=True)
    except ValidationError as error:
        # Every location starts with the wrapper's own field; drop it.
        return [f"{_location(e['loc'][1:])}: {e['msg']}" for e in error.errors(include_url=False)]
    problems: list[str] = []
    _materialize(checked.value, (), problems)
    return problems


# -- the checks the tests call ---------------------------------------------------------------


def errors_against(schema_name: str, instance: Any) -> list[str]:
    """Every problem of ``instance`` against the named schema; empty when it is valid.

    The SDK's types always; the official spec's JSON schema too when it is beside the clone.
    """
    problems = [f"openai SDK: {problem}" for problem in _sdk_problems(schema_name, instance)]
    validator = _spec_validator(schema_name)
    if validator is not None:
        problems += [f"official spec: {e.message}" for e in validator.iter_errors(instance)]
    return problems


def validate_against(schema_name: str, instance: Any) -> None:
    """Raise ``SchemaMismatchError`` unless ``instance`` matches the named schema."""
    problems = errors_against(schema_name, instance)
    if problems:
        raise SchemaMismatchError(f"not a valid {schema_name}:\n" + "\n".join(problems))


def event_problems(schema_name: str, events: list[dict[str, Any]]) -> list[str]:
    """One line per event that fails the named schema: its type and the first error."""
    problems = []
    for event in events:
        errors = errors_against(schema_name, event)
        if errors:
            problems.append(f"{event.get('type')}: {errors[0][:300]}")
    return problems
