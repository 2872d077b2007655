"""``POST /v1/responses`` through the unchanged openai SDK: a structured output valid for the
request's JSON schema, the same for the same request, and OpenAI's errors for bad requests."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from openai import AsyncOpenAI, BadRequestError
from openai.types.responses import Response
from pydantic import BaseModel, Field

from opencouch.realtime_emulator.testing import RunningEmulator
from opencouch.realtime_emulator.text_responses import PLAIN_REPLY


class Step(BaseModel):
    title: str
    minutes: int = Field(ge=5, le=90)


class Plan(BaseModel):
    summary: str
    tags: list[str] = Field(max_length=3)
    steps: list[Step]
    priority: str | None
    level: int = Field(ge=2, le=4)
    done: bool


def client(emulator: RunningEmulator) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)


async def test_a_structured_output_is_valid_for_its_schema_and_deterministic(
    emulator: RunningEmulator,
) -> None:
    words = "Plan my week: finish the report, call the dentist, and rest on Sunday. " * 10
    parsed = []
    for _ in range(2):
        response = await client(emulator).responses.parse(
            model="gpt-4.1-mini",
            instructions="Make a plan.",
            input=[{"role": "user", "content": words}],
            text_format=Plan,
            store=False,
        )
        assert response.status == "completed"
        assert response.output_parsed is not None
        parsed.append(response.output_parsed)
    first = parsed[0]
    assert parsed[1] == first
    assert first.summary.startswith("Plan my week: finish the report")
    assert len(first.summary) <= 200
    assert len(first.tags) == 1
    assert len(first.steps) == 1
    assert first.steps[0].minutes >= 5
    assert 2 <= first.level <= 4


async def test_the_raw_reply_is_a_response_object_whose_text_fits_the_schema(
    emulator: RunningEmulator, http: httpx.AsyncClient
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "mood": {"type": "string", "enum": ["calm", "tense"]},
            "notes": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "score": {"type": "number", "minimum": 0.5},
        },
        "required": ["mood", "notes", "score"],
        "additionalProperties": False,
    }
    body = {
        "model": "gpt-4.1-mini",
        "input": "I feel tense today",
        "text": {"format": {"type": "json_schema", "name": "Mood", "schema": schema}},
    }
    reply = await http.post(
        "/v1/responses", json=body, headers={"Authorization": f"Bearer {emulator.api_key}"}
    )
    assert reply.status_code == 200, reply.text
    response = Response.model_validate(reply.json())
    value = json.loads(response.output_text)
    jsonschema.validate(value, schema)
    assert value["mood"] == "tense"
    assert len(value["notes"]) == 2

    plain = await client(emulator).responses.create(model="gpt-4.1-mini", input="Hello")
    assert plain.output_text == PLAIN_REPLY


async def test_bad_requests_get_openais_errors(
    emulator: RunningEmulator, http: httpx.AsyncClient
) -> None:
    api = client(emulator)
    with pytest.raises(BadRequestError) as unknown:
        await api.responses.create(
            model="gpt-4.1-mini",
            input="hi",
            extra_body={"temperature_scale": 2},
        )
    assert unknown.value.code == "unknown_parameter"
    with pytest.raises(BadRequestError) as background:
        await api.responses.create(
            model="gpt-4.1-mini", input="hi", extra_body={"background": True}
        )
    assert background.value.code == "unsupported_value"
    refused = await http.post("/v1/responses", json={"model": "x", "input": "hi"})
    assert refused.status_code == 401
