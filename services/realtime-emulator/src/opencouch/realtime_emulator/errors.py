"""OpenAI's error shape, for HTTP responses and for ``error`` server events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RealtimeError(Exception):
    """An error OpenAI would report; carries its own HTTP status for the REST endpoints."""

    message: str
    code: str | None = None
    param: str | None = None
    type: str = "invalid_request_error"
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code or self.type}: {self.message}"

    def body(self) -> dict[str, Any]:
        """The HTTP body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def event_error(self, client_event_id: str | None) -> dict[str, Any]:
        """The ``error`` object of an ``error`` server event, naming the client event at fault."""
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": client_event_id,
        }


def missing_api_key() -> RealtimeError:
    """The 401 OpenAI sends when no bearer key came with the request."""
    return RealtimeError(
        message=(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        ),
        status=401,
    )


def invalid_api_key(key: str) -> RealtimeError:
    """The 401 OpenAI sends for a key it does not know (only a masked prefix is echoed)."""
    masked = key[:6] + "*" * 4 + key[-4:] if len(key) > 12 else "*" * 4
    return RealtimeError(
        message=f"Incorrect API key provided: {masked}.",
        code="invalid_api_key",
        status=401,
    )


def session_expired(seconds: float) -> RealtimeError:
    """What OpenAI sends when a session reaches its maximum duration."""
    duration = f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
    return RealtimeError(
        message=f"Your session hit the maximum duration of {duration}.", code="session_expired"
    )
