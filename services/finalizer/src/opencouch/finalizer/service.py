"""Wiring: Postgres (migrated), NATS, the summariser, the status endpoint, the session-end and
erasure consumers, the report sender and the retention job."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.events import OwnerErased, SessionEnded, SessionFinalized
from opencouch.contracts.finalizer import FinalizationRecord, FinalizationStatusRequest
from opencouch.finalizer.arc import Summariser
from opencouch.finalizer.erasure import Erasure
from opencouch.finalizer.extractive import ExtractiveSummariser
from opencouch.finalizer.finalization import FINAL, Finalizer
from opencouch.finalizer.handlers import FinalizerHandlers
from opencouch.finalizer.memory_link import MemoryLink
from opencouch.finalizer.retention import apply_retention
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import FinalizationStore, ReportOutbox
from opencouch.finalizer.webhooks import ReportSender
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import DictPool, apply_migrations_async, connection_pool
from opencouch.runtime.service import Consumer, NatsService, run_nats_service

if TYPE_CHECKING:
    # The openai SDK is most of this service's import time and only a configured model uses
    # it: it is imported when one is (a restarted finalizer is back sooner without it).
    from openai import AsyncOpenAI

VERSION = "0.2.0"
MIGRATIONS = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)


def finalizer_service(handlers: FinalizerHandlers, settings: FinalizerSettings) -> NatsService:
    """The finalizer: the status endpoint, the session-end and the erasure consumers."""
    return NatsService(
        name=subjects.FINALIZER_SERVICE,
        version=VERSION,
        description="Session finalization and its status",
        endpoints=[
            Endpoint(
                "status", subjects.FINALIZER_STATUS, FinalizationStatusRequest, handlers.status
            ),
        ],
        consumers=[
            Consumer(
                durable=subjects.FINALIZER_SESSION_END_CONSUMER,
                subject=subjects.SESSION_ENDED,
                event_model=SessionEnded,
                handle=handlers.on_session_ended,
                on_give_up=handlers.on_give_up,
                redelivery=settings.redelivery,
                workers=settings.concurrent_ends,
            ),
            Consumer(
                durable=subjects.FINALIZER_ERASURE_CONSUMER,
                subject=subjects.OWNER_ERASED,
                event_model=OwnerErased,
                handle=handlers.on_owner_erased,
            ),
        ],
    )


def summariser_for(settings: FinalizerSettings, model: AsyncOpenAI | None) -> Summariser:
    """The language model's summariser when one is configured, else the extractive one."""
    extractive = ExtractiveSummariser()
    if model is None:
        return extractive
    from opencouch.finalizer.model_summary import ModelSummariser

    return ModelSummariser(model, settings.summary_model, fallback=extractive)


def openai_client(settings: FinalizerSettings) -> AsyncOpenAI | None:
    """The SDK client for summaries, when a model drafts them."""
    if not settings.uses_model or settings.openai_api_key is None:
        return None
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.summary_timeout_seconds,
        max_retries=2,
    )


@dataclass(frozen=True)
class Finalization:
    """The finalizer's parts over one pool and one NATS connection."""

    handlers: FinalizerHandlers
    store: FinalizationStore
    reports: ReportSender | None


async def publish_result(nc: NatsClient, record: FinalizationRecord) -> None:
    """Tell a gateway waiting on the session's ``/end`` its result, arc and all.

    Core NATS: no stream keeps it. It used to go through the events stream, where the arc (a
    summary quoting the person) stayed for the stream's 30 days, after the finalizer's own
    retention had dropped it and after the person deleted the summary from memory. A gateway
    that misses it asks the finalizer's status instead.
    """
    result = SessionFinalized(record=record)
    await nc.publish(
        subjects.session_finalized(record.session_id), result.model_dump_json().encode()
    )


def build(
    settings: FinalizerSettings,
    pool: DictPool,
    nc: NatsClient,
    js: JetStreamContext,
    http: httpx.AsyncClient,
    model: AsyncOpenAI | None,
) -> Finalization:
    """Every part, wired; the report sender only when a webhook is configured."""
    store = FinalizationStore(pool)
    memory = MemoryLink(nc, settings.memory_timeout_seconds)
    reports = None
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        reports = ReportSender(
            ReportOutbox(pool),
            memory,
            http,
            settings,
            url=str(settings.webhook_url),
            secret=settings.webhook_secret.get_secret_value(),
        )

    async def announce(record: FinalizationRecord) -> None:
        await publish_result(nc, record)
        if reports is not None and record.status in FINAL:
            reports.wake()

    finalizer = Finalizer(store, memory, summariser_for(settings, model), announce, settings)
    handlers = FinalizerHandlers(store, finalizer, Erasure(store, js))
    return Finalization(handlers, store, reports)


async def serve(settings: FinalizerSettings, stop: asyncio.Event) -> None:
    """Migrate, then finalize ended sessions and answer status until ``stop`` is set."""
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="finalizer")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=settings.db_pool_size)
        )
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.FINALIZER_SERVICE)
        )
        js = await ensure_events_stream(nc)
        http = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
        model = openai_client(settings)
        if model is not None:
            stack.push_async_callback(model.close)
        parts = build(settings, pool, nc, js, http, model)
        background = [asyncio.create_task(apply_retention(parts.store, settings, stop))]
        if parts.reports is not None:
            background.append(asyncio.create_task(parts.reports.run(stop)))
        try:
            await run_nats_service(nc, finalizer_service(parts.handlers, settings), settings, stop)
        finally:
            stop.set()
            await asyncio.gather(*background)
