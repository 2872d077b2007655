"""Run by test_wheel.py with pytest in the fresh virtual environment: the wheel's own plugin
provides the ``realtime_emulator`` fixture, nothing else does."""

from __future__ import annotations

from typing import Any

from openai import OpenAI


def test_the_fixture_serves_the_emulator(realtime_emulator: Any) -> None:
    client = OpenAI(api_key=realtime_emulator.api_key, base_url=realtime_emulator.base_url)
    secret = client.realtime.client_secrets.create(session={"type": "realtime"})
    assert secret.value.startswith("ek_")
    assert secret.session.type == "realtime"
