"""Check request bodies and client events against the openai SDK's own parameter types.

The SDK's ``*Param`` TypedDicts are generated from OpenAI's spec, so they are the run-time
source of truth here. pydantic's TypeAdapter accepts unknown keys in a TypedDict and checks an
``Iterable[...]`` only lazily, while OpenAI refuses unknown parameters and names the offending
path (``session.audio.input.foo``); this walker does both, with OpenAI's messages and codes.
"""

from __future__ import annotations

import collections.abc
import json
import types
import typing
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import typing_extensions

from .errors import RealtimeError

_WRAPPERS = (
    typing.Required,
    typing.NotRequired,
    typing_extensions.Required,
    typing_extensions.NotRequired,
)
_LISTS = (list, collections.abc.Iterable, collections.abc.Sequence, collections.abc.MutableSequence)


def check_params(annotation: object, value: object, path: str = "") -> None:
    """Raise ``RealtimeError`` (400, OpenAI's wording) unless ``value`` fits ``annotation``."""
    _check(annotation, value, path)


def _check(annotation: object, value: object, path: str) -> None:
    origin = get_origin(annotation)
    if origin in _WRAPPERS or origin is typing.Annotated:
        _check(get_args(annotation)[0], value, path)
        return
    if annotation is object or annotation is Any:
        return
    if annotation is type(None) or annotation is None:
        if value is not None:
            raise _invalid_type(path, "null", value)
        return
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices or isinstance(value, bool) != any(
            isinstance(c, bool) for c in choices
        ):
            raise _invalid_value(path, value, choices)
        return
    if origin is Union or origin is types.UnionType:
        _check_union(get_args(annotation), value, path)
        return
    if typing_extensions.is_typeddict(annotation):
        _check_typeddict(annotation, value, path)
        return
    if origin in _LISTS:
        if not isinstance(value, list):
            raise _invalid_type(path, "an array", value)
        (item_type,) = get_args(annotation) or (object,)
        for index, item in enumerate(value):
            _check(item_type, item, f"{path}[{index}]")
        return
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _invalid_type(path, "an object", value)
        args = get_args(annotation)
        if args:
            for key, item in value.items():
                _check(args[1], item, _join(path, str(key)))
        return
    _check_scalar(annotation, value, path)


def _check_scalar(annotation: object, value: object, path: str) -> None:
    if annotation is str:
        ok = isinstance(value, str)
        expected = "a string"
    elif annotation is bool:
        ok = isinstance(value, bool)
        expected = "a boolean"
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a decimal"
    else:
        raise TypeError(f"no check for {annotation!r} at {path!r}")
    if not ok:
        raise _invalid_type(path, expected, value)


def _check_union(members: tuple[object, ...], value: object, path: str) -> None:
    candidates = list(members)
    if isinstance(value, dict) and "type" in value:
        tagged = [m for m in candidates if _type_tag_accepts(m, value["type"])]
        if tagged:
            candidates = tagged
        elif any(_type_tags(m) for m in candidates):
            tags = tuple(sorted({str(tag) for m in candidates for tag in _type_tags(m)}))
            raise _invalid_value(_join(path, "type"), value["type"], tags)
    first_error: RealtimeError | None = None
    shaped_alike = False
    for member in candidates:
        try:
            _check(member, value, path)
        except RealtimeError as error:
            # Report the first member shaped like the value (an object for an object): that
            # is the one the sender most likely meant.
            alike = _is_object_type(member) == isinstance(value, dict)
            if first_error is None or (alike and not shaped_alike):
                first_error, shaped_alike = error, alike
            continue
        return
    assert first_error is not None
    raise first_error


def _check_typeddict(annotation: Any, value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise _invalid_type(path, "an object", value)
    fields = _fields(annotation)
    for key in value:
        if key not in fields:
            raise RealtimeError(
                message=f"Unknown parameter: '{_join(path, str(key))}'.",
                code="unknown_parameter",
                param=_join(path, str(key)),
            )
    for key in _required(annotation):
        if key not in value:
            raise RealtimeError(
                message=f"Missing required parameter: '{_join(path, key)}'.",
                code="missing_required_parameter",
                param=_join(path, key),
            )
    for key, item in value.items():
        _check(fields[key], item, _join(path, key))


@cache
def _fields(annotation: Any) -> dict[str, object]:
    return typing_extensions.get_type_hints(annotation, include_extras=True)


@cache
def _required(annotation: Any) -> tuple[str, ...]:
    # The SDK's modules use postponed annotations, so ``__required_keys__`` misses their
    # ``Required[...]`` markers; read them from the resolved hints instead.
    total = bool(getattr(annotation, "__total__", True))
    required = []
    for key, hint in _fields(annotation).items():
        origin = get_origin(hint)
        if origin in (typing.Required, typing_extensions.Required) or (
            total and origin not in (typing.NotRequired, typing_extensions.NotRequired)
        ):
            required.append(key)
    return tuple(sorted(required))


def _type_tags(member: object) -> tuple[object, ...]:
    while get_origin(member) in _WRAPPERS:
        member = get_args(member)[0]
    if not typing_extensions.is_typeddict(member):
        return ()
    tag = _fields(member).get("type")
    while get_origin(tag) in _WRAPPERS:
        tag = get_args(tag)[0]
    return get_args(tag) if get_origin(tag) is Literal else ()


def _type_tag_accepts(member: object, tag: object) -> bool:
    return tag in _type_tags(member)


def _is_object_type(member: object) -> bool:
    while get_origin(member) in _WRAPPERS:
        member = get_args(member)[0]
    return typing_extensions.is_typeddict(member) or get_origin(member) is dict


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(path: str, expected: str, value: object) -> RealtimeError:
    return RealtimeError(
        message=(
            f"Invalid type for '{path}': expected {expected}, but got {_describe(value)} instead."
        ),
        code="invalid_type",
        param=path or None,
    )


def _invalid_value(path: str, value: object, choices: tuple[object, ...]) -> RealtimeError:
    supported = ", ".join(f"'{choice}'" for choice in choices)
    return RealtimeError(
        message=f"Invalid value: {json.dumps(value)[:64]}. Supported values are: {supported}.",
        code="invalid_value",
        param=path or None,
    )


def check_range(path: str, value: object, minimum: float, maximum: float) -> None:
    """OpenAI's bounds error for a number outside ``[minimum, maximum]``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    kind = "integer" if isinstance(value, int) else "decimal"
    if value < minimum:
        raise RealtimeError(
            message=(
                f"Invalid '{path}': {kind} below minimum value. "
                f"Expected a value >= {minimum:g}, but got {value} instead."
            ),
            code=f"{kind}_below_min_value",
            param=path,
        )
    if value > maximum:
        raise RealtimeError(
            message=(
                f"Invalid '{path}': {kind} above maximum value. "
                f"Expected a value <= {maximum:g}, but got {value} instead."
            ),
            code=f"{kind}_above_max_value",
            param=path,
        )
