"""Response skills, grounded lookup and wait_for_user over NATS, including a store that is down
or broken: the answer is a status the model can speak around, never an exception."""

from __future__ import annotations

from typing import Any, get_args

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from opencouch.contracts.care import ResponseStyle, TherapeuticApproach
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import ToolOwner, tools_owned_by
from opencouch.testing.servers import free_port, postgres_database
from opencouch.tools.service import Content
from opencouch.tools.session_state import SessionState
from opencouch.tools.store import ToolsStore
from opencouch.tools.testing import ToolsHarness, handlers_for

ServeTools = Any


async def test_every_tool_the_catalog_gives_this_service_answers(tools: ToolsHarness) -> None:
    minimal: dict[str, dict[str, Any]] = {
        "load_therapeutic_response_skill": {"response_style": "supportive"},
        "answer_grounded_lookup": {"query": "how can I sleep better"},
        "get_crisis_support_template": {"risk_level": "moderate"},
        "start_guided_exercise": {"exercise_type": "grounding_box_breathing"},
        "load_guided_exercise_skill": {
            "exercise_type": "grounding_box_breathing",
            "runtime_action": "continue",
        },
        "record_guided_exercise_progress": {
            "expected_skill_id": "grounding_box_breathing",
            "expected_step_id": "inhale",
            "outcome": "complete",
            "user_response_summary": "breathed in",
        },
    }
    for spec in tools_owned_by(ToolOwner.TOOLS):
        reply = await tools.call(spec.name, minimal.get(spec.name, {}))
        assert reply.ok, (spec.name, reply.output)
        spec.output.model_validate(reply.output)


async def test_wait_for_user_says_not_to_respond(tools: ToolsHarness) -> None:
    reply = await tools.call("wait_for_user")
    assert reply.output["should_respond"] is False
    assert reply.output["status"] == "waiting"


async def test_a_skill_for_every_style_and_approach(tools: ToolsHarness) -> None:
    seen = set()
    for style in get_args(ResponseStyle):
        for approach in (None, *get_args(TherapeuticApproach)):
            arguments = {"response_style": style}
            if approach is not None:
                arguments["therapeutic_approach"] = approach
            output = (await tools.call("load_therapeutic_response_skill", arguments)).output
            assert output["response_style"] == style
            assert len(output["guidance"]) >= 2
            seen.add(output["skill_id"])
    # Six styles alone, and each joined with each of the seven approaches.
    assert len(seen) == 6 + 6 * 7


async def test_invalid_arguments_come_back_as_a_structured_error(tools: ToolsHarness) -> None:
    for tool, arguments in (
        ("load_therapeutic_response_skill", {"response_style": "sarcastic"}),
        ("answer_grounded_lookup", {"query": ""}),
        ("start_guided_exercise", {"exercise_type": "juggling"}),
        ("get_crisis_support_template", {"risk_level": "moderate", "extra": True}),
        ("record_guided_exercise_progress", {"outcome": "complete"}),
    ):
        reply = await tools.call(tool, arguments)
        assert not reply.ok
        assert reply.output["error"]["code"] == ErrorCode.INVALID_ARGUMENTS
        assert reply.output["guidance"]


async def test_an_answer_comes_only_from_cited_passages(
    tools: ToolsHarness, tools_store: ToolsStore
) -> None:
    reply = await tools.call(
        "answer_grounded_lookup", {"query": "how long does a panic attack last"}
    )
    output = reply.output
    assert output["status"] == "answered"
    assert output["citations"][0]["passage_id"] == "panic-in-the-moment"
    corpus = await tools_store.corpus_urls()
    assert {citation["url"] for citation in output["citations"]} <= corpus
    hits = await tools_store.search_passages("how long does a panic attack last")
    assert output["answer"].startswith(hits[0].summary)
    # Each citation carries its passage: the answer is exactly those, in order.
    assert output["answer"] == " ".join(citation["text"] for citation in output["citations"])


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("What is the current official guidance on sleep?", "sleep"),
        ("What does the research say about grief?", "grief"),
        ("What do experts recommend for panic attacks?", "panic"),
        # "normal" frames the question: the answer is about grief, not about normal anxiety.
        ("Is it normal to feel numb after a loss?", "grief"),
    ],
)
async def test_a_question_framed_as_one_for_the_evidence_is_answered_on_its_topic(
    tools: ToolsHarness, query: str, topic: str
) -> None:
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    assert output["status"] == "answered", output
    assert topic in output["citations"][0]["text"].lower()  # the best passage is on the topic
    # The framing alone still finds nothing to answer, and a topic outside the library neither.
    for unanswered in (
        "What does the research say?",
        "What is the official guidance on sertraline doses?",
    ):
        output = (await tools.call("answer_grounded_lookup", {"query": unanswered})).output
        assert output["status"] == "no_verified_answer", unanswered


async def test_no_verified_answer_rather_than_a_guess(tools: ToolsHarness) -> None:
    for query in ("who won the world cup in 1966", "what dose of sertraline should I take", "the"):
        output = (await tools.call("answer_grounded_lookup", {"query": query})).output
        assert output["status"] == "no_verified_answer", query
        assert output["answer"] is None
        assert output["citations"] == []
        assert "guess" in output["guidance"]


async def test_search_unavailable_when_postgres_is_down(
    serve_tools: ServeTools, content: Content, redis_client: Redis
) -> None:
    dead: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        connection_class=psycopg.AsyncConnection[DictRow],
        kwargs={"row_factory": dict_row, "connect_timeout": 1},
        min_size=1,
        open=False,
    )
    await dead.open(wait=False)
    store = ToolsStore(dead, timeout=1.0)
    state = SessionState(redis_client, 3600)
    try:
        async with serve_tools(handlers_for(content, store, state), store, state) as tools:
            reply = await tools.call("answer_grounded_lookup", {"query": "how can I sleep better"})
    finally:
        await dead.close()
    assert reply.ok
    assert reply.output["status"] == "search_unavailable"
    assert reply.output["answer"] is None


async def test_search_unavailable_when_the_pool_was_stopped(
    serve_tools: ServeTools, content: Content, redis_client: Redis, database_url: str
) -> None:
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
        database_url,
        connection_class=psycopg.AsyncConnection[DictRow],
        kwargs={"row_factory": dict_row},
        min_size=1,
        open=False,
    )
    await pool.open(wait=True)
    await pool.close()
    store = ToolsStore(pool, timeout=1.0)
    state = SessionState(redis_client, 3600)
    async with serve_tools(handlers_for(content, store, state), store, state) as tools:
        reply = await tools.call("answer_grounded_lookup", {"query": "grief"})
    assert reply.output["status"] == "search_unavailable"


async def test_search_failed_when_the_corpus_is_missing(
    serve_tools: ServeTools, content: Content, redis_client: Redis
) -> None:
    with postgres_database() as empty_url:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
            empty_url,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"row_factory": dict_row},
            min_size=1,
            open=False,
        )
        await pool.open(wait=True)
        store = ToolsStore(pool, timeout=2.0)
        state = SessionState(redis_client, 3600)
        try:
            async with serve_tools(handlers_for(content, store, state), store, state) as tools:
                reply = await tools.call("answer_grounded_lookup", {"query": "grief"})
        finally:
            await pool.close()
    assert reply.ok
    assert reply.output["status"] == "search_failed"


async def test_the_tools_answer_in_incognito_and_persistent_sessions(tools: ToolsHarness) -> None:
    for mode in MemoryMode:
        reply = await tools.call(
            "answer_grounded_lookup", {"query": "tips for self care"}, mode=mode
        )
        assert reply.output["status"] == "answered"
