"""The NATS services' health check pings the server the service itself reads."""

from __future__ import annotations

import pytest

from opencouch.runtime.health import service_nats_url
from opencouch.runtime.settings import ServiceSettings


class _ToolsLike(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "TOOLS_"}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "nats://127.0.0.1:4222"),
        ({"NATS_URL": "nats://shared:4222"}, "nats://shared:4222"),
        # The service reads its own first; the check read only NATS_URL and pinged another server.
        (
            {"NATS_URL": "nats://shared:4222", "TOOLS_NATS_URL": "nats://own:4222"},
            "nats://own:4222",
        ),
        ({"TOOLS_NATS_URL": "nats://own:4222"}, "nats://own:4222"),
    ],
)
def test_the_health_check_pings_the_server_its_service_reads(
    environment: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("NATS_URL", "TOOLS_NATS_URL"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert service_nats_url("opencouch-tools") == expected
    assert _ToolsLike().nats_url == expected  # what the service itself connects to
