"""Test support: a fake of memory's finalizer-facing endpoints, a webhook receiver, and a
client of a running finalizer.

``FakeMemory`` answers the three requests the finalizer sends memory (counts, transcript pages,
the commit) from plain dicts a test fills in, so a test decides exactly what memory holds and
when. ``WebhookReceiver`` is a real HTTP server that records every report POSTed to it and
answers with the statuses a test scripts. ``FinalizerClient`` publishes ends and asks for status
as the gateway does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pydantic import BaseModel

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.contracts.finalizer import (
    FinalizationRecord,
    FinalizationStatusReply,
    FinalizationStatusRequest,
)
from opencouch.contracts.memory import (
    CommitMemoryCandidatesReply,
    CommitMemoryCandidatesRequest,
    SessionTranscriptReply,
    SessionTranscriptRequest,
    SessionTurnCountsReply,
    SessionTurnCountsRequest,
    StoredTurn,
)
from opencouch.contracts.voice_api import Feedback, TurnOutcome
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.runtime.jetstream import caught_up, publish_event
from opencouch.runtime.messaging import flushed, request


def stored_turn(
    session_id: str,
    number: int,
    user_text: str,
    assistant_text: str = "I hear you.",
    *,
    spoken_at: datetime | None = None,
    outcome: TurnOutcome = TurnOutcome.COMPLETED,
) -> StoredTurn:
    """A turn as memory would hand it back, spoken a minute after the previous one."""
    at = spoken_at or datetime(2025, 3, 1, 20, 0, tzinfo=UTC) + timedelta(minutes=number)
    return StoredTurn(
        session_id=session_id,
        client_turn_id=f"turn-{number}",
        user_text=user_text,
        assistant_text=assistant_text,
        route="therapeutic",
        response_style="voice",
        outcome=outcome,
        started_at=at,
        recorded_at=at + timedelta(seconds=20),
    )


@dataclass
class FakeMemory:
    """Memory's counts, transcript and commit endpoints, answered from what a test put here."""

    thread_ids: dict[str, str] = field(default_factory=dict)
    turns: dict[str, list[StoredTurn]] = field(default_factory=dict)
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    """session -> client turn id -> crisis level."""
    commits: list[CommitMemoryCandidatesRequest] = field(default_factory=list)
    page_requests: int = 0
    page_size: int = 100
    facts_per_commit: int = 1
    silent_sessions: set[str] = field(default_factory=set)
    """Sessions whose transcript and commit memory does not answer (its counts it does)."""
    _subscriptions: list[Subscription] = field(default_factory=list)

    def hold(self, thread_id: str, turn: StoredTurn, level: int | None = 0) -> None:
        """Memory now holds ``turn`` (classified at ``level``, unless None)."""
        self.thread_ids[turn.session_id] = thread_id
        self.turns.setdefault(turn.session_id, []).append(turn)
        if level is not None:
            self.classify(turn.session_id, turn.client_turn_id, level)

    def classify(self, session_id: str, client_turn_id: str, level: int) -> None:
        """Memory now knows the turn's crisis level."""
        self.levels.setdefault(session_id, {})[client_turn_id] = level

    def committed(self, session_id: str) -> list[CommitMemoryCandidatesRequest]:
        """The commits asked for the session."""
        return [commit for commit in self.commits if commit.session_id == session_id]

    async def start(self, nc: NatsClient) -> None:
        """Answer on NATS (in memory's queue group) until ``stop``."""
        for subject, handler, silenced in (
            (subjects.MEMORY_SESSION_COUNTS, self._counts, False),
            (subjects.MEMORY_SESSION_TRANSCRIPT, self._page, True),
            (subjects.MEMORY_COMMIT_CANDIDATES, self._commit, True),
        ):
            silent = self.silent_sessions if silenced else set()
            self._subscriptions.append(
                await nc.subscribe(subject, queue="fake-memory", cb=_answering(handler, silent))
            )
        await flushed(nc)

    async def stop(self) -> None:
        """Stop answering: the finalizer sees memory as down."""
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()

    def _counts(self, data: bytes) -> BaseModel:
        request = SessionTurnCountsRequest.model_validate_json(data)
        turns = self.turns.get(request.session_id, [])
        levels = self.levels.get(request.session_id, {})
        known = [levels[t.client_turn_id] for t in turns if t.client_turn_id in levels]
        return SessionTurnCountsReply(
            session_id=request.session_id,
            thread_id=self.thread_ids.get(request.session_id),
            stored_turns=len(turns),
            classified_turns=len(known),
            peak_crisis_level=max(known) if known else None,
            first_spoken_at=min((t.started_at or t.recorded_at for t in turns), default=None),
            last_recorded_at=max((t.recorded_at for t in turns), default=None),
        )

    def _page(self, data: bytes) -> BaseModel:
        request = SessionTranscriptRequest.model_validate_json(data)
        self.page_requests += 1
        turns = self.turns.get(request.session_id, [])
        start = int(request.after[1:]) if request.after else 0
        end = start + min(request.limit, self.page_size)
        return SessionTranscriptReply(
            session_id=request.session_id,
            thread_id=self.thread_ids.get(request.session_id),
            turns=turns[start:end],
            after=f"i{end}" if end < len(turns) else None,
        )

    def _commit(self, data: bytes) -> BaseModel:
        request = CommitMemoryCandidatesRequest.model_validate_json(data)
        before = self.committed(request.session_id)
        self.commits.append(request)
        facts = self.facts_per_commit if request.save else 0
        return CommitMemoryCandidatesReply(
            session_id=request.session_id,
            facts_committed=facts,
            summary_stored=request.summary is not None,
            already_committed=bool(before),
        )


def _answering(
    handler: Callable[[bytes], BaseModel], silent: set[str] | None = None
) -> Callable[[Msg], Any]:
    async def on_request(msg: Msg) -> None:
        if silent and json.loads(msg.data).get("session_id") in silent:
            return  # the caller times out, as with a memory that does not answer
        await msg.respond(handler(msg.data).model_dump_json().encode())

    return on_request


@dataclass(frozen=True)
class ReceivedReport:
    """One POST the receiver got: its headers, its body, and the status it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def session_id(self) -> str | None:
        """The session a report is of; None for a body that is not a report."""
        try:
            value = json.loads(self.body).get("session_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


class WebhookReceiver:
    """A real HTTP server on a free loopback port that records each report POSTed to it.

    ``statuses`` scripts the answers in order (then 200 for ever): to the reports of
    ``session_id`` alone when one is given, so that a report another test's finalizer left
    pending in the run's database (its delivery is retried by whichever finalizer runs next)
    neither takes a scripted answer nor counts among the test's own (``of``). ``hold`` makes it
    take a request and never answer, as a hung receiver does.
    """

    def __init__(self, statuses: list[int] | None = None, *, session_id: str | None = None) -> None:
        self.received: list[ReceivedReport] = []
        self.statuses = list(statuses or [])
        self.session_id = session_id
        self.hold = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hold.is_set():
                    with receiver._lock:
                        receiver.received.append(ReceivedReport(dict(self.headers), body, 0))
                    threading.Event().wait(3600)  # the caller times out; we never answer
                    return
                with receiver._lock:
                    report = ReceivedReport(dict(self.headers), body, 200)
                    scripted = receiver.session_id in (None, report.session_id)
                    if scripted and receiver.statuses:
                        report = ReceivedReport(report.headers, body, receiver.statuses.pop(0))
                    receiver.received.append(report)
                self.send_response(report.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: a report's body is not for the test log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to POST reports."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/reports"

    def of(self, session_id: str) -> list[ReceivedReport]:
        """The reports of one session it got, in order, whatever it answered."""
        with self._lock:
            return [report for report in self.received if report.session_id == session_id]

    def delivered(self, session_id: str) -> list[ReceivedReport]:
        """The reports of one session it answered with a 2xx."""
        return [report for report in self.of(session_id) if 200 <= report.status < 300]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class FinalizerClient:
    """A running finalizer as the gateway talks to it, and its rows as a test looks at them."""

    settings: FinalizerSettings
    nc: NatsClient
    js: JetStreamContext
    database_url: str

    async def end(
        self,
        session_id: str,
        thread_id: str,
        expected: int,
        *,
        mode: MemoryMode = MemoryMode.PERSISTENT,
        save: bool = True,
        feedback: Feedback | None = None,
        dedup_id: str | None = None,
    ) -> SessionEnded:
        """Publish the session's end, as the gateway does."""
        event = SessionEnded(
            session_id=session_id,
            thread_id=thread_id,
            user_id="user-finalizer-tests",
            memory_mode=mode,
            feedback=feedback,
            save=save,
            expected_turn_count=expected,
            ended_at=datetime.now(UTC),
        )
        await publish_event(
            self.js, subjects.SESSION_ENDED, event, dedup_id=dedup_id or event.dedup_id
        )
        return event

    async def status(self, session_id: str) -> FinalizationRecord | None:
        """The record as the gateway asks for it."""
        reply = await request(
            self.nc,
            subjects.FINALIZER_STATUS,
            FinalizationStatusRequest(session_id=session_id),
            FinalizationStatusReply,
            timeout=10,
        )
        return reply.record

    async def final(self, session_id: str, timeout: float = 60) -> FinalizationRecord:
        """Wait until the session is completed or failed."""
        found: list[FinalizationRecord] = []

        async def done() -> bool:
            record = await self.status(session_id)
            if record is not None and record.status in ("completed", "failed"):
                found.append(record)
                return True
            return False

        await eventually(done, timeout)
        return found[0]

    async def idle(self, durable: str = subjects.FINALIZER_SESSION_END_CONSUMER) -> None:
        """Wait until the consumer has handled everything published so far."""
        await eventually(lambda: caught_up(self.js, durable))

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows straight from Postgres."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()


RunFinalizer = Callable[..., AbstractAsyncContextManager[FinalizerClient]]
"""``async with run_finalizer(**settings) as finalizer``: the finalizer running in this process."""


def new_session() -> tuple[str, str]:
    """A fresh voice session id and thread id."""
    return f"vs_{uuid.uuid4().hex}", f"thread-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Poll until ``check`` holds; generous, never an assertion on speed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
