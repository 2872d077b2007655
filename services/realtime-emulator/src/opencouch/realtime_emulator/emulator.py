"""The running emulator: what every request handler and connection shares."""

from __future__ import annotations

from dataclasses import dataclass

from .secrets import SecretStore
from .settings import Settings


@dataclass
class Emulator:
    """App state, built once in the FastAPI lifespan."""

    settings: Settings
    secrets: SecretStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Emulator:
        """Everything the emulator needs, from its settings alone."""
        return cls(
            settings=settings,
            secrets=SecretStore(
                default_model=settings.default_model, default_voice=settings.default_voice
            ),
        )

    async def close(self) -> None:
        """End every live call; nothing survives the process."""
