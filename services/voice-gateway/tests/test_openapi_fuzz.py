"""schemathesis against the gateway's own OpenAPI schema: no 5xx, every reply as documented.

A valid voice-session token is supplied, so the authenticated routes are explored past the
token check too (a generated ``/end`` may end that session: later calls then meet the
documented 409).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from opencouch.voice_gateway.app import create_app
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.testing import API, LiveGateway, unique

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def token(live_gateway: LiveGateway) -> str:
    reply = httpx.post(
        f"{live_gateway.url}{API}/session",
        json={
            "thread_id": unique("fuzz"),
            "user_id": unique("fuzzer"),
            "memory_mode": "persistent",
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    value: str = reply.json()["token"]
    return value


# The schema is the app's own, built without starting it; calls go to the live gateway.
schema = schemathesis.openapi.from_dict(create_app(GatewaySettings()).openapi())


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_reply_fits_the_schema(
    case: Any, live_gateway: LiveGateway, token: str
) -> None:
    case.call_and_validate(
        base_url=live_gateway.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=30,
    )
