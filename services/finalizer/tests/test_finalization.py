"""Finalizing ended sessions on real NATS and Postgres, memory answered by a fake of its three
endpoints: the arc, the peak crisis level, one commit, feedback, the status, the signed report;
waiting for memory, and failing with why once waited long enough; thin, unsaved and incognito
sessions; a long transcript read in pages; and ending again."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import OwnerErased, SessionEnded, SessionFinalized
from opencouch.contracts.finalizer import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    FinalizationRecord,
    SessionReport,
)
from opencouch.contracts.voice_api import Feedback
from opencouch.finalizer.extractive import ExtractiveSummariser
from opencouch.finalizer.finalization import UNSAVED_DETAIL, Finalizer
from opencouch.finalizer.memory_link import MemoryLink
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import Completion, FinalizationStore, ReportOutbox
from opencouch.finalizer.testing import (
    FakeMemory,
    FinalizerClient,
    RunFinalizer,
    WebhookReceiver,
    eventually,
    new_session,
    stored_turn,
)
from opencouch.finalizer.webhooks import ReportSender, verify_signature
from opencouch.runtime.jetstream import (
    RetryLater,
    dead_letters,
    forget_dead_letter,
    publish_event,
    stored_events,
)
from opencouch.runtime.postgres import connection_pool

SECRET = "whsec-finalizer-tests-0123456789"
SAID = [
    "I've been really anxious about work lately, my boss keeps moving the deadline.",
    "I lie awake at night going over emails, so my sleep is a mess.",
    "Is it normal to feel this wiped out after only a few bad nights of sleep?",
    "Thanks, that helps. I think I'll try to stop checking email after nine.",
    "I feel a bit calmer now, and hopeful about tomorrow.",
]


def hold(
    memory: FakeMemory, texts: list[str], levels: list[int | None] | None = None
) -> tuple[str, str]:
    """A new session whose turns memory holds (classified at ``levels``, default 0)."""
    session_id, thread_id = new_session()
    for n, text in enumerate(texts):
        level = levels[n] if levels is not None else 0
        memory.hold(thread_id, stored_turn(session_id, n, text), level)
    return session_id, thread_id


async def waiting_for(finalizer: FinalizerClient, session_id: str, phrase: str) -> None:
    """Wait until the session is in progress, waiting for ``phrase``."""

    async def says() -> bool:
        rows = finalizer.rows(
            "SELECT status, waiting_for FROM finalizer.finalizations WHERE session_id = %s",
            session_id,
        )
        return bool(rows) and rows[0][0] == "in_progress" and phrase in (rows[0][1] or "")

    await eventually(says)


async def test_a_session_is_finalized_once_with_its_arc_peak_memory_feedback_and_report(
    memory: FakeMemory, run_finalizer: RunFinalizer, receiver: WebhookReceiver
) -> None:
    session_id, thread_id = hold(memory, SAID, levels=[0, 1, 0, 2, 0])
    async with run_finalizer(webhook_url=receiver.url, webhook_secret=SECRET) as finalizer:
        announced = await finalizer.nc.subscribe(subjects.session_finalized(session_id))
        event = await finalizer.end(session_id, thread_id, 5, feedback=Feedback.POSITIVE)
        record = await finalizer.final(session_id)

        assert record.status == "completed"
        assert record.turn_count == 5
        assert record.summary_method == "extractive"
        assert record.summary is not None
        assert record.summary.startswith("In 5 turns over about 4 minutes")
        assert record.themes == ["sleep", "work", "anxiety"]
        assert (record.mood_opened, record.mood_closed) == ("anxious", "calmer and hopeful")
        assert record.peak_crisis_level == 2
        first_spoken = memory.turns[session_id][0].started_at
        assert first_spoken is not None
        assert record.duration_seconds == round((event.ended_at - first_spoken).total_seconds())
        assert record.memories_committed == 1
        assert record.detail == (
            "Finalized 5 turns. The session summary was saved to memory. 1 new memory saved."
        )
        reply = record.end_reply()
        assert (reply.finalized, reply.peak_crisis_level, reply.memories_committed) == (True, 2, 1)
        assert reply.finalized_at == record.finalized_at is not None

        message = await announced.next_msg(timeout=30)
        assert SessionFinalized.model_validate_json(message.data).record == record

        (commit,) = memory.committed(session_id)
        assert commit.save is True
        assert commit.memory_mode is MemoryMode.PERSISTENT
        assert commit.summary is not None
        assert commit.summary.summary == record.summary
        assert commit.summary.themes == record.themes

        ((label, turns, kept_for),) = finalizer.rows(
            "SELECT label, turn_count, expires_at - created_at FROM finalizer.session_feedback "
            "WHERE session_id = %s",
            session_id,
        )
        assert (label, turns, kept_for) == ("positive", 5, timedelta(days=180))

        async def reported() -> bool:
            return len(receiver.delivered(session_id)) == 1

        await eventually(reported)
        (sent,) = receiver.delivered(session_id)
        assert verify_signature(SECRET, sent.headers[SIGNATURE_HEADER], sent.body)
        assert sent.headers[IDEMPOTENCY_HEADER] == f"fin_{session_id}"
        report = SessionReport.model_validate_json(sent.body)
        assert report.summary == record.summary
        assert (report.peak_crisis_level, report.feedback) == (2, Feedback.POSITIVE)
        assert report.transcript is None
        assert SAID[1] not in sent.body.decode()  # no transcript unless configured

        # Ending again, as a new message after the duplicate window: the same result.
        await finalizer.end(session_id, thread_id, 5, dedup_id=f"again-{uuid.uuid4().hex}")
        await finalizer.idle()
        assert await finalizer.status(session_id) == record
        assert len(memory.committed(session_id)) == 1
        assert finalizer.rows(
            "SELECT status, attempts FROM finalizer.webhook_deliveries WHERE session_id = %s",
            session_id,
        ) == [("delivered", 1)]
        await announced.unsubscribe()


async def test_the_end_waits_for_every_acknowledged_turn_and_every_crisis_level(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    session_id, thread_id = hold(memory, SAID[:2])
    async with run_finalizer() as finalizer:
        await finalizer.end(session_id, thread_id, 4)
        await waiting_for(finalizer, session_id, "memory holds 2 of the 4 acknowledged turns")
        assert (await finalizer.status(session_id)).status == "in_progress"  # type: ignore[union-attr]

        for n in (2, 3):
            memory.hold(thread_id, stored_turn(session_id, n, SAID[n]), level=None)
        await waiting_for(finalizer, session_id, "2 of 4 turns have no crisis level yet")
        memory.classify(session_id, "turn-2", 3)
        memory.classify(session_id, "turn-3", 1)

        record = await finalizer.final(session_id)
        assert (record.status, record.turn_count, record.peak_crisis_level) == ("completed", 4, 3)
        assert len(memory.committed(session_id)) == 1


async def test_memory_not_answering_is_waited_out(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    session_id, thread_id = hold(memory, SAID)
    await memory.stop()
    async with run_finalizer() as finalizer:
        await finalizer.end(session_id, thread_id, 5)
        await waiting_for(finalizer, session_id, "memory did not answer")
        await memory.start(finalizer.nc)
        record = await finalizer.final(session_id)
        assert (record.status, record.turn_count) == ("completed", 5)


async def test_waiting_past_memorys_horizon_fails_with_why_and_keeps_a_dead_letter(
    memory: FakeMemory, run_finalizer: RunFinalizer, receiver: WebhookReceiver
) -> None:
    session_id, thread_id = hold(memory, SAID[:1])
    async with run_finalizer(
        memory_wait_seconds=2.0, webhook_url=receiver.url, webhook_secret=SECRET
    ) as finalizer:
        await finalizer.end(session_id, thread_id, 3, feedback=Feedback.NEGATIVE)
        record = await finalizer.final(session_id)
        assert record.status == "failed"
        assert record.detail == (
            "Finalization failed: memory holds 1 of the 3 acknowledged turns. "
            "The transcript is kept."
        )
        assert record.end_reply().finalized is False
        assert memory.committed(session_id) == []

        async def dead_letter() -> bool:
            async for letter in dead_letters(finalizer.js, subjects.FINALIZER_SESSION_END_CONSUMER):
                if json.loads(letter.data)["session_id"] == session_id:
                    assert letter.reason == "given_up"
                    await forget_dead_letter(finalizer.js, letter.sequence)
                    return True
            return False

        await eventually(dead_letter)

        async def reported() -> bool:
            return len(receiver.delivered(session_id)) == 1

        await eventually(reported)
        report = SessionReport.model_validate_json(receiver.delivered(session_id)[0].body)
        assert (report.status, report.summary) == ("failed", None)
        # The person's feedback is kept all the same: it was lost with the finalization.
        assert report.feedback is Feedback.NEGATIVE
        assert finalizer.rows(
            "SELECT label, turn_count FROM finalizer.session_feedback WHERE session_id = %s",
            session_id,
        ) == [("negative", 3)]


async def test_a_thin_session_is_finalized_without_an_arc_and_says_why(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    thin, thread_id = hold(memory, [SAID[0], "okay thanks", SAID[1]])
    single, single_thread = hold(memory, [SAID[0]])
    async with run_finalizer() as finalizer:
        await finalizer.end(thin, thread_id, 3)
        await finalizer.end(single, single_thread, 1)
        record = await finalizer.final(thin)
        assert (record.status, record.summary, record.themes) == ("completed", None, [])
        assert record.detail == (
            "Finalized 3 turns. Too short for a session summary: 2 substantive user turns, "
            "and a summary needs 3 substantive user turns. 1 new memory saved."
        )
        (commit,) = memory.committed(thin)
        assert (commit.save, commit.summary) == (True, None)
        one = await finalizer.final(single)
        assert "Too short for a session summary: 1 user turn," in one.detail


async def test_ending_without_saving_keeps_no_arc_and_drops_the_memory_candidates(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    session_id, thread_id = hold(memory, SAID)
    async with run_finalizer() as finalizer:
        await finalizer.end(session_id, thread_id, 5, save=False, feedback=Feedback.SKIP)
        record = await finalizer.final(session_id)
    assert (record.status, record.summary, record.memories_committed) == ("completed", None, 0)
    assert record.detail == f"Finalized 5 turns. {UNSAVED_DETAIL}"
    (commit,) = memory.committed(session_id)
    assert (commit.save, commit.summary) == (False, None)
    assert memory.page_requests == 0  # no arc, so the transcript was never read


async def test_an_incognito_end_leaves_nothing_behind(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    session_id, thread_id = new_session()
    async with run_finalizer() as finalizer:
        await finalizer.end(session_id, thread_id, 2, mode=MemoryMode.INCOGNITO)
        await finalizer.idle()
        assert await finalizer.status(session_id) is None
        for table in ("finalizations", "session_feedback", "webhook_deliveries"):
            assert (
                finalizer.rows(f"SELECT 1 FROM finalizer.{table} WHERE session_id = %s", session_id)
                == []
            )
    assert memory.committed(session_id) == []


async def test_a_long_transcript_is_read_in_pages_to_its_end(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    memory.page_size = 7
    quiet = [
        f"Today I mostly sat by the window and watched the street, hour {n}." for n in range(40)
    ]
    money = [f"The rent is due again and my debt keeps growing, week {n}." for n in range(10)]
    session_id, thread_id = hold(memory, quiet + money)
    async with run_finalizer() as finalizer:
        await finalizer.end(session_id, thread_id, 50)
        record = await finalizer.final(session_id)
    assert memory.page_requests >= 8  # 50 turns, 7 a page
    assert record.themes[0] == "money"  # said only on the last pages


@pytest.mark.parametrize("transcript", [False, True])
async def test_a_report_the_receiver_refuses_is_retried_until_taken(
    memory: FakeMemory, run_finalizer: RunFinalizer, transcript: bool
) -> None:
    session_id, thread_id = hold(memory, SAID)
    with WebhookReceiver(statuses=[500, 503], session_id=session_id) as receiver:
        async with run_finalizer(
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            webhook_include_transcript=transcript,
        ) as finalizer:
            await finalizer.end(session_id, thread_id, 5)
            await finalizer.final(session_id)

            async def delivered() -> bool:
                return bool(
                    finalizer.rows(
                        "SELECT 1 FROM finalizer.webhook_deliveries "
                        "WHERE session_id = %s AND status = 'delivered'",
                        session_id,
                    )
                )

            await eventually(delivered)
            assert [r.status for r in receiver.of(session_id)] == [500, 503, 200]
            assert {r.headers[IDEMPOTENCY_HEADER] for r in receiver.of(session_id)} == {
                f"fin_{session_id}"
            }
            assert all(
                verify_signature(SECRET, r.headers[SIGNATURE_HEADER], r.body)
                for r in receiver.of(session_id)
            )
            report = SessionReport.model_validate_json(receiver.delivered(session_id)[0].body)
            if transcript:
                assert report.transcript is not None
                assert [turn.user_text for turn in report.transcript] == SAID
            else:
                assert report.transcript is None
            assert finalizer.rows(
                "SELECT attempts, last_status_code FROM finalizer.webhook_deliveries "
                "WHERE session_id = %s",
                session_id,
            ) == [(3, 200)]


async def test_a_report_nobody_takes_is_given_up_after_the_last_attempt(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    session_id, thread_id = hold(memory, SAID)
    with WebhookReceiver(statuses=[500, 500, 500, 500], session_id=session_id) as receiver:
        async with run_finalizer(
            webhook_url=receiver.url, webhook_secret=SECRET, webhook_max_attempts=3
        ) as finalizer:
            await finalizer.end(session_id, thread_id, 5)
            await finalizer.final(session_id)

            async def given_up() -> bool:
                return finalizer.rows(
                    "SELECT status, attempts, last_status_code, last_error "
                    "FROM finalizer.webhook_deliveries WHERE session_id = %s",
                    session_id,
                ) == [("failed", 3, 500, "HTTP 500")]

            await eventually(given_up)
            assert len(receiver.of(session_id)) == 3


async def test_an_erased_owners_sessions_leave_nothing_and_a_late_end_writes_nothing(
    memory: FakeMemory, run_finalizer: RunFinalizer, receiver: WebhookReceiver
) -> None:
    session_id, thread_id = hold(memory, SAID)
    async with run_finalizer(webhook_url=receiver.url, webhook_secret=SECRET) as finalizer:
        await finalizer.end(session_id, thread_id, 5, feedback=Feedback.POSITIVE)
        record = await finalizer.final(session_id)
        assert record.summary is not None
        # Its result as an earlier version published it: through the stream, arc and all.
        stored = subjects.stored_session_finalized(session_id)
        await publish_event(
            finalizer.js, stored, SessionFinalized(record=record), dedup_id=f"stored-{session_id}"
        )
        assert [s async for s, _ in stored_events(finalizer.js, stored)]

        erased = OwnerErased(
            erasure_id=f"er_{uuid.uuid4().hex}",
            session_ids=[session_id],
            thread_ids=[thread_id],
            erased_at=datetime.now(UTC),
        )
        await publish_event(finalizer.js, subjects.OWNER_ERASED, erased, dedup_id=erased.dedup_id)
        await finalizer.idle(subjects.FINALIZER_ERASURE_CONSUMER)
        for table in ("finalizations", "session_feedback", "webhook_deliveries"):
            assert (
                finalizer.rows(f"SELECT 1 FROM finalizer.{table} WHERE session_id = %s", session_id)
                == []
            ), table
        assert [s async for s, _ in stored_events(finalizer.js, stored)] == []

        # The same end again (a redelivery, a retried /end): nothing is written for it.
        await finalizer.end(session_id, thread_id, 5, dedup_id=f"late-{uuid.uuid4().hex}")
        await finalizer.idle()
        assert await finalizer.status(session_id) is None
        assert len(memory.committed(session_id)) == 1


async def test_a_result_reaches_the_waiting_gateway_and_no_stream_keeps_its_arc(
    memory: FakeMemory, run_finalizer: RunFinalizer
) -> None:
    # The result, with the arc quoting the person, went through the events stream: it stayed
    # there for the stream's 30 days, after the finalizer's arc retention and after the person
    # deleted the summary from memory.
    session_id, thread_id = hold(memory, SAID)
    async with run_finalizer() as finalizer:
        waiting = await finalizer.nc.subscribe(subjects.session_finalized(session_id))
        await finalizer.end(session_id, thread_id, 5)
        record = await finalizer.final(session_id)
        told = SessionFinalized.model_validate_json((await waiting.next_msg(timeout=10)).data)
        assert told.record.summary == record.summary
        info = await finalizer.js.stream_info(subjects.EVENTS_STREAM, subjects_filter=">")
        assert not [
            subject
            for subject in (info.state.subjects or {})
            if session_id in subject and not subject.startswith(subjects.SESSION_ENDED)
        ]


@pytest.mark.parametrize("waiting_on", ["a turn", "the transcript"])
async def test_a_session_that_fails_is_reported_with_what_memory_held_of_it(
    memory: FakeMemory, run_finalizer: RunFinalizer, receiver: WebhookReceiver, waiting_on: str
) -> None:
    # Memory held two turns, one of them imminent risk; the session failed waiting on a third
    # acknowledged turn, or on its transcript. The failure was reported with turn_count 0 and
    # peak_crisis_level null.
    session_id, thread_id = hold(
        memory,
        [
            "Work has been awful and I cannot cope any more.",
            "I have pills ready and I am going to end it tonight.",
        ],
        levels=[0, 3],
    )
    if waiting_on == "the transcript":
        memory.silent_sessions.add(session_id)
    async with run_finalizer(
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        memory_wait_seconds=1.0,
        memory_timeout_seconds=0.3,
    ) as finalizer:
        await finalizer.end(session_id, thread_id, 3 if waiting_on == "a turn" else 2)
        record = await finalizer.final(session_id)
        assert (record.status, record.turn_count, record.peak_crisis_level) == ("failed", 2, 3)

        async def reported() -> bool:
            return bool(receiver.delivered(session_id))

        await eventually(reported)
    report = SessionReport.model_validate_json(receiver.delivered(session_id)[0].body)
    assert (report.status, report.turn_count, report.peak_crisis_level) == ("failed", 2, 3)


class _HangingModel(BaseHTTPRequestHandler):
    """A model endpoint that hangs on the session saying HANG until ``released``, and refuses
    (400) every other, so the extractive summary is written for them at once."""

    released = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if b"HANG" in body:
            self.released.wait(120)
        payload = b'{"error":{"message":"no","type":"invalid_request_error","code":null}}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


async def test_a_session_another_replica_is_finalizing_is_left_to_it(migrated: str) -> None:
    # Without the session's lock both replicas summarised it (a paid model call each); no test
    # noticed the lock ignored.
    session_id, thread_id = new_session()
    event = SessionEnded(
        session_id=session_id,
        thread_id=thread_id,
        user_id="u",
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=1,
        ended_at=datetime.now(UTC),
    )

    async def announce(record: FinalizationRecord) -> None:
        raise AssertionError("nothing is final yet")

    async with connection_pool(migrated, max_size=4) as pool:
        store = FinalizationStore(pool)
        unused = cast(MemoryLink, None)  # never asked: the lock is refused first
        finalizer = Finalizer(store, unused, ExtractiveSummariser(), announce, FinalizerSettings())
        await store.open(session_id, thread_id)
        async with store.exclusive(session_id) as held:  # the other replica
            assert held
            with pytest.raises(RetryLater):
                await finalizer.finalize(event)
        record = await store.get(session_id)
    assert record is not None
    assert record.status == "pending"


async def test_a_session_whose_summary_hangs_holds_up_no_other(
    memory: FakeMemory, run_finalizer: RunFinalizer, bus: tuple[NatsClient, JetStreamContext]
) -> None:
    # Ends were fetched 16 at a time and finalized one after another: one whose model summary
    # hung held up the 15 fetched with it, while another replica sat idle.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangingModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _HangingModel.released.clear()
    hanging = hold(memory, [f"{text} HANG" for text in SAID])
    others = [hold(memory, SAID) for _ in range(4)]
    _, js = bus
    for session_id, thread_id in [hanging, *others]:  # a burst of ends, fetched together
        event = SessionEnded(
            session_id=session_id,
            thread_id=thread_id,
            user_id="u",
            memory_mode=MemoryMode.PERSISTENT,
            expected_turn_count=len(SAID),
            ended_at=datetime.now(UTC),
        )
        await publish_event(js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
    try:
        async with run_finalizer(
            summariser="model",
            openai_api_key="sk-test-not-real",
            openai_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            summary_timeout_seconds=150,
        ) as finalizer:
            for session_id, _ in others:
                assert (await finalizer.final(session_id)).status == "completed"
            hung = await finalizer.status(hanging[0])
            assert hung is None or hung.status == "in_progress"
            _HangingModel.released.set()
            assert (await finalizer.final(hanging[0], timeout=120)).status == "completed"
    finally:
        _HangingModel.released.set()
        server.shutdown()


async def test_reports_claimed_together_are_all_tried_before_their_lease_runs_out(
    bus: tuple[NatsClient, JetStreamContext], migrated: str
) -> None:
    # The receiver hangs: every POST waits out its timeout. A replica claims reports ten at a
    # time, each claim a lease; one still unsent when its lease ran out would be taken by
    # another replica as well, and sent (and its attempt counted) twice.
    settings = FinalizerSettings(
        webhook_url="http://127.0.0.1:9/reports",
        webhook_secret=SECRET,
        webhook_timeout_seconds=0.5,
        memory_timeout_seconds=0.5,
        webhook_retry_first_delay_seconds=600,
    )
    lease = 3 * (settings.webhook_timeout_seconds + settings.memory_timeout_seconds)
    owed = [new_session() for _ in range(10)]
    with WebhookReceiver() as receiver:
        receiver.hold.set()
        async with (
            connection_pool(migrated, max_size=4) as pool,
            httpx.AsyncClient() as http,
        ):
            store = FinalizationStore(pool)
            for session_id, thread_id in owed:
                await store.open(session_id, thread_id)
                await store.start(session_id)
                done = Completion(1, 60, None, 0, None, "Finalized 1 turn.")
                await store.complete(session_id, done, feedback=None, feedback_days=1, report=True)
            replicas = [
                ReportSender(
                    ReportOutbox(pool),
                    MemoryLink(bus[0], settings.memory_timeout_seconds),
                    http,
                    settings,
                    url=receiver.url,
                    secret=SECRET,
                )
                for _ in range(2)
            ]
            first = asyncio.create_task(replicas[0].send_due())
            await asyncio.sleep(lease + 0.5)
            await replicas[1].send_due()
            await first

        assert [len(receiver.of(session_id)) for session_id, _ in owed] == [1] * len(owed)
