"""``POST /v1/responses``: the Responses API without a model, for structured outputs.

A request whose ``text.format`` is a JSON schema is answered with JSON valid for that schema,
made up the way tool arguments are (``arguments.py``): free-text fields such as ``summary``
take the start of the last user input, other strings a placeholder, arrays one item (or
``minItems``), numbers their bounds. The same request always gets the same output text. Any
other request gets a fixed line of text. Non-streaming only; tools are never called.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming

from .arguments import fill_arguments
from .errors import RealtimeError
from .ids import new_id
from .params import check_params

PLAIN_REPLY: Final = "This is an emulated response."
ECHO_MAX_CHARS: Final = 200
_CHARS_PER_TOKEN: Final = 4


def check_response_request(body: object) -> dict[str, Any]:
    """The request body, or a 400 as OpenAI's: unknown parameters, wrong types, streaming."""
    check_params(ResponseCreateParamsNonStreaming, body)
    assert isinstance(body, dict)
    if body.get("stream"):
        raise RealtimeError(
            message="Streaming responses are not emulated; send 'stream': false.",
            code="unsupported_value",
            param="stream",
        )
    if body.get("background"):
        raise RealtimeError(
            message="Background responses are not emulated.",
            code="unsupported_value",
            param="background",
        )
    if not body.get("model"):
        raise RealtimeError(
            message="Missing required parameter: 'model'.",
            code="missing_required_parameter",
            param="model",
        )
    return body


def create_response(body: dict[str, Any]) -> dict[str, Any]:
    """A completed ``Response`` object answering ``body`` (already checked)."""
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    words = last_user_text(body.get("input"))
    if text_format.get("type") == "json_schema":
        schema = text_format.get("schema") or {}
        value = fill_arguments(schema, {}, _opening(words), array_items=1)
        output_text = json.dumps(value, ensure_ascii=False)
    elif text_format.get("type") == "json_object":
        output_text = "{}"
    else:
        output_text = PLAIN_REPLY
    prompt = json.dumps(body.get("input")) + str(body.get("instructions") or "")
    input_tokens = max(1, len(prompt) // _CHARS_PER_TOKEN)
    output_tokens = max(1, len(output_text) // _CHARS_PER_TOKEN)
    return {
        "id": new_id("resp_", 32),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body["model"],
        "output": [
            {
                "type": "message",
                "id": new_id("msg_", 32),
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": output_text, "annotations": [], "logprobs": []}
                ],
            }
        ],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text_format},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
    }


def last_user_text(items: object) -> str:
    """The text of the last user message of a request's ``input`` (a string is one)."""
    if isinstance(items, str):
        return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "input_text"
            )
    return ""


def _opening(text: str) -> str:
    """The start of ``text``, cut at a word, for free-text fields to echo."""
    flat = " ".join(text.split())
    if len(flat) <= ECHO_MAX_CHARS:
        return flat
    return flat[:ECHO_MAX_CHARS].rsplit(" ", 1)[0]
