"""Settings for the finalizer (env prefix ``FINALIZER_``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, HttpUrl, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from opencouch.runtime.jetstream import Redelivery
from opencouch.runtime.settings import DEFAULT_DATABASE_URL, NatsServiceSettings

PREFIX = "FINALIZER_"
MIN_WEBHOOK_SECRET_CHARS = 16


class FinalizerSettings(NatsServiceSettings):
    """Where the finalizer connects, how long it waits for memory, how it summarises, and
    where it reports finished sessions."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)
    service_name: ClassVar[str] = "finalizer"

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(8, ge=2)
    memory_timeout_seconds: float = Field(5.0, gt=0)
    """How long one request to memory may take."""

    # -- waiting for memory ----------------------------------------------------------------
    memory_wait_seconds: float = Field(1800.0, gt=0)
    """How long a session's end waits for memory to store and classify every acknowledged
    turn before it fails. At least memory's own retry horizon: memory retries a turn for about
    23 minutes at its defaults (50 deliveries, 1 s doubling to 30 s)."""
    retry_first_delay_seconds: float = Field(0.5, gt=0)
    retry_max_delay_seconds: float = Field(15.0, gt=0)
    max_deliveries: int = Field(200, ge=1)
    """Deliveries of one session end, at most; then it fails and goes to the dead letters."""
    ack_wait_seconds: float = Field(30.0, gt=0)
    """How soon a session end held by a replica that died is delivered to another."""
    handle_timeout_seconds: float = Field(180.0, gt=0)
    """One attempt at finalizing, at most (a model's summary included)."""
    concurrent_ends: int = Field(4, ge=1, le=64)
    """Session ends one replica finalizes at once: one slow to summarise (a model that hangs)
    holds up no other."""

    # -- the session arc -------------------------------------------------------------------
    summariser: Literal["auto", "model", "extractive"] = "auto"
    """``auto``: the model when an OpenAI key is set, else the extractive summariser."""
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices(f"{PREFIX}OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = "https://api.openai.com/v1"
    summary_model: str = "gpt-4.1-mini"
    summary_timeout_seconds: float = Field(30.0, gt=0)

    # -- the end-of-session webhook --------------------------------------------------------
    webhook_url: HttpUrl | None = None
    webhook_secret: SecretStr | None = None
    """Shared with the receiver, which checks the ``OpenCouch-Signature`` header with it."""
    webhook_include_transcript: bool = False
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(12, ge=1)
    webhook_retry_first_delay_seconds: float = Field(2.0, gt=0)
    webhook_retry_max_delay_seconds: float = Field(600.0, gt=0)
    webhook_poll_seconds: float = Field(2.0, gt=0)
    """How often each replica looks for reports due, besides right after a finalization."""

    # -- retention -------------------------------------------------------------------------
    feedback_retention_days: int = Field(180, ge=1)
    erased_session_retention_days: int = Field(45, ge=31)
    """Longer than the events stream keeps a session's end (30 days)."""
    retention_interval_seconds: float = Field(3600.0, gt=0)
    arc_retention_hours: float = Field(24.0, gt=0)
    """How long a finalized session's arc (summary, themes, moods, loops) stays here, for the
    page to show after the end and for a report still owed; memory then holds its only copy,
    which the person can delete."""

    @property
    def redelivery(self) -> Redelivery:
        """The retry policy of the session-end consumer."""
        return Redelivery(
            max_deliver=self.max_deliveries,
            first_delay=self.retry_first_delay_seconds,
            max_delay=self.retry_max_delay_seconds,
            ack_wait=self.ack_wait_seconds,
            handle_timeout=self.handle_timeout_seconds,
        )

    @property
    def uses_model(self) -> bool:
        """Whether arcs are drafted by the language model."""
        return self.summariser == "model" or (
            self.summariser == "auto" and self.openai_api_key is not None
        )

    @model_validator(mode="after")
    def _coherent(self) -> FinalizerSettings:
        if self.redelivery.horizon < self.memory_wait_seconds:
            raise ValueError(
                "max_deliveries and the retry delays must span memory_wait_seconds, so a "
                "session end is never given up before it has waited that long"
            )
        if self.summariser == "model" and self.openai_api_key is None:
            raise ValueError("summariser=model needs an OpenAI API key")
        if self.webhook_url is not None and (
            self.webhook_secret is None
            or len(self.webhook_secret.get_secret_value()) < MIN_WEBHOOK_SECRET_CHARS
        ):
            raise ValueError(
                f"a webhook_url needs a webhook_secret of {MIN_WEBHOOK_SECRET_CHARS}+ characters"
            )
        return self
