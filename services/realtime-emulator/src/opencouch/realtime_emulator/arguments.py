"""Function-call arguments made up to satisfy a tool's JSON schema.

Hints (a rule's literal arguments) are used wherever the schema accepts them; everything
else gets a plausible value: the user's words for free-text fields, the enum value closest
to what the user said, the bounds of numbers, defaults where the schema has them.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .words import content_words, overlap


def fill_arguments(
    schema: dict[str, Any], hints: dict[str, Any], user_text: str, *, array_items: int = 0
) -> Any:
    """A value valid for ``schema``: hints where they fit, else sensible made-up values.

    An array gets ``minItems`` items, or ``array_items`` when more and ``maxItems`` allows.
    """
    return _Filler(schema, user_text, array_items).value(schema, hints, name="")


class _Filler:
    def __init__(self, root: dict[str, Any], user_text: str, array_items: int = 0) -> None:
        self._root = root
        self._text = user_text.strip() or "emulated request"
        self._words = content_words(user_text)
        self._array_items = array_items

    def value(self, schema: dict[str, Any], hint: Any, name: str) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return hint if hint in schema["enum"] else self._closest(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [
                    self._resolve(o) for o in schema[key] if self._resolve(o).get("type") != "null"
                ]
                merged = {k: v for k, v in schema.items() if k != key}
                return self.value({**(options[0] if options else {}), **merged}, hint, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint if isinstance(hint, dict) else {})
        if hint is not None and _fits(hint, kind):
            return copy.deepcopy(hint)
        if "default" in schema:
            return copy.deepcopy(schema["default"])
        if kind == "array":
            items = schema.get("items") or {"type": "string"}
            count = max(int(schema.get("minItems", 0)), self._array_items)
            count = min(count, int(schema.get("maxItems", count)))
            return [self.value(items, None, name) for _ in range(count)]
        if kind == "boolean":
            return True
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            if "exclusiveMinimum" in schema and "minimum" not in schema:
                low = low + 1
            value = max(low, 1) if "maximum" not in schema or schema["maximum"] >= 1 else low
            return int(value) if kind == "integer" else float(value)
        return self._string(schema, name)

    def _closest(self, choices: list[Any]) -> Any:
        """The enum value sharing most words with what the user said (else the first)."""
        best, best_score = choices[0], 0
        for choice in choices:
            score = overlap(content_words(str(choice)), self._words)
            if score > best_score:
                best, best_score = choice, score
        return copy.deepcopy(best)

    def _object(self, schema: dict[str, Any], hints: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        wanted = [
            *schema.get("required", []),
            *(key for key in hints if key not in schema.get("required", [])),
        ]
        return {
            key: self.value(properties.get(key, {}), hints.get(key), key)
            for key in wanted
            if key in properties or schema.get("additionalProperties", True) is not False
        }

    def _string(self, schema: dict[str, Any], name: str) -> str:
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        if schema.get("format") == "date":
            return "2025-01-01"
        if schema.get("format") == "date-time":
            return "2025-01-01T12:00:00Z"
        lowered = name.lower()
        if any(
            word in lowered for word in ("query", "question", "quote", "text", "topic", "summary")
        ):
            text = self._text
        elif "location" in lowered or "region" in lowered or "country" in lowered:
            text = "United States"
        elif "language" in lowered or "locale" in lowered:
            text = "en"
        elif "id" in lowered.split("_"):
            text = "step_1"
        else:
            text = "emulated"
        minimum = int(schema.get("minLength", 1))
        maximum = int(schema.get("maxLength", max(len(text), minimum)))
        text = text[:maximum]
        return text + "x" * max(0, minimum - len(text))

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            target: Any = self._root
            if not ref.startswith("#/"):
                return {}
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema


def _fits(value: Any, kind: object) -> bool:
    checks: dict[object, tuple[type, ...]] = {
        "string": (str,),
        "integer": (int,),
        "number": (int, float),
        "boolean": (bool,),
        "array": (list,),
    }
    expected = checks.get(kind)
    if expected is None:
        return True
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, expected)
