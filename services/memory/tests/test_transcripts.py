"""Transcripts from the turn stream: each turn once, in speech order, per voice session; crisis
levels per turn; and a thread's history in pages.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from opencouch.contracts import subjects
from opencouch.contracts.memory import (
    SessionTranscriptReply,
    SessionTranscriptRequest,
    SessionTurnCountsReply,
    SessionTurnCountsRequest,
    ThreadHistoryReply,
    ThreadHistoryRequest,
)
from opencouch.memory.testing import Conversation, MemoryClient
from opencouch.runtime.errors import ServiceError


async def test_duplicates_redeliveries_and_late_arrivals_store_each_turn_once_in_speech_order(
    memory: MemoryClient, conversation: Conversation
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    turns = [
        conversation.turn(f"utterance {n}", started_at=start + timedelta(seconds=30 * n))
        for n in range(8)
    ]
    arrival = turns[:]
    random.Random(7).shuffle(arrival)
    for turn in arrival:
        await memory.publish(turn)
        await memory.publish(turn)  # a retried publish: JetStream keeps one
    # The same turn again as new messages, as after the duplicate window or a redelivery.
    for turn in arrival[:4]:
        await memory.publish(turn, dedup_id=f"again:{turn.dedup_id}")

    await memory.stored(conversation.session_id, len(turns))
    await memory.idle(subjects.MEMORY_TURNS_CONSUMER)
    stored = await memory.transcript(conversation.session_id)
    assert [turn.user_text for turn in stored.turns] == [f"utterance {n}" for n in range(8)]
    assert stored.thread_id == conversation.thread_id
    assert all(turn.session_id == conversation.session_id for turn in stored.turns)


async def test_without_a_speech_start_a_turn_is_placed_by_when_it_was_recorded(
    memory: MemoryClient, conversation: Conversation
) -> None:
    now = datetime.now(UTC)
    spoken_early = conversation.turn("first, with a start", started_at=now - timedelta(minutes=5))
    unknown_start = conversation.turn("second, no start").model_copy(
        update={"started_at": None, "recorded_at": now - timedelta(minutes=4)}
    )
    spoken_late = conversation.turn("third, with a start", started_at=now - timedelta(minutes=3))
    for turn in (spoken_late, unknown_start, spoken_early):
        await memory.publish(turn)
    await memory.stored(conversation.session_id, 3)
    stored = await memory.transcript(conversation.session_id)
    assert [turn.user_text for turn in stored.turns] == [
        "first, with a start",
        "second, no start",
        "third, with a start",
    ]


async def test_a_client_turn_id_reused_by_a_later_session_of_the_thread_is_stored_for_both(
    memory: MemoryClient, conversation: Conversation
) -> None:
    later = conversation.next_session()
    await memory.publish(conversation.turn("in the first session", client_turn_id="turn-1"))
    await memory.publish(later.turn("in the second session", client_turn_id="turn-1"))
    await memory.stored(conversation.session_id, 1)
    await memory.stored(later.session_id, 1)
    first = await memory.transcript(conversation.session_id)
    second = await memory.transcript(later.session_id)
    assert [t.user_text for t in first.turns] == ["in the first session"]
    assert [t.user_text for t in second.turns] == ["in the second session"]


async def test_a_sessions_peak_crisis_level_is_one_query_whatever_arrives_first(
    memory: MemoryClient, conversation: Conversation
) -> None:
    calm, worried, last = (conversation.turn(text) for text in ("hi", "it is a lot", "bye"))
    # Its level comes before its turn does.
    await memory.classify(conversation, worried.client_turn_id, 2, "explicit_ideation")
    for turn in (calm, worried, last):
        await memory.publish(turn)
    await memory.stored(conversation.session_id, 3)
    await memory.classify(conversation, calm.client_turn_id, 0, "none")
    await memory.idle(subjects.MEMORY_CLASSIFICATIONS_CONSUMER)

    stored = await memory.transcript(conversation.session_id)
    assert (stored.classified_turns, stored.peak_crisis_level) == (2, 2)
    unclassified = await memory.transcript(conversation.next_session().session_id)
    assert (unclassified.classified_turns, unclassified.peak_crisis_level) == (0, None)


async def test_thread_history_comes_in_pages_from_the_newest_with_a_cursor_to_older_ones(
    memory: MemoryClient, conversation: Conversation
) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    first_session = [
        conversation.turn(f"one-{n}", started_at=start + timedelta(minutes=n)) for n in range(3)
    ]
    later = conversation.next_session()
    second_session = [
        later.turn(f"two-{n}", started_at=start + timedelta(minutes=30 + n)) for n in range(2)
    ]
    for turn in reversed(first_session + second_session):
        await memory.publish(turn)
    await memory.stored(conversation.session_id, 3)
    await memory.stored(later.session_id, 2)

    pages: list[list[str]] = []
    before = None
    while True:
        page = await memory.ask(
            subjects.MEMORY_THREAD_TURNS,
            ThreadHistoryRequest(thread_id=conversation.thread_id, before=before, limit=2),
            ThreadHistoryReply,
        )
        pages.append([turn.user_text for turn in page.turns])
        if page.before is None:
            break
        before = page.before
    assert pages == [["two-0", "two-1"], ["one-1", "one-2"], ["one-0"]]

    with pytest.raises(ServiceError) as refused:
        await memory.ask(
            subjects.MEMORY_THREAD_TURNS,
            ThreadHistoryRequest(thread_id=conversation.thread_id, before="nonsense"),
            ThreadHistoryReply,
        )
    assert refused.value.code == "invalid_request"
    empty = await memory.ask(
        subjects.MEMORY_THREAD_TURNS,
        ThreadHistoryRequest(thread_id="thread-never-used"),
        ThreadHistoryReply,
    )
    assert (empty.turns, empty.before) == ([], None)


async def test_a_sessions_counts_are_one_query_over_its_stored_turns_and_their_levels(
    memory: MemoryClient, conversation: Conversation
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    turns = [
        conversation.turn(f"counted {n}", started_at=start + timedelta(minutes=n)) for n in range(3)
    ]
    for turn in turns:
        await memory.publish(turn)
    await memory.stored(conversation.session_id, 3)
    await memory.classify(conversation, turns[0].client_turn_id, 1)
    await memory.classify(conversation, turns[2].client_turn_id, 0)
    # A level with no stored turn counts for nothing.
    await memory.classify(conversation, "turn-never-stored", 3)
    await memory.idle(subjects.MEMORY_CLASSIFICATIONS_CONSUMER)

    counts = await memory.ask(
        subjects.MEMORY_SESSION_COUNTS,
        SessionTurnCountsRequest(session_id=conversation.session_id),
        SessionTurnCountsReply,
    )
    assert (counts.thread_id, counts.stored_turns, counts.classified_turns) == (
        conversation.thread_id,
        3,
        2,
    )
    assert counts.peak_crisis_level == 1
    assert counts.first_spoken_at == turns[0].started_at
    assert counts.last_recorded_at == max(turn.recorded_at for turn in turns)

    nothing = await memory.ask(
        subjects.MEMORY_SESSION_COUNTS,
        SessionTurnCountsRequest(session_id=conversation.next_session().session_id),
        SessionTurnCountsReply,
    )
    assert (nothing.thread_id, nothing.stored_turns, nothing.classified_turns) == (None, 0, 0)
    assert (nothing.peak_crisis_level, nothing.first_spoken_at) == (None, None)


async def long_turns(memory: MemoryClient, conversation: Conversation, letter: str) -> None:
    """40 turns of 16,000 characters of ``letter``: 640 kB if it is one byte in UTF-8, 1.9 MB
    if it is three, more than one page may carry either way."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(40):
        await memory.publish(
            conversation.turn(
                f"{n:03d} " + letter * 7996, letter * 8000, started_at=start + timedelta(seconds=n)
            )
        )
    await memory.stored(conversation.session_id, 40)


async def session_pages(memory: MemoryClient, session_id: str) -> list[bytes]:
    """Every page of the session's transcript, as sent, following each page's cursor."""
    pages: list[bytes] = []
    after = None
    while True:
        raw = await memory.nc.request(
            subjects.MEMORY_SESSION_TRANSCRIPT,
            SessionTranscriptRequest(session_id=session_id, after=after).model_dump_json().encode(),
            timeout=30,
        )
        pages.append(raw.data)
        after = SessionTranscriptReply.model_validate_json(raw.data).after
        if after is None:
            return pages


def first_words(pages: list[bytes]) -> list[str]:
    return [
        turn.user_text[:3]
        for page in pages
        for turn in SessionTranscriptReply.model_validate_json(page).turns
    ]


# One byte in UTF-8, and three: counted in characters, a page of the second carried 1.5 MB, NATS
# refused to send it, and the finalizer waited for a reply that never came.
@pytest.mark.parametrize("letter", ["a", "心"])
async def test_a_long_transcript_comes_in_pages_each_well_under_the_nats_payload_limit(
    memory: MemoryClient, conversation: Conversation, letter: str
) -> None:
    await long_turns(memory, conversation, letter)

    pages = await session_pages(memory, conversation.session_id)
    assert first_words(pages) == [f"{n:03d}" for n in range(40)]
    assert len(pages) >= 2
    assert max(len(page) for page in pages) < 1024 * 1024


async def test_a_transcript_comes_in_pages_of_the_limit_asked(memory: MemoryClient) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    short = Conversation()
    for n in range(7):
        await memory.publish(short.turn(f"short {n}", started_at=start + timedelta(seconds=n)))
    await memory.stored(short.session_id, 7)
    short_pages: list[list[str]] = []
    after = None
    while True:
        page = await memory.ask(
            subjects.MEMORY_SESSION_TRANSCRIPT,
            SessionTranscriptRequest(session_id=short.session_id, after=after, limit=3),
            SessionTranscriptReply,
        )
        short_pages.append([turn.user_text for turn in page.turns])
        if page.after is None:
            break
        after = page.after
    assert short_pages == [[f"short {n}" for n in r] for r in (range(3), range(3, 6), range(6, 7))]

    with pytest.raises(ServiceError) as refused:
        await memory.ask(
            subjects.MEMORY_SESSION_TRANSCRIPT,
            SessionTranscriptRequest(session_id=short.session_id, after="nonsense"),
            SessionTranscriptReply,
        )
    assert refused.value.code == "invalid_request"


async def test_a_thread_page_stops_early_too_with_a_cursor_to_the_rest(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await long_turns(memory, conversation, "心")

    pages: list[list[str]] = []
    before = None
    while True:
        raw = await memory.nc.request(
            subjects.MEMORY_THREAD_TURNS,
            ThreadHistoryRequest(thread_id=conversation.thread_id, before=before, limit=100)
            .model_dump_json()
            .encode(),
            timeout=10,
        )
        assert len(raw.data) < 1024 * 1024
        page = ThreadHistoryReply.model_validate_json(raw.data)
        pages.append([turn.user_text[:3] for turn in page.turns])
        if page.before is None:
            break
        before = page.before
    assert len(pages) >= 2
    assert [text for page in reversed(pages) for text in page] == [f"{n:03d}" for n in range(40)]
