"""Forget everything: after erasing a user (or a thread), no table of the memory schema, no turn
message in JetStream and no held candidate keeps their words; everyone else's stays.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import sql
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import OwnerErased, TurnClassified, TurnRecorded
from opencouch.contracts.memory import (
    CommitMemoryCandidatesReply,
    CommitMemoryCandidatesRequest,
    EraseMemoryReply,
    EraseMemoryRequest,
    SessionSummary,
)
from opencouch.memory import erasure
from opencouch.memory.candidates import CandidateStore
from opencouch.memory.erasure import MEMORY_TABLES, Eraser
from opencouch.memory.handlers import MemoryHandlers
from opencouch.memory.memory_store import MemoryStore
from opencouch.memory.policy import owner_key
from opencouch.memory.service import build, housekeeping
from opencouch.memory.settings import MemorySettings
from opencouch.memory.store import Recorded, TranscriptStore
from opencouch.memory.testing import (
    Conversation,
    MemoryClient,
    eventually,
    new_id,
    new_session_id,
)
from opencouch.runtime.jetstream import (
    ORIGINAL_SEQUENCE,
    ORIGINAL_SUBJECT,
    dead_letters,
    stored_events,
)
from opencouch.runtime.postgres import DictPool, connection_pool


def word() -> str:
    """A word nobody else says: if it is anywhere, it is this test's."""
    return "Zq" + uuid.uuid4().hex[:10]


async def lived(memory: MemoryClient, conversation: Conversation, name: str) -> str:
    """A session that leaves something in every layer, then a second one still open (its id)."""
    turns = [
        conversation.turn(f"My sister is called {name}."),
        conversation.turn(f"please remember to call me {name} sometimes"),
    ]
    for turn in turns:
        await memory.publish(turn)
    await memory.stored(conversation.session_id, len(turns))
    await memory.classify(conversation, turns[0].client_turn_id, 1, "ambiguous_distress")
    said = f"please remember to call me {name} sometimes"
    saved = await memory.call(
        "save_response_preference",
        conversation,
        said,
        preference_text=f"Call the user {name} sometimes.",
        user_quote=said,
    )
    assert saved.output["status"] == "saved"
    said = "yes, turn recall on please"
    await memory.call(
        "set_proactive_memory_recall", conversation, said, enabled=True, user_quote=said
    )
    committed = await memory.commit(
        conversation,
        summary=SessionSummary(
            summary=f"They talked about their sister {name}.",
            themes=["family"],
            ended_at=datetime.now(UTC),
        ),
    )
    assert (committed.facts_committed, committed.summary_stored) == (1, True)
    still_open = conversation.next_session()
    await memory.publish(still_open.turn(f"My brother is called {name}bert."))
    await memory.stored(still_open.session_id, 1)
    return still_open.session_id


async def lived_and_erased(memory: MemoryClient) -> tuple[Conversation, str]:
    """A user's lived session (its words say the returned name), then that user erased."""
    conversation = Conversation()
    name = word()
    await lived(memory, conversation, name)
    await erase(memory, user_id=conversation.user_id)
    return conversation, name


def tables_holding(memory: MemoryClient, text: str) -> list[str]:
    """Every table of the memory schema with a row that contains ``text`` anywhere."""
    tables = [
        row[0]
        for row in memory.rows(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'memory' AND table_type = 'BASE TABLE'"
        )
    ]
    assert set(MEMORY_TABLES) <= set(tables)
    holding = []
    for table in tables:
        query = sql.SQL("SELECT 1 FROM memory.{} AS r WHERE r::text ILIKE %s LIMIT 1").format(
            sql.Identifier(table)
        )
        if memory.rows(query.as_string(), f"%{text}%"):
            holding.append(table)
    return holding


async def stream_holding(memory: MemoryClient, text: str) -> int:
    return sum(
        [
            text.encode() in data
            async for _, data in stored_events(memory.js, subjects.TURN_RECORDED)
        ]
    )


async def erase(
    memory: MemoryClient, session_ids: list[str] | None = None, **subject: str | None
) -> EraseMemoryReply:
    request = EraseMemoryRequest(confirmed=True, session_ids=session_ids or [], **subject)
    return await memory.ask(subjects.MEMORY_ERASE, request, EraseMemoryReply)


async def test_erasing_a_user_leaves_none_of_their_words_anywhere_and_keeps_everyone_elses(
    memory: MemoryClient,
) -> None:
    erased_user, other_user = Conversation(), Conversation()
    theirs, others = word(), word()
    open_session = await lived(memory, erased_user, theirs)
    await lived(memory, other_user, others)
    assert set(tables_holding(memory, theirs)) >= {
        "turns",
        "facts",
        "session_summaries",
        "response_rules",
    }

    reply = await erase(memory, user_id=erased_user.user_id)

    assert tables_holding(memory, theirs) == []
    assert erased_user.user_id is not None
    assert tables_holding(memory, erased_user.user_id) == []
    assert tables_holding(memory, erased_user.session_id) == []
    assert await stream_holding(memory, theirs) == 0
    assert reply.sessions == 2
    assert set(reply.session_ids) == {erased_user.session_id, open_session}
    assert reply.thread_ids == [erased_user.thread_id]
    assert reply.erased_rows["turns"] == 3
    assert reply.erased_rows["owner_settings"] == 1
    assert reply.pending_candidates == 1  # the open session's fact, never committed
    shown = await memory.call("show_saved_memory", erased_user.next_session())
    assert shown.output["total_facts"] == shown.output["total_rules"] == 0

    assert set(tables_holding(memory, others)) >= {
        "turns",
        "facts",
        "session_summaries",
        "response_rules",
    }
    kept = await memory.call("show_saved_memory", other_user)
    assert kept.output["total_facts"] == 1
    assert [item["index"] for item in kept.output["pending_facts"]] == []


async def test_what_arrives_for_an_erased_session_after_the_erasure_is_dropped(
    memory: MemoryClient,
) -> None:
    conversation, name = await lived_and_erased(memory)

    # A finalizer still at work commits the session's summary after the erasure...
    late_commit = await memory.commit(
        conversation,
        summary=SessionSummary(
            summary=f"They talked about {name} again.", themes=[], ended_at=datetime.now(UTC)
        ),
    )
    # ...and a turn of that session is delivered late.
    late_turn = conversation.turn(f"Late words about {name}.")
    await memory.publish(late_turn)
    probe = Conversation()
    await memory.publish(probe.turn("A later turn of someone else, stored after the late one."))
    await memory.stored(probe.session_id, 1)

    assert (late_commit.facts_committed, late_commit.summary_stored) == (0, False)
    assert tables_holding(memory, name) == []


async def test_erasing_a_thread_takes_its_transcripts_and_the_memory_it_gave(
    memory: MemoryClient,
) -> None:
    anonymous = Conversation(user_id=None)
    neighbour = Conversation(user_id=None)
    theirs, others = word(), word()
    await lived(memory, anonymous, theirs)
    await lived(memory, neighbour, others)

    reply = await erase(memory, thread_id=anonymous.thread_id)

    assert tables_holding(memory, theirs) == []
    assert tables_holding(memory, anonymous.thread_id) == []
    assert await stream_holding(memory, theirs) == 0
    assert reply.erased_rows["threads"] == 1
    assert reply.pending_candidates == 1
    assert "turns" in tables_holding(memory, others)


async def dead_letter(memory: MemoryClient, durable: str, turn: TurnRecorded) -> None:
    """A turn that ``durable`` gave up on, kept as ``consume_events`` keeps one."""
    await memory.js.publish(
        subjects.dead_letters(durable),
        turn.model_dump_json().encode(),
        stream=subjects.DEAD_LETTERS_STREAM,
        headers={ORIGINAL_SUBJECT: subjects.TURN_RECORDED, ORIGINAL_SEQUENCE: "1"},
    )


async def dead_letters_holding(memory: MemoryClient, durable: str, text: str) -> int:
    return sum([text.encode() in letter.data async for letter in dead_letters(memory.js, durable)])


async def test_erasure_reaches_the_turns_any_reader_kept_as_dead_letters(
    memory: MemoryClient,
) -> None:
    # The crisis classifier reads every turn too: a turn it gave up on holds the user's words.
    erased_user, other_user = Conversation(), Conversation()
    theirs, others = word(), word()
    await lived(memory, erased_user, theirs)
    readers = (subjects.MEMORY_TURNS_CONSUMER, subjects.TOOLS_CRISIS_CONSUMER)
    for durable in readers:
        await dead_letter(memory, durable, erased_user.turn(f"I am {theirs} and I give up."))
        await dead_letter(memory, durable, other_user.turn(f"I am {others} and I give up."))

    await erase(memory, user_id=erased_user.user_id)

    for durable in readers:
        assert await dead_letters_holding(memory, durable, theirs) == 0, durable
        assert await dead_letters_holding(memory, durable, others) == 1, durable


async def test_a_turn_a_reader_gives_up_on_after_the_erasure_is_swept_from_the_dead_letters(
    memory: MemoryClient, redis_url: str
) -> None:
    """The crisis classifier still retrying an erased session's turn gives up on it later: its
    dead letter, written after the erasure, would keep the words for good."""
    conversation, _ = await lived_and_erased(memory)
    other = Conversation()
    theirs, others = word(), word()
    durable = subjects.TOOLS_CRISIS_CONSUMER
    await dead_letter(memory, durable, conversation.turn(f"I am {theirs} and I give up."))
    await dead_letter(memory, durable, other.turn(f"I am {others} and I give up."))

    settings = MemorySettings(housekeeping_interval_seconds=0.1)
    stop = asyncio.Event()
    async with eraser_of(memory, redis_url) as eraser:
        running = asyncio.create_task(housekeeping(memory.js, eraser, settings, stop))
        try:

            async def swept() -> bool:
                return await dead_letters_holding(memory, durable, theirs) == 0

            await eventually(swept)
        finally:
            stop.set()
            await running

    assert await dead_letters_holding(memory, durable, others) == 1


async def test_a_classification_arriving_after_the_erasure_is_dropped(
    memory: MemoryClient,
) -> None:
    conversation, _ = await lived_and_erased(memory)

    # The crisis screening of an erased turn (one not screened before) is published late.
    await memory.classify(conversation, "turn-2", 2, "explicit_ideation")
    await memory.idle(subjects.MEMORY_CLASSIFICATIONS_CONSUMER)

    assert tables_holding(memory, conversation.session_id) == []


async def test_a_turn_redelivered_after_the_erasure_holds_nothing_of_it(
    memory: MemoryClient,
) -> None:
    conversation, name = await lived_and_erased(memory)

    # The session's first turn, with a fact in it, comes again as a new message.
    redelivered = conversation.turn(f"My sister is called {name}.", client_turn_id="turn-1")
    await memory.publish(redelivered, dedup_id=f"again:{redelivered.dedup_id}")
    await memory.idle(subjects.MEMORY_TURNS_CONSUMER)

    assert tables_holding(memory, name) == []
    shown = await memory.call("show_saved_memory", conversation)
    assert shown.output["pending_facts"] == []  # nothing of it held in Redis either


async def test_erasing_a_user_takes_the_crisis_levels_of_sessions_whose_turns_are_still_on_the_way(
    memory: MemoryClient,
) -> None:
    conversation = Conversation()
    await memory.publish(conversation.turn("Hello."))
    await memory.stored(conversation.session_id, 1)
    # A later session's turn was screened, and the screening stored, before the turn itself.
    later = conversation.next_session()
    await memory.classify(later, "turn-1", 3, "imminent_risk")
    await memory.idle(subjects.MEMORY_CLASSIFICATIONS_CONSUMER)
    held = "SELECT 1 FROM memory.turn_classifications WHERE session_id = %s"
    assert memory.rows(held, later.session_id) != []

    reply = await erase(memory, user_id=conversation.user_id)

    assert later.session_id in reply.session_ids
    assert tables_holding(memory, later.session_id) == []
    # The turn arrives after all: its session is remembered as erased.
    await memory.publish(later.turn("Late words."))
    await memory.idle(subjects.MEMORY_TURNS_CONSUMER)
    assert tables_holding(memory, later.session_id) == []


async def test_erasing_a_user_takes_the_settings_made_while_their_thread_was_anonymous(
    memory: MemoryClient,
) -> None:
    anonymous = Conversation(user_id=None)
    name = word()
    await memory.publish(anonymous.turn(f"My sister is called {name}."))
    await memory.stored(anonymous.session_id, 1)
    # The anonymous session ended and its fact was kept, under the thread.
    assert (await memory.commit(anonymous)).facts_committed == 1
    said = "yes, turn recall on please"
    await memory.call("set_proactive_memory_recall", anonymous, said, enabled=True, user_quote=said)
    said = "please remember to speak slowly"
    await memory.call(
        "save_response_preference",
        anonymous,
        said,
        preference_text="Speak slowly.",
        user_quote=said,
    )
    # The user signs in and goes on in the same thread.
    signed_in = Conversation(anonymous.thread_id, new_id("user"))
    await memory.publish(signed_in.turn("Hello again."))
    await memory.stored(signed_in.session_id, 1)

    reply = await erase(memory, user_id=signed_in.user_id)

    assert set(reply.session_ids) == {anonymous.session_id, signed_in.session_id}
    assert reply.erased_rows["response_rules"] == reply.erased_rows["owner_settings"] == 1
    assert tables_holding(memory, anonymous.session_id) == []
    assert tables_holding(memory, name) == []  # the fact, kept under the thread's owner of then
    assert signed_in.user_id is not None
    assert tables_holding(memory, signed_in.user_id) == []


async def test_erasing_a_user_drops_what_their_thread_held_while_it_was_anonymous(
    memory: MemoryClient, redis_url: str
) -> None:
    anonymous = Conversation(user_id=None)
    name = word()
    await memory.publish(anonymous.turn(f"My sister is called {name}."))
    await memory.stored(anonymous.session_id, 1)
    signed_in = Conversation(anonymous.thread_id, new_id("user"))
    await memory.publish(signed_in.turn("Hello again."))
    await memory.stored(signed_in.session_id, 1)
    redis = Redis.from_url(redis_url)
    try:
        held = CandidateStore(redis, 3600)
        assert [fact.text for fact in await held.held(anonymous.session_id)] != []

        reply = await erase(memory, user_id=signed_in.user_id)

        assert anonymous.session_id in reply.session_ids
        # Held under the thread's owner of then (the thread), not the user: gone all the same.
        assert await held.held(anonymous.session_id) == []
        assert reply.pending_candidates == 1
    finally:
        await redis.aclose()


async def test_a_turn_stored_as_its_user_is_erased_leaves_nothing_held(
    memory: MemoryClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas: one stores a turn while the other erases its user, between the two steps
    of storing it (holding its facts, storing the turn), whichever comes first."""
    conversation = Conversation()
    await memory.publish(conversation.turn("Hello there."))
    await memory.stored(conversation.session_id, 1)
    redis = Redis.from_url(redis_url)
    try:
        async with connection_pool(memory.database_url, max_size=2) as pool:
            candidates = CandidateStore(redis, 3600)
            handlers, _, eraser = build(MemorySettings(), pool, redis, memory.js)
            steps: list[str] = []

            def erasing_after_the_first(step: Callable[..., Awaitable[Any]]) -> Any:
                async def run(*args: Any, **fields: Any) -> Any:
                    result = await step(*args, **fields)
                    steps.append(step.__name__)
                    if len(steps) == 1:  # the other replica's erasure lands now
                        await eraser.erase(user_id=conversation.user_id, thread_id=None)
                    return result

                return run

            for owner, name in ((CandidateStore, "hold"), (TranscriptStore, "record_turn")):
                monkeypatch.setattr(owner, name, erasing_after_the_first(getattr(owner, name)))
            said = word()
            await handlers.on_turn_recorded(conversation.turn(f"My sister is called {said}."))
        assert len(steps) == 2
        assert await candidates.held(conversation.session_id) == []
    finally:
        await redis.aclose()
    assert tables_holding(memory, said) == []


def classified(conversation: Conversation, client_turn_id: str, level: int) -> TurnClassified:
    """The crisis level of a turn, as the tools service's screening publishes it now."""
    return TurnClassified(
        session_id=conversation.session_id,
        thread_id=conversation.thread_id,
        client_turn_id=client_turn_id,
        level=level,
        reason="test",
        classified_at=datetime.now(UTC),
    )


@pytest.mark.parametrize("write", ["turn", "crisis level", "commit", "rule", "setting"])
async def test_what_another_replica_writes_while_an_erasure_runs_does_not_outlive_it(
    memory: MemoryClient, redis_url: str, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """The erasure has deleted the user's rows but not committed yet when another replica
    writes for them: whoever commits first, nothing of the user is left after the erasure."""
    conversation = Conversation()
    name = word()
    await memory.publish(conversation.turn(f"My sister is called {name}."))
    await memory.stored(conversation.session_id, 1)
    redis = Redis.from_url(redis_url)
    try:
        async with connection_pool(memory.database_url, max_size=4) as pool:
            handlers, _, eraser = build(MemorySettings(), pool, redis, memory.js)
            deleted, go_on = asyncio.Event(), asyncio.Event()
            record_unfinished = erasure._record_unfinished

            async def held_open(*args: Any) -> Any:
                # The last step of the erasure's transaction: its rows are deleted by now.
                recorded = await record_unfinished(*args)
                deleted.set()
                await go_on.wait()
                return recorded

            monkeypatch.setattr(erasure, "_record_unfinished", held_open)
            erasing = asyncio.create_task(
                eraser.erase(user_id=conversation.user_id, thread_id=None)
            )
            await deleted.wait()

            async def write_for_them() -> None:
                if write == "turn":
                    said = f"My brother is called {name}bert."
                    await handlers.on_turn_recorded(conversation.turn(said))
                elif write == "crisis level":
                    await handlers.on_turn_classified(classified(conversation, "turn-1", 2))
                elif write == "commit":
                    summary = SessionSummary(
                        summary=f"They talked about {name}.", ended_at=datetime.now(UTC)
                    )
                    await handlers.commit_candidates(conversation.commit_request(summary=summary))
                else:  # a memory tool's write, from a session live when the erasure began
                    store, session = MemoryStore(pool), conversation.session_id
                    owner = owner_key(conversation.thread_id, conversation.user_id)
                    where = {"session_id": session, "thread_id": conversation.thread_id}
                    if write == "rule":
                        await store.save_rule(owner, f"Call me {name}.", **where)
                    else:
                        await store.set_proactive_recall(owner, True, **where)

            writing = asyncio.create_task(write_for_them())

            async def done_or_waiting() -> bool:
                waiting = "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                return writing.done() or bool(memory.rows(waiting))

            await eventually(done_or_waiting)  # the write went through, or waits on the erasure
            go_on.set()
            await erasing
            await writing
    finally:
        await redis.aclose()
    assert tables_holding(memory, name) == []
    assert tables_holding(memory, conversation.session_id) == []
    assert conversation.user_id is not None
    assert tables_holding(memory, conversation.user_id) == []


async def test_what_was_said_before_an_erasure_and_reaches_memory_after_it_is_dropped(
    memory: MemoryClient,
) -> None:
    """Memory was a few turns behind: the user ended a session whose turns were still on
    their way, then erased everything. Nothing of that session was stored, so the erasure could
    not name it; what arrives of it afterwards goes all the same. A new session is kept."""
    conversation = Conversation()
    await memory.publish(conversation.turn("Hello."))
    await memory.stored(conversation.session_id, 1)
    behind = conversation.next_session()
    name = word()
    late_turn = behind.turn(f"My sister is called {name}.")
    late_commit = behind.commit_request(
        summary=SessionSummary(summary=f"They talked about {name}.", ended_at=datetime.now(UTC))
    )

    reply = await erase(memory, user_id=conversation.user_id)

    assert behind.session_id not in reply.session_ids
    # Its crisis level arrives first (it names no user), then the turn, then the commit.
    await memory.classify(behind, late_turn.client_turn_id, 2, "explicit_ideation")
    await memory.idle(subjects.MEMORY_CLASSIFICATIONS_CONSUMER)
    await memory.publish(late_turn)
    await memory.idle(subjects.MEMORY_TURNS_CONSUMER)
    committed = await memory.ask(
        subjects.MEMORY_COMMIT_CANDIDATES, late_commit, CommitMemoryCandidatesReply
    )
    assert (committed.facts_committed, committed.summary_stored) == (0, False)
    assert tables_holding(memory, name) == []
    assert tables_holding(memory, behind.session_id) == []
    assert conversation.user_id is not None
    assert tables_holding(memory, conversation.user_id) == []

    after = conversation.next_session()
    said = f"My brother is called {name}bert."
    await memory.publish(after.turn(said, started_at=datetime.now(UTC)))
    await memory.stored(after.session_id, 1)
    assert (await memory.commit(after)).facts_committed == 1
    shown = await memory.call("show_saved_memory", after)
    assert [item["text"] for item in shown.output["facts"]] == [said]


async def test_erasing_a_thread_takes_the_users_settings_made_in_it(
    memory: MemoryClient,
) -> None:
    conversation = Conversation()
    await memory.publish(conversation.turn("Hello."))
    await memory.stored(conversation.session_id, 1)
    said = "yes, turn recall on please"
    await memory.call(
        "set_proactive_memory_recall", conversation, said, enabled=True, user_quote=said
    )

    reply = await erase(memory, thread_id=conversation.thread_id)

    assert reply.erased_rows["owner_settings"] == 1
    assert tables_holding(memory, conversation.thread_id) == []
    assert tables_holding(memory, conversation.session_id) == []


async def announced(memory: MemoryClient, erasure_id: str) -> OwnerErased | None:
    """The ``OwnerErased`` event memory published under ``erasure_id``, if any."""
    async for _, data in stored_events(memory.js, subjects.OWNER_ERASED):
        event = OwnerErased.model_validate_json(data)
        if event.erasure_id == erasure_id:
            return event
    return None


async def test_an_erasure_announces_every_session_it_erased_to_the_other_services(
    memory: MemoryClient,
) -> None:
    conversation = Conversation()
    open_session = await lived(memory, conversation, word())
    # The session asking has no turn stored yet: memory only knows of it from the request.
    asking = new_session_id()

    reply = await erase(memory, user_id=conversation.user_id, session_ids=[asking])

    event = await announced(memory, reply.erasure_id)
    assert event is not None
    assert set(event.session_ids) == set(reply.session_ids)
    assert set(reply.session_ids) == {conversation.session_id, open_session, asking}
    assert event.thread_ids == [conversation.thread_id]
    # The asking session's turn, still on its way, arrives after the erasure: dropped.
    late = Conversation(conversation.thread_id, conversation.user_id, asking)
    await memory.publish(late.turn("Words said just before the erasure."))
    await memory.idle(subjects.MEMORY_TURNS_CONSUMER)
    assert tables_holding(memory, asking) == []


class _RedisDown(CandidateStore):
    """Held candidates unreachable: the erasure stops after its Postgres commit."""

    async def drop_everything_of(
        self, owners_or_threads: Sequence[str], session_ids: Sequence[str] = ()
    ) -> int:
        raise RedisConnectionError("Redis is down")


@asynccontextmanager
async def eraser_of(
    memory: MemoryClient, redis_url: str, *, redis_down: bool = False
) -> AsyncIterator[Eraser]:
    """An eraser of this test's own over memory's database, Redis and JetStream."""
    redis = Redis.from_url(redis_url)
    candidates = (_RedisDown if redis_down else CandidateStore)(redis, 3600)
    try:
        async with connection_pool(memory.database_url, max_size=2) as pool:
            yield Eraser(pool, memory.js, candidates)
    finally:
        await redis.aclose()


async def cut_short(memory: MemoryClient, redis_url: str) -> tuple[Conversation, str, str]:
    """A user's lived sessions, erased by a try cut short after memory's commit; the user, the
    still open session and the words said."""
    conversation, name = Conversation(), word()
    open_session = await lived(memory, conversation, name)
    async with eraser_of(memory, redis_url, redis_down=True) as eraser:
        with pytest.raises(RedisConnectionError):
            await eraser.erase(user_id=conversation.user_id, thread_id=None)
    # Postgres is done: only the record of the unfinished erasure still names the user.
    assert conversation.user_id is not None
    assert tables_holding(memory, conversation.user_id) == ["erasures"]
    assert tables_holding(memory, name) == []
    return conversation, open_session, name


async def test_an_erasure_cut_short_after_its_commit_is_finished_by_the_retry(
    memory: MemoryClient, redis_url: str
) -> None:
    conversation, open_session, name = await cut_short(memory, redis_url)

    reply = await erase(memory, user_id=conversation.user_id)

    # The retry finds nothing left in the tables, yet names what the first try erased.
    assert set(reply.session_ids) == {conversation.session_id, open_session}
    assert reply.pending_candidates == 1  # the open session's fact, held in Redis
    event = await announced(memory, reply.erasure_id)
    assert event is not None
    assert set(event.session_ids) == {conversation.session_id, open_session}
    assert await stream_holding(memory, name) == 0
    assert conversation.user_id is not None
    assert tables_holding(memory, conversation.user_id) == []


async def test_an_erasure_cut_short_and_never_retried_is_finished_by_the_housekeeping(
    memory: MemoryClient, redis_url: str
) -> None:
    conversation, open_session, name = await cut_short(memory, redis_url)
    assert conversation.user_id is not None
    pending = "SELECT erasure_id FROM memory.erasures WHERE user_id = %s"
    [(erasure_id,)] = memory.rows(pending, conversation.user_id)
    settings = MemorySettings(
        housekeeping_interval_seconds=0.1, erasure_unfinished_after_seconds=0.01
    )

    stop = asyncio.Event()
    async with eraser_of(memory, redis_url) as eraser:
        running = asyncio.create_task(housekeeping(memory.js, eraser, settings, stop))
        try:

            async def finished() -> bool:
                return not memory.rows(pending, conversation.user_id)

            await eventually(finished)
        finally:
            stop.set()
            await running

    event = await announced(memory, erasure_id)
    assert event is not None
    assert set(event.session_ids) == {conversation.session_id, open_session}
    assert await stream_holding(memory, name) == 0
    still_open = Conversation(conversation.thread_id, conversation.user_id, open_session)
    shown = await memory.call("show_saved_memory", still_open)
    assert shown.output["pending_facts"] == []  # the held fact went from Redis too
    assert tables_holding(memory, conversation.user_id) == []


@dataclass
class _OneTurn:
    """A turn stating one fact, and memory's handlers over their own pool and Redis."""

    turn: TurnRecorded
    fact: str
    handlers: MemoryHandlers
    pool: DictPool
    redis: Redis

    async def stored_turns(self) -> int:
        counts = await TranscriptStore(self.pool).session_counts(self.turn.session_id)
        stored: int = counts["stored_turns"]
        return stored

    async def held(self) -> list[str]:
        return [
            fact.text for fact in await CandidateStore(self.redis, 3600).held(self.turn.session_id)
        ]


@asynccontextmanager
async def one_turn_stated(memory: MemoryClient, redis_url: str) -> AsyncIterator[_OneTurn]:
    fact = f"My sister is called {word()}."
    redis = Redis.from_url(redis_url)
    try:
        async with connection_pool(memory.database_url, max_size=2) as pool:
            handlers, _, _ = build(MemorySettings(), pool, redis, memory.js)
            yield _OneTurn(Conversation().turn(fact), fact, handlers, pool, redis)
    finally:
        await redis.aclose()


async def test_a_turn_counts_as_stored_only_once_its_facts_are_held(
    memory: MemoryClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finalizer commits a session once its turns are stored: a turn stored before its
    facts were held (Redis blipped in between) was committed without them, and the fact held
    by its redelivery was never committed."""
    async with one_turn_stated(memory, redis_url) as one:
        hold = CandidateStore.hold

        async def blip(self: CandidateStore, **fields: Any) -> None:
            raise RedisConnectionError("Redis blipped")

        monkeypatch.setattr(CandidateStore, "hold", blip)
        with pytest.raises(RedisConnectionError):
            await one.handlers.on_turn_recorded(one.turn)
        # Not stored: what the finalizer waits for is not there yet.
        assert await one.stored_turns() == 0
        monkeypatch.setattr(CandidateStore, "hold", hold)
        await one.handlers.on_turn_recorded(one.turn)  # the redelivery
        assert await one.stored_turns() == 1
        assert await one.held() == [one.fact]


async def test_two_deliveries_of_a_turn_at_once_leave_its_facts_held(
    memory: MemoryClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas handle the same turn at once: the first holds its fact, the second finds
    it held and stores the turn, then the first finds the turn stored. The session's commit
    counts on that fact: it stays held."""
    async with one_turn_stated(memory, redis_url) as one:
        first_held, second_done = asyncio.Event(), asyncio.Event()
        record_turn = TranscriptStore.record_turn

        async def first_waits(self: TranscriptStore, turn: TurnRecorded) -> Recorded:
            if not first_held.is_set():
                first_held.set()
                await second_done.wait()
            return await record_turn(self, turn)

        monkeypatch.setattr(TranscriptStore, "record_turn", first_waits)
        first = asyncio.create_task(one.handlers.on_turn_recorded(one.turn))
        await first_held.wait()
        await one.handlers.on_turn_recorded(one.turn)  # the second delivery stores it
        second_done.set()
        await first
        assert await one.stored_turns() == 1
        assert await one.held() == [one.fact]


@pytest.mark.parametrize("ending", ["saved", "unsaved", "deleted"])
async def test_a_turn_delivered_again_after_its_session_settled_holds_nothing_again(
    memory: MemoryClient, redis_url: str, ending: str
) -> None:
    """A turn JetStream delivers again once its session was committed (its ack was lost), once
    the person chose not to keep it, or after they deleted the fact: its facts were held for a
    week more, words the person had chosen not to keep among them."""
    conversation = Conversation()
    name = word()
    turn = conversation.turn(f"My sister is called {name}.")
    redis = Redis.from_url(redis_url)
    candidates = CandidateStore(redis, 3600)
    try:
        async with connection_pool(memory.database_url, max_size=2) as pool:
            handlers, _, _ = build(MemorySettings(), pool, redis, memory.js)
            await handlers.on_turn_recorded(turn)
            [fact] = await candidates.held(conversation.session_id)
            if ending == "deleted":
                assert await candidates.forget(conversation.session_id, fact.key)
            else:
                await handlers.commit_candidates(
                    CommitMemoryCandidatesRequest(
                        session_id=conversation.session_id,
                        thread_id=conversation.thread_id,
                        user_id=conversation.user_id,
                        memory_mode=MemoryMode.PERSISTENT,
                        save=ending == "saved",
                    )
                )
            await handlers.on_turn_recorded(turn)  # delivered again
            assert await candidates.held(conversation.session_id) == []
    finally:
        await redis.aclose()
