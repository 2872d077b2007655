"""The running emulator: what every request handler and connection shares."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .calls import Call, CallKind
from .faults import Faults
from .ids import new_call_id, new_id
from .registry import CallRegistry
from .scenario import Scenario, load_scenario
from .secrets import SecretStore
from .sessions import new_session
from .settings import Settings
from .speech import SpeechSynthesizer

log = logging.getLogger(__name__)


@dataclass
class Emulator:
    """App state, built once in the FastAPI lifespan."""

    settings: Settings
    secrets: SecretStore
    calls: CallRegistry
    synthesizer: SpeechSynthesizer
    # The scenario new calls follow unless a call names its own.
    scenario: Scenario

    @classmethod
    def from_settings(cls, settings: Settings) -> Emulator:
        """Everything the emulator needs, from its settings alone."""
        scenario = load_scenario(settings.scenario) if settings.scenario else Scenario()
        synthesizer = SpeechSynthesizer(settings.speech, settings.speech_words_per_minute)
        log.info("speech engine: %s; scenario: %s", synthesizer.engine, scenario.name)
        return cls(
            settings=settings,
            secrets=SecretStore(
                default_model=settings.default_model, default_voice=settings.default_voice
            ),
            calls=CallRegistry(),
            synthesizer=synthesizer,
            scenario=scenario,
        )

    def new_call(
        self,
        *,
        kind: CallKind,
        config: dict[str, Any] | None,
        scenario: Scenario | None,
        faults: Faults,
        safety_identifier: str | None = None,
    ) -> Call:
        """A call with the given session config, registered until it ends."""
        scenario = scenario or self.scenario
        session = new_session(
            config,
            default_model=self.settings.default_model,
            default_voice=self.settings.default_voice,
            expires_at=int(time.time() + self.settings.max_session_seconds),
        )
        call = Call(
            call_id=new_call_id() if kind == "webrtc" else new_id("ws_"),
            kind=kind,
            session=session,
            scenario=scenario,
            faults=scenario.faults.overridden_by(faults),
            synthesizer=self.synthesizer,
            max_session_seconds=self.settings.max_session_seconds,
            safety_identifier=safety_identifier,
        )
        self.calls.add(call)
        return call

    async def close(self) -> None:
        """End every live call; nothing survives the process."""
        await self.calls.end_all()
