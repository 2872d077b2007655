"""Wiring: content checked, Postgres migrated, Redis and NATS connected; every catalog tool this
service owns, the turn consumer, the incognito screening subscription and the retention job."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from opencouch.contracts import subjects
from opencouch.contracts.events import CrisisScreen, OwnerErased, SessionClosed, TurnRecorded
from opencouch.contracts.tools import ToolOwner
from opencouch.runtime.jetstream import count_dead_letters, ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import apply_migrations_async, connection_pool
from opencouch.runtime.redis_client import redis_client
from opencouch.runtime.service import Consumer, NatsService, Subscription, run_nats_service
from opencouch.runtime.tools import ToolHandler, tool_endpoints
from opencouch.tools.content import ContentError, content_root
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.erasure import Erasure
from opencouch.tools.exercises import ExerciseCatalog
from opencouch.tools.grounded import GroundedLookup
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.places import gazetteer
from opencouch.tools.retention import run_retention
from opencouch.tools.screening import CrisisScreening
from opencouch.tools.session_state import SessionState
from opencouch.tools.settings import ToolsSettings
from opencouch.tools.skills import ResponseSkills
from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)

VERSION = "0.2.0"
MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Content:
    """Everything the service serves from data files, checked before it starts."""

    skills: ResponseSkills
    exercises: ExerciseCatalog
    crisis: CrisisDirectory

    @classmethod
    def load(cls, content_dir: Path | None) -> Content:
        """Load and check the content; raises ``ContentError`` naming the bad file."""
        root = content_root(content_dir)
        gazetteer()  # built now, so the first crisis lookup is as fast as the rest
        return cls(
            skills=ResponseSkills.load(root),
            exercises=ExerciseCatalog.load(root),
            crisis=CrisisDirectory.packaged(),
        )


def tools_service(
    handlers: ToolHandlers, screening: CrisisScreening, erasure: Erasure
) -> NatsService:
    """The tools service: every catalog tool it owns, crisis screening of every turn,
    forgetting an owner's sessions when asked, and a session's Redis state when it closes."""
    served: dict[str, ToolHandler] = {
        "wait_for_user": handlers.wait_for_user,
        "load_therapeutic_response_skill": handlers.load_therapeutic_response_skill,
        "answer_grounded_lookup": handlers.answer_grounded_lookup,
        "lookup_crisis_resources": handlers.lookup_crisis_resources,
        "get_crisis_support_template": handlers.get_crisis_support_template,
        "list_guided_exercise_skills": handlers.list_guided_exercise_skills,
        "start_guided_exercise": handlers.start_guided_exercise,
        "load_guided_exercise_skill": handlers.load_guided_exercise_skill,
        "record_guided_exercise_progress": handlers.record_guided_exercise_progress,
    }
    return NatsService(
        name=subjects.TOOLS_SERVICE,
        version=VERSION,
        description="Therapy skills, grounded lookup, crisis resources, guided exercises",
        endpoints=tool_endpoints(ToolOwner.TOOLS, served),
        consumers=[
            Consumer(
                durable=subjects.TOOLS_CRISIS_CONSUMER,
                subject=subjects.TURN_RECORDED,
                event_model=TurnRecorded,
                handle=screening.on_turn_recorded,
            ),
            Consumer(
                durable=subjects.TOOLS_ERASURE_CONSUMER,
                subject=subjects.OWNER_ERASED,
                event_model=OwnerErased,
                handle=erasure.on_owner_erased,
            ),
        ],
        subscriptions=[
            Subscription(
                subject=subjects.CRISIS_SCREEN,
                queue=subjects.CRISIS_SCREEN_QUEUE,
                model=CrisisScreen,
                handle=screening.on_crisis_screen,
            ),
            Subscription(
                subject=subjects.SESSION_CLOSED,
                queue=subjects.SESSION_CLOSED_QUEUE,
                model=SessionClosed,
                handle=erasure.on_session_closed,
            ),
        ],
    )


async def serve(settings: ToolsSettings, stop: asyncio.Event) -> None:
    """Check content, migrate, then serve until ``stop`` is set."""
    try:
        content = Content.load(settings.content_dir)
    except ContentError as error:
        log.error("content is invalid; not starting", extra={"error": str(error)})
        raise SystemExit(2) from None
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="tools")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=settings.db_pool_size)
        )
        redis = await stack.enter_async_context(
            redis_client(settings.redis_url, timeout=settings.redis_timeout_seconds)
        )
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.TOOLS_SERVICE)
        )
        js = await ensure_events_stream(nc)
        for durable in (subjects.TOOLS_CRISIS_CONSUMER, subjects.TOOLS_ERASURE_CONSUMER):
            waiting = await count_dead_letters(js, durable)
            if waiting:
                log.warning(
                    "dead letters waiting; run python -m opencouch.tools.replay_dead_letters",
                    extra={"consumer": durable, "waiting": waiting},
                )
        store = ToolsStore(pool, settings.db_timeout_seconds)
        state = SessionState(redis, settings.session_state_ttl_seconds)
        handlers = ToolHandlers(
            skills=content.skills,
            exercises=content.exercises,
            crisis=content.crisis,
            grounded=GroundedLookup(store),
            state=state,
            store=store,
        )
        retention = asyncio.create_task(
            run_retention(
                store,
                crisis_log_retention=timedelta(days=settings.crisis_log_retention_days),
                exercise_retention=timedelta(seconds=settings.session_state_ttl_seconds),
                interval=settings.retention_interval_seconds,
                stop=stop,
            ),
            name="retention",
        )
        try:
            await run_nats_service(
                nc,
                tools_service(handlers, CrisisScreening(store, state, js), Erasure(store, state)),
                settings,
                stop,
            )
        finally:
            stop.set()
            await retention
