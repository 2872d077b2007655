"""Ephemeral client secrets (``ek_...``): minting, lookup and expiry."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.realtime.client_secret_create_params import ClientSecretCreateParams

from .errors import RealtimeError
from .ids import new_client_secret
from .params import check_params, check_range
from .sessions import check_session_config, new_session

DEFAULT_TTL_SECONDS = 600
MIN_TTL_SECONDS = 10
MAX_TTL_SECONDS = 7200


@dataclass
class ClientSecret:
    """A minted ephemeral key and the session config it carries."""

    value: str
    expires_at: int
    session: dict[str, Any]
    safety_identifier: str | None
    # The config as the minting request sent it, applied again to every call it starts.
    requested_session: dict[str, Any] = field(default_factory=dict)

    def expired(self, at: float | None = None) -> bool:
        """True once the secret may no longer start sessions."""
        return (time.time() if at is None else at) >= self.expires_at

    def response(self) -> dict[str, Any]:
        """The ``RealtimeCreateClientSecretResponse`` body."""
        return {
            "value": self.value,
            "expires_at": self.expires_at,
            "session": copy.deepcopy(self.session),
        }


def check_create_request(body: object) -> None:
    """Raise a 400 ``RealtimeError`` unless ``body`` is a valid client-secret request."""
    check_params(ClientSecretCreateParams, body)
    assert isinstance(body, dict)
    seconds = (body.get("expires_after") or {}).get("seconds")
    check_range("expires_after.seconds", seconds, MIN_TTL_SECONDS, MAX_TTL_SECONDS)
    if "session" in body:
        check_session_config(body["session"])


class SecretStore:
    """Every secret minted by this emulator, for authenticating calls and for tests to inspect."""

    def __init__(self, *, default_model: str, default_voice: str) -> None:
        self._secrets: dict[str, ClientSecret] = {}
        self._default_model = default_model
        self._default_voice = default_voice

    def mint(self, body: dict[str, Any], safety_identifier: str | None) -> ClientSecret:
        """Create a secret for an already validated request body."""
        ttl = (body.get("expires_after") or {}).get("seconds", DEFAULT_TTL_SECONDS)
        expires_at = int(time.time()) + int(ttl)
        requested = copy.deepcopy(body.get("session") or {"type": "realtime"})
        session = new_session(
            requested,
            default_model=self._default_model,
            default_voice=self._default_voice,
            # OpenAI reports 0 here: the session's own clock starts when a call uses it.
            expires_at=0,
        )
        secret = ClientSecret(
            value=new_client_secret(),
            expires_at=expires_at,
            session=session,
            safety_identifier=safety_identifier,
            requested_session=requested,
        )
        self._secrets[secret.value] = secret
        self._forget_long_expired()
        return secret

    def get(self, value: str) -> ClientSecret | None:
        """The secret with this value, expired or not."""
        return self._secrets.get(value)

    def redeem(self, value: str) -> ClientSecret:
        """The live secret with this value; 401 in OpenAI's shape if unknown or expired."""
        secret = self._secrets.get(value)
        if secret is None:
            raise RealtimeError(
                message="Invalid ephemeral key provided.", code="invalid_api_key", status=401
            )
        if secret.expired():
            raise RealtimeError(
                message="The ephemeral key provided has expired.",
                code="invalid_api_key",
                status=401,
            )
        return secret

    def _forget_long_expired(self) -> None:
        # Keep expired secrets for a day so tests can still inspect them, but not forever.
        horizon = time.time() - 86_400
        for value in [v for v, s in self._secrets.items() if s.expires_at < horizon]:
            del self._secrets[value]
