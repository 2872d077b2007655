"""Bearer keys: standard API keys from settings, or ephemeral ``ek_`` client secrets."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import invalid_api_key, missing_api_key
from .secrets import ClientSecret, SecretStore


@dataclass(frozen=True)
class Caller:
    """Who is calling: an API-key holder, or a browser holding a client secret."""

    api_key: bool
    secret: ClientSecret | None = None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; 401 when there is none."""
    if not authorization:
        raise missing_api_key()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise missing_api_key()
    return token


def require_api_key(authorization: str | None, api_keys: list[str]) -> Caller:
    """Only a standard API key will do (minting secrets, sideband, WebSocket sessions)."""
    token = bearer_token(authorization)
    if token not in api_keys:
        raise invalid_api_key(token)
    return Caller(api_key=True)


def require_key_or_secret(
    authorization: str | None, api_keys: list[str], secrets: SecretStore
) -> Caller:
    """An API key, or a live client secret (the browser's WebRTC call)."""
    token = bearer_token(authorization)
    if token in api_keys:
        return Caller(api_key=True)
    if token.startswith("ek_"):
        return Caller(api_key=False, secret=secrets.redeem(token))
    raise invalid_api_key(token)


def websocket_protocol_token(protocols: list[str]) -> str | None:
    """A key sent the browser way, as ``openai-insecure-api-key.<key>`` subprotocol."""
    prefix = "openai-insecure-api-key."
    for protocol in protocols:
        if protocol.startswith(prefix):
            return protocol[len(prefix) :]
    return None
