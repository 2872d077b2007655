"""Function tools shaped like the product's (no-argument tools, enums, bounded strings)."""

from __future__ import annotations

from typing import Any

EXERCISES = ["grounding_5_4_3_2_1", "grounding_box_breathing", "self_compassion_break"]


def _tool(
    name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": f"{name.replace('_', ' ')}.",
        "parameters": {
            "type": "object",
            "properties": properties or {},
            "required": required or [],
            "additionalProperties": False,
        },
    }


PRODUCT_TOOLS: list[dict[str, Any]] = [
    _tool("wait_for_user"),
    _tool("show_memory_status"),
    _tool("lookup_crisis_resources"),
    _tool(
        "get_crisis_support_template",
        {
            "risk_level": {"type": "string", "enum": ["moderate", "high", "imminent"]},
            "inferred_location": {"type": "string", "maxLength": 120},
        },
        ["risk_level"],
    ),
    _tool(
        "list_guided_exercise_skills",
        {"channel": {"type": "string", "enum": ["voice", "text"]}},
    ),
    _tool(
        "load_guided_exercise_skill",
        {
            "exercise_type": {"type": "string", "enum": EXERCISES},
            "runtime_action": {
                "type": "string",
                "enum": ["start", "continue", "repeat_step", "simplify", "finish"],
            },
            "current_step_index": {"type": "integer", "minimum": 0, "maximum": 20},
        },
        ["exercise_type", "runtime_action"],
    ),
    _tool(
        "recall_saved_memory",
        {
            "query": {"type": "string", "minLength": 1, "maxLength": 500},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
        },
        ["query"],
    ),
    _tool(
        "save_response_preference",
        {
            "preference_text": {"type": "string", "minLength": 1, "maxLength": 500},
            "user_quote": {"type": "string", "maxLength": 500},
        },
        ["preference_text", "user_quote"],
    ),
]


def tools_named(*names: str) -> list[dict[str, Any]]:
    """The product tools with these names, in catalog order."""
    return [tool for tool in PRODUCT_TOOLS if tool["name"] in names]
