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


# A labelled evaluation of the lookup: questions a person might ask that the library answers,
# with the passages that answer them, and questions it has no verified answer for. Each
# answered one must cite one of its passages first; each other one must get no citation.
ANSWERABLE: list[tuple[str, set[str]]] = [
    # Everyday words the library never uses ("much", "tonight", "bad") do not sink a question.
    ("how much sleep do adults need", {"insomnia-help"}),
    ("how can I sleep better tonight", {"sleep-routine"}),
    ("is drinking coffee bad for sleep", {"sleep-stimulants"}),
    ("is it bad to drink coffee before bed", {"sleep-stimulants"}),
    ("how can I sleep better", {"sleep-routine"}),
    ("what should I do if I can't fall asleep", {"sleep-lying-awake"}),
    ("does caffeine affect sleep", {"sleep-stimulants"}),
    ("how do I stop worrying at night", {"sleep-lying-awake"}),
    # Words the library uses in passing, or for another topic ("long", "last", "disorder"), do
    # not choose the passage.
    ("what is panic disorder", {"panic-disorder", "panic-nimh"}),
    ("how long does a panic attack last", {"panic-in-the-moment"}),
    ("how can I calm down quickly when I panic", {"breathing-for-stress", "panic-in-the-moment"}),
    ("how long does depression last", {"depression-overview"}),
    ("what are the signs of depression", {"depression-overview"}),
    ("how long does grief last", {"grief-feelings", "grief-self-care", "grief-support"}),
    ("is it normal to feel numb after a loss", {"grief-feelings"}),
    ("how do I cope with grief", {"grief-self-care"}),
    ("what is generalised anxiety disorder", {"gad-overview"}),
    ("how is anxiety treated", {"anxiety-treatment"}),
    ("how long does therapy take", {"first-sessions"}),
    (
        "how do I find a therapist",
        {"counselling-choosing", "us-find-help", "nhs-talking-therapies"},
    ),
    ("is NHS therapy free in England", {"nhs-talking-therapies"}),
    ("what can I do about loneliness", {"loneliness"}),
    ("does exercise help with depression", {"physical-activity"}),
    ("how much exercise do I need for my mood", {"physical-activity"}),
    ("how do I deal with stress", {"stress"}),
    ("what is mindfulness", {"mindfulness"}),
]
DECLINED: list[str] = [
    # The library says nothing on bipolar disorder: "disorder" alone is no match.
    "what is bipolar disorder",
    "is bipolar disorder the same as an anxiety disorder",
    # Nor on drug interactions: a passage on alcohol and sleep does not answer it.
    "can I drink alcohol with antidepressants",
    "can I drink alcohol while taking antidepressants",
    "how long do antidepressants take to work",
    "what are the side effects of sertraline",
    "is ketamine therapy effective for depression",
    "what is schizophrenia",
    "how do I support a friend with an eating disorder",
    "how do I get a diagnosis of ADHD",
    "is melatonin safe",
    "how do I file my taxes",
    "how do I lose weight",
]


@pytest.mark.parametrize(("query", "passages"), ANSWERABLE)
async def test_a_question_the_library_covers_is_answered_from_its_passage(
    tools: ToolsHarness, query: str, passages: set[str]
) -> None:
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    assert output["status"] == "answered", output
    assert output["citations"][0]["passage_id"] in passages, output["citations"]


@pytest.mark.parametrize("query", DECLINED)
async def test_a_question_on_a_topic_outside_the_library_is_not_answered_from_its_generic_words(
    tools: ToolsHarness, query: str
) -> None:
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    assert output["status"] == "no_verified_answer", output["citations"]
    assert output["citations"] == []


JURISDICTIONAL = {
    "nhs-talking-therapies": "GB-ENG",
    "us-find-help": "US",
    "us-treatment-locator": "US",
}


@pytest.mark.parametrize(
    ("query", "status", "country"),
    [
        # Answered from the NHS page on England, where the US is what was asked about.
        ("is therapy free in the US", "no_verified_answer", "US"),
        # "UK", no word of the passage's, counted against it: no answer at all.
        ("is therapy free in the UK", "answered", "GB"),
        ("is NHS therapy free in England", "answered", "GB"),
        ("how do I find a therapist in the US", "answered", "US"),
        ("how do I find a therapist in Texas", "answered", "US"),
        ("how do I find a therapist in England", "answered", "GB-ENG"),
        ("how do I find a therapist in Canada", "answered", "CA"),
        # England's NHS page does not answer for the rest of the UK.
        ("is therapy free in Scotland", "no_verified_answer", "GB-SCT"),
        ("is therapy free in Wales", "no_verified_answer", "GB-WLS"),
    ],
)
async def test_a_service_of_one_country_answers_only_questions_about_it(
    tools: ToolsHarness, query: str, status: str, country: str
) -> None:
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    assert output["status"] == status, output
    cited = [citation["passage_id"] for citation in output["citations"]]
    held = {"GB": {"GB", "GB-ENG"}}.get(country, {country})  # the UK as a whole: England's too
    assert all(JURISDICTIONAL.get(passage, country) in held for passage in cited), cited
    if status == "answered" and country == "CA":  # nothing tagged for Canada: untagged only
        assert not set(cited) & set(JURISDICTIONAL), cited


@pytest.mark.parametrize(
    ("query", "passages"),
    [
        # The library does not say that alcohol causes panic attacks, but the question is
        # mostly "panic attacks" (alcohol is a topic of one passage, and said in passing in
        # another): the panic passages cover three quarters of its weight.
        pytest.param("can alcohol cause panic attacks", set(), id="alcohol-and-panic"),
        # "get" weighs a little (a panic passage's title says "Getting through"), and only a
        # routine passage has it; "hours" is in summaries only, so weighs nothing.
        pytest.param("how many hours of sleep should I get", {"insomnia-help"}, id="sleep-hours"),
        # All three panic passages hold every term; the one titled "...when to seek help"
        # ranks first on "help".
        pytest.param("what helps during a panic attack", {"panic-in-the-moment"}, id="panic-help"),
    ],
)
@pytest.mark.xfail(raises=AssertionError, strict=True, reason="known limits of the term weighting")
async def test_known_limits_of_the_lookup(
    tools: ToolsHarness, query: str, passages: set[str]
) -> None:
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    if passages:
        assert output["status"] == "answered", output
        assert output["citations"][0]["passage_id"] in passages, output["citations"]
    else:
        assert output["status"] == "no_verified_answer", output["citations"]


async def test_an_unknown_word_weighs_nothing_if_everyday_and_the_most_otherwise(
    tools_store: ToolsStore,
) -> None:
    # No passage says "much": it is everyday English, and sleep is the question's topic.
    [best, *_] = await tools_store.search_passages("how much sleep do adults need")
    assert (best.passage_id, best.coverage) == ("insomnia-help", 1.0)
    # No passage says "bipolar" either: it is what the question is about, so it outweighs the
    # words the library knows.
    hits = await tools_store.search_passages("is bipolar disorder the same as an anxiety disorder")
    assert hits
    assert all(hit.coverage < 0.5 for hit in hits)


async def test_a_word_said_only_in_passing_weighs_less_than_one_a_passage_is_about(
    tools_store: ToolsStore,
) -> None:
    # Only a panic passage names "long" and "last" in its keywords; a stress passage says
    # "long-lasting". Every passage on grief still comes first, on grief alone.
    hits = await tools_store.search_passages("how long does grief last")
    assert [hit.passage_id.startswith("grief-") for hit in hits] == [True] * 3
    assert all(hit.coverage > 0.5 for hit in hits)
    # "feel" is in a dozen summaries and no passage's title or keywords: alone, it is no topic.
    assert all(hit.coverage == 0 for hit in await tools_store.search_passages("feel"))


async def test_numbness_after_a_loss_is_answered_by_the_passage_that_names_it(
    tools: ToolsHarness,
) -> None:
    query = "Is it normal to feel numb after a loss?"
    output = (await tools.call("answer_grounded_lookup", {"query": query})).output
    assert output["status"] == "answered"
    [citation] = output["citations"]
    assert citation["passage_id"] == "grief-feelings"
    assert "numbness" in citation["text"]


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
