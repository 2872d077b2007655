"""Settings for the voice gateway (env prefix ``VOICE_GATEWAY_``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_REDIS_URL, ServiceSettings

PREFIX: Final = "VOICE_GATEWAY_"
OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
EMULATOR_BASE_URL: Final = "http://127.0.0.1:8090/v1"
DEVELOPMENT_TOKEN_KEY: Final = "development-only-token-signing-key-change-me"
"""The signing key a development gateway uses when none is configured; production refuses it."""
MIN_SIGNING_KEY_BYTES: Final = 32


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class GatewaySettings(ServiceSettings):
    """Where the gateway listens and connects, its Realtime session, its keys and its limits.

    With no ``OPENAI_API_KEY`` every Realtime call goes to the offline emulator.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX)
    service_name: ClassVar[str] = "voice-gateway"

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = DEFAULT_REDIS_URL
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8080", "http://localhost:8080"]
    )

    # -- Realtime ---------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices(f"{PREFIX}OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = OPENAI_BASE_URL
    """Realtime API base used when a key is set."""
    public_realtime_url: str | None = None
    """Realtime API base as the browser reaches it, when a key is set; default ``openai_base_url``."""
    emulator_base_url: str = EMULATOR_BASE_URL
    """The emulator's API base, used when no key is set (the key never goes there)."""
    emulator_public_url: str | None = None
    """The emulator as the browser reaches it; default ``emulator_base_url``."""
    emulator_api_key: SecretStr = SecretStr("sk-emulator-local")
    realtime_model: str = "gpt-realtime"
    transcription_model: str = "gpt-4o-mini-transcribe"
    client_secret_ttl_seconds: int = Field(60, ge=10, le=7200)
    """How long the browser's ephemeral key may open a call (OpenAI's ``expires_after``)."""

    # -- Voice sessions and their tokens ----------------------------------------------------
    token_signing_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    """Key id -> HMAC key for voice-session tokens, as ``kid:key,kid2:key2``; several during a
    rotation. Empty in development means a fixed development key."""
    token_active_key_id: str | None = None
    """Which key signs new tokens; default the first one listed."""
    max_session_seconds: int = Field(3600, ge=60, le=24 * 3600)
    """A voice session's longest life (OpenAI ends a Realtime session after 60 minutes)."""
    token_grace_seconds: int = Field(900, ge=0, le=24 * 3600)
    """How long after the session's end a token still serves ``/end`` and status polls."""
    late_turn_seconds: int = Field(120, ge=0, le=900)
    """How long after the session's end a new turn is still recorded: the exchange still open
    when Realtime hangs up at its own cap reaches ``/turn`` after it. Tool calls get no grace."""
    max_sessions_per_user: int = Field(3, ge=1)
    """Concurrent live voice sessions one user (or anonymous thread) may hold."""
    thread_binding_days: int = Field(365, ge=1)
    """How long a thread stays bound to its owner after its last session. A thread whose
    binding is gone while memory keeps its turns is opened by no one: its owner starts a new
    one."""
    call_output_ttl_seconds: int = Field(6 * 3600, ge=60)
    """How long a tool call's output is kept, so a replayed ``call_id`` gets it again."""

    # -- Who the user is --------------------------------------------------------------------
    identity_mode: Literal["development", "jwt"] = "development"
    """``development`` trusts a plain ``user_id`` (and says so at start); ``jwt`` requires an
    identity token signed by the host application."""
    identity_jwt_key: SecretStr | None = None
    """Shared HMAC key for identity tokens (HS256), or a PEM public key (RS256/ES256). In
    production a shared key must be 32 bytes or more and no placeholder."""
    identity_jwks_url: str | None = None
    """A JWKS endpoint for identity tokens, instead of a fixed key."""
    identity_issuer: str | None = None
    """The ``iss`` identity tokens must carry; required in ``jwt`` identity mode."""
    identity_audience: str = "opencouch-voice"
    identity_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["HS256", "RS256", "ES256"]
    )
    identity_max_lifetime_seconds: int = Field(86400, gt=0)
    """The furthest ahead an identity token's ``exp`` may lie: the host app signs short tokens,
    so a leaked long-lived one is refused."""

    # -- Limits -----------------------------------------------------------------------------
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    rate_limit_session_per_ip: str = "20/minute"
    rate_limit_session_per_user: str = "20/minute"
    rate_limit_session_per_thread: str = "10/minute"
    rate_limit_calls_per_session: str = "240/minute"
    """Tool calls, turns and ends together, per voice session."""
    rate_limit_calls_per_user: str = "600/minute"
    """The same calls of all of a signed-in user's sessions together."""
    rate_limit_calls_per_thread: str = "480/minute"
    """The same calls of all of a thread's sessions together."""
    rate_limit_calls_per_ip: str = "1200/minute"
    """The same calls from one client address, whoever makes them."""
    trust_forwarded_for: bool = False
    """Take the client address from ``X-Forwarded-For``: its last entry, the one the proxy in
    front of the gateway added (only behind one proxy you run, which appends to the header)."""

    # -- Downstream -------------------------------------------------------------------------
    redis_timeout_seconds: float = Field(5.0, gt=0, le=60)
    """How long a Redis command (voice sessions, claims, rate limits) may take before the
    request fails with 503."""
    memory_timeout_seconds: float = Field(3.0, gt=0)
    realtime_timeout_seconds: float = Field(12.0, gt=0)
    """The longest a session start waits for Realtime to mint its client secret, retries
    included. With memory's context before it, ``/session`` answers inside the page's 20 s
    wait, so a slow Realtime never leaves a live session that no browser holds."""
    tool_timeout_seconds: float = Field(8.0, gt=0)
    finalizer_timeout_seconds: float = Field(2.0, gt=0)
    end_wait_seconds: float = Field(5.0, ge=0)
    abandoned_sweep_seconds: float = Field(30.0, ge=0)
    """How often to end the sessions nobody ended (a tab closed), once no token could: as an
    ``/end`` with no body would, so a persistent one is finalized and saved. 0: never (their
    record then expires unfinalized)."""

    @field_validator("cors_origins", "identity_algorithms", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split(value) if isinstance(value, str) else value

    @field_validator("token_signing_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        keys: dict[str, str] = {}
        for item in _split(value):
            kid, sep, key = item.partition(":")
            if not sep or not kid or not key:
                raise ValueError("token signing keys are 'kid:key' pairs, comma-separated")
            keys[kid] = key
        return keys

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> GatewaySettings:
        if self.environment != "production":
            return self
        if self.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required when VOICE_GATEWAY_ENVIRONMENT=production")
        if not self.token_signing_keys:
            raise ValueError("VOICE_GATEWAY_TOKEN_SIGNING_KEYS is required in production")
        for kid, key in self.token_signing_keys.items():
            secret = key.get_secret_value()
            if len(secret.encode()) < MIN_SIGNING_KEY_BYTES or _placeholder(secret):
                raise ValueError(
                    f"token signing key {kid!r} is a placeholder or shorter than "
                    f"{MIN_SIGNING_KEY_BYTES} bytes; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
        if self.identity_mode == "development":
            raise ValueError("VOICE_GATEWAY_IDENTITY_MODE=development is refused in production")
        if self.identity_jwt_key is not None:
            identity_key = self.identity_jwt_key.get_secret_value()
            # A shared key that can be guessed lets anyone sign in as any user; a PEM public
            # key is no secret at all.
            if not identity_key.strip().startswith("-----BEGIN") and (
                len(identity_key.encode()) < MIN_SIGNING_KEY_BYTES or _placeholder(identity_key)
            ):
                raise ValueError(
                    "VOICE_GATEWAY_IDENTITY_JWT_KEY is a shared key that is a placeholder or "
                    f"shorter than {MIN_SIGNING_KEY_BYTES} bytes; use a long random key (the "
                    "host app signs with it) or the host app's PEM public key"
                )
        return self

    @model_validator(mode="after")
    def _identity_needs_a_key(self) -> GatewaySettings:
        if self.identity_mode == "jwt" and not (self.identity_jwt_key or self.identity_jwks_url):
            raise ValueError("identity_mode=jwt needs VOICE_GATEWAY_IDENTITY_JWT_KEY or _JWKS_URL")
        if self.identity_mode == "jwt" and not self.identity_issuer:
            # Without it, a token any holder of the key (or any key in a shared JWKS) signed
            # for another purpose would pass: the issuer is checked, never optional.
            raise ValueError("identity_mode=jwt needs VOICE_GATEWAY_IDENTITY_ISSUER")
        return self

    @property
    def signing_keys(self) -> dict[str, str]:
        """Key id -> key for voice-session tokens (the development key when none is set)."""
        if not self.token_signing_keys:
            return {"dev": DEVELOPMENT_TOKEN_KEY}
        return {kid: key.get_secret_value() for kid, key in self.token_signing_keys.items()}

    @property
    def active_key_id(self) -> str:
        """The key id new tokens are signed with."""
        return self.token_active_key_id or next(iter(self.signing_keys))

    @property
    def uses_emulator(self) -> bool:
        """True when no OpenAI key is configured."""
        return self.openai_api_key is None

    @property
    def realtime_api_key(self) -> str:
        """The key the gateway mints client secrets with; never sent to a browser."""
        key = self.openai_api_key or self.emulator_api_key
        return key.get_secret_value()

    @property
    def realtime_base_url(self) -> str:
        """Where the gateway calls the Realtime API: OpenAI with a key, else the emulator."""
        base = self.emulator_base_url if self.uses_emulator else self.openai_base_url
        return base.rstrip("/")

    @property
    def realtime_calls_url(self) -> str:
        """Where the browser posts its SDP offer."""
        public = self.emulator_public_url if self.uses_emulator else self.public_realtime_url
        return f"{(public or self.realtime_base_url).rstrip('/')}/realtime/calls"


_PLACEHOLDER_WORDS: Final = ("change-me", "changeme", "placeholder", "example", "secret", "xxxx")


def _placeholder(key: str) -> bool:
    lowered = key.lower()
    return key == DEVELOPMENT_TOKEN_KEY or any(word in lowered for word in _PLACEHOLDER_WORDS)
