"""Secrets hygiene in settings, and Redis keys that no two id tuples share."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from opencouch.runtime.settings import load_settings
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.voice_sessions import redis_key

OPENAI_KEY = "sk-proj-distinctive-openai-key-0123456789"
SIGNING_KEY = "distinctive-signing-key-" + "z" * 24


def test_no_two_id_tuples_share_a_redis_key() -> None:
    assert redis_key("turn", "x", "y:z") != redis_key("turn", "x:y", "z")
    assert redis_key("turn", "a%3Ab") != redis_key("turn", "a:b")
    assert redis_key("thread", "t:1") == "ocv:thread:t%3A1"


def test_keys_never_show_in_settings_repr_errors_or_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = GatewaySettings(openai_api_key=OPENAI_KEY, token_signing_keys=f"k1:{SIGNING_KEY}")
    logging.getLogger("test").info("settings", extra={"settings": settings})
    for text in (repr(settings), str(settings), settings.model_dump_json(), caplog.text):
        assert OPENAI_KEY not in text
        assert SIGNING_KEY not in text
    # A refused start prints only what load_settings says: the setting and the problem.
    monkeypatch.setenv("VOICE_GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for keys in ("k1:short-change-me", "malformed-" + SIGNING_KEY):
        monkeypatch.setenv("VOICE_GATEWAY_TOKEN_SIGNING_KEYS", keys)
        with pytest.raises(SystemExit) as exited:
            load_settings(GatewaySettings)
        message = str(exited.value.code)
        assert "invalid settings" in message
        for secret in (OPENAI_KEY, "short-change-me", SIGNING_KEY):
            assert secret not in message


@pytest.mark.parametrize(
    "keys",
    [
        None,
        "k1:too-short",
        "k1:" + "change-me-" * 5,
        "k1:development-only-token-signing-key-change-me",
    ],
)
def test_production_refuses_a_missing_placeholder_or_short_signing_key(keys: str | None) -> None:
    fields: dict[str, object] = {
        "environment": "production",
        "openai_api_key": OPENAI_KEY,
        "identity_mode": "jwt",
        "identity_jwt_key": "h" * 40,
        "identity_issuer": "host-app",
    }
    if keys:
        fields["token_signing_keys"] = keys
    with pytest.raises(ValidationError):
        GatewaySettings.model_validate(fields)


def test_production_starts_with_a_real_key_and_verified_identities() -> None:
    settings = GatewaySettings(
        environment="production",
        openai_api_key=OPENAI_KEY,
        token_signing_keys=f"k1:{SIGNING_KEY}",
        identity_mode="jwt",
        identity_jwt_key="h" * 40,
        identity_issuer="host-app",
    )
    assert settings.active_key_id == "k1"
    with pytest.raises(ValidationError, match="development"):
        GatewaySettings(
            environment="production",
            openai_api_key=OPENAI_KEY,
            token_signing_keys=f"k1:{SIGNING_KEY}",
        )


@pytest.mark.parametrize("identity_key", ["secret", "h" * 31, "change-me-" * 5])
def test_production_refuses_a_short_or_placeholder_shared_identity_key(identity_key: str) -> None:
    """Anyone who guesses the shared key signs in as anyone: ``secret`` once passed."""
    with pytest.raises(ValidationError, match="IDENTITY_JWT_KEY") as refused:
        GatewaySettings(
            environment="production",
            openai_api_key=OPENAI_KEY,
            token_signing_keys=f"k1:{SIGNING_KEY}",
            identity_mode="jwt",
            identity_jwt_key=identity_key,
            identity_issuer="host-app",
        )
    assert identity_key not in str(refused.value).replace("IDENTITY_JWT_KEY", "")


def test_production_takes_a_pem_public_key_and_development_any_shared_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    GatewaySettings(
        environment="production",
        openai_api_key=OPENAI_KEY,
        token_signing_keys=f"k1:{SIGNING_KEY}",
        identity_mode="jwt",
        identity_jwt_key=pem,
        identity_issuer="host-app",
    )
    GatewaySettings(identity_mode="jwt", identity_jwt_key="secret", identity_issuer="host-app")


def test_identity_tokens_have_a_maximum_lifetime() -> None:
    assert GatewaySettings().identity_max_lifetime_seconds == 86400
    with pytest.raises(ValidationError):
        GatewaySettings(identity_max_lifetime_seconds=0)


def test_jwt_identity_mode_needs_a_key_and_an_issuer() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY or _JWKS_URL"):
        GatewaySettings(identity_mode="jwt", identity_issuer="host-app")
    with pytest.raises(ValidationError, match="IDENTITY_ISSUER"):
        GatewaySettings(identity_mode="jwt", identity_jwt_key="h" * 40)
    GatewaySettings(identity_mode="jwt", identity_jwt_key="h" * 40, identity_issuer="host-app")
