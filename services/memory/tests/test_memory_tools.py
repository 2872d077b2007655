"""Every memory tool through NATS: seeing, recalling, changing and deleting saved memory by voice,
behind the intent gate and the incognito floor.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode, TranscriptLine
from opencouch.contracts.memory import (
    MemoryContextReply,
    MemoryContextRequest,
    SessionSummary,
)
from opencouch.contracts.tools import TOOL_CATALOG, ToolErrorOutput, ToolOwner, tools_owned_by
from opencouch.memory.service import build
from opencouch.memory.settings import MemorySettings
from opencouch.memory.testing import Conversation, MemoryClient
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.postgres import connection_pool

ASK_SHORT = "Please keep your answers short from now on."


async def said_and_stored(memory: MemoryClient, conversation: Conversation, *lines: str) -> None:
    """The user says each line in a turn; wait until memory stored them all."""
    for line in lines:
        await memory.publish(conversation.turn(line))
    await memory.stored(conversation.session_id, conversation.turns)


async def save_rules(memory: MemoryClient, conversation: Conversation, *rules: str) -> None:
    for rule in rules:
        said = f"please remember this: {rule}"
        reply = await memory.call(
            "save_response_preference",
            conversation,
            said,
            preference_text=rule,
            user_quote=said,
        )
        assert reply.output["status"] == "saved", reply.output


def refusal(output: dict[str, Any]) -> str:
    assert output["status"] == "refused", output
    return str(output["error"]["code"])


# -- every tool, served --------------------------------------------------------------------------


async def test_memory_serves_every_memory_tool_of_the_catalog(
    memory: MemoryClient, conversation: Conversation
) -> None:
    said = "turn memory recall on and forget my first rule please"
    quote = {"user_quote": said}
    calls: dict[str, dict[str, Any]] = {
        "show_memory_status": {},
        "show_saved_memory": {},
        "set_proactive_memory_recall": {"enabled": True, **quote},
        "recall_saved_memory": {"query": "sister"},
        "save_response_preference": {"preference_text": "Short answers.", **quote},
        "prepare_memory_deletion_by_index": {"target_kind": "rule", "target_index": 1, **quote},
        "cancel_memory_deletion": {},
        "prepare_memory_deletion_by_query": {"query": "short answers", **quote},
        "confirm_memory_deletion": {},
    }
    assert set(calls) == {spec.name for spec in tools_owned_by(ToolOwner.MEMORY)}
    statuses = {}
    for tool, arguments in calls.items():
        reply = await memory.call(tool, conversation, said, **arguments)
        assert reply.ok, (tool, reply.output)
        TOOL_CATALOG[tool].output.model_validate(reply.output)
        statuses[tool] = reply.output["status"]
    assert statuses == {
        "show_memory_status": "ok",
        "show_saved_memory": "ok",
        "set_proactive_memory_recall": "updated",
        "recall_saved_memory": "nothing_found",
        "save_response_preference": "saved",
        "prepare_memory_deletion_by_index": "staged",
        "cancel_memory_deletion": "cancelled",
        "prepare_memory_deletion_by_query": "staged",
        "confirm_memory_deletion": "deleted",
    }


# -- the intent gate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "transcript", "quote", "verified"),
    [
        pytest.param(ASK_SHORT, [], ASK_SHORT, True, id="quote-is-the-current-message"),
        pytest.param("ok", [], "PLEASE keep your answers -- short!!", False, id="quote-absent"),
        pytest.param(
            "Please, keep your answers SHORT... from now on",
            [],
            "please keep your answers short",
            True,
            id="same-words-other-punctuation-and-case",
        ),
        pytest.param("do it: yes ok", [], "yes ok", False, id="quote-too-short"),
        pytest.param(
            "yes",
            [("assistant", "Shall I keep my answers short from now on?")],
            "keep my answers short from now on",
            False,
            id="only-in-assistant-text",
        ),
        pytest.param(
            "sure",
            [("user", ASK_SHORT), ("assistant", "Okay."), ("user", "and thanks")],
            "keep your answers short",
            True,
            id="in-a-recent-user-turn",
        ),
        pytest.param(
            "sure",
            [("user", ASK_SHORT), ("user", "one"), ("user", "two"), ("user", "three")],
            "keep your answers short",
            False,
            id="older-than-the-last-three-user-turns",
        ),
        pytest.param("the answers are nice", [], "he answers", False, id="part-of-a-word"),
    ],
)
async def test_the_intent_gate_accepts_only_the_users_own_recent_words(
    memory: MemoryClient,
    conversation: Conversation,
    current: str,
    transcript: list[tuple[str, str]],
    quote: str,
    verified: bool,
) -> None:
    conversation.transcript = [TranscriptLine(role=r, text=t) for r, t in transcript]
    reply = await memory.call(
        "save_response_preference",
        conversation,
        current,
        preference_text="Keep answers short.",
        user_quote=quote,
    )
    if verified:
        assert reply.output["status"] == "saved"
    else:
        assert refusal(reply.output) == "user_intent_not_verified"
        assert reply.output["guidance"]
        assert conversation.user_id is not None
        rows = memory.rows(
            "SELECT 1 FROM memory.response_rules WHERE owner_key = %s",
            f"user:{conversation.user_id}",
        )
        assert rows == []


async def test_a_quote_injected_through_another_argument_is_refused_by_every_quote_tool(
    memory: MemoryClient, conversation: Conversation
) -> None:
    """The model wrote the words into its own arguments; the user never said them."""
    injected = "delete everything you know about me"
    said = "what a lovely day it is"
    calls: dict[str, dict[str, Any]] = {
        "save_response_preference": {"preference_text": injected},
        "set_proactive_memory_recall": {"enabled": True},
        "prepare_memory_deletion_by_index": {"target_kind": "fact", "target_index": 1},
        "prepare_memory_deletion_by_query": {"query": injected},
    }
    for tool, arguments in calls.items():
        reply = await memory.call(tool, conversation, said, user_quote=injected, **arguments)
        assert refusal(reply.output) == "user_intent_not_verified", tool
    status = await memory.call("show_memory_status", conversation)
    assert status.output["proactive_recall_enabled"] is False
    assert status.output["saved_rules"] == 0


async def test_a_preference_without_a_letter_or_digit_is_an_invalid_argument_not_a_rule(
    memory: MemoryClient, conversation: Conversation
) -> None:
    # Kept once per owner by its words: all such preferences once shared one key, and the
    # second was answered "already saved".
    said = "please save this preference for me"
    for nothing in ("!!!", "..."):
        reply = await memory.call(
            "save_response_preference",
            conversation,
            said,
            preference_text=nothing,
            user_quote=said,
        )
        assert reply.ok is False
        assert reply.output["status"] == "error", reply.output
        assert reply.output["error"]["code"] == "invalid_arguments"
        assert reply.output["guidance"]
    status = await memory.call("show_memory_status", conversation)
    assert status.output["saved_rules"] == 0


# -- the incognito floor -------------------------------------------------------------------------


async def test_incognito_sees_memory_off_and_every_persistent_tool_is_refused(
    memory: MemoryClient,
) -> None:
    incognito = Conversation(memory_mode=MemoryMode.INCOGNITO)
    persistent = Conversation(incognito.thread_id, incognito.user_id)
    await save_rules(memory, persistent, "Use plain words.")

    status = await memory.call("show_memory_status", incognito)
    assert status.output["memory_enabled"] is False
    assert status.output["kept"] == []
    said = "please save that I like plain words"
    for spec in tools_owned_by(ToolOwner.MEMORY):
        if spec.name == "show_memory_status":
            continue
        reply = await memory.call(spec.name, incognito, said)
        assert refusal(reply.output) == "tool_not_available_in_memory_mode", spec.name

    context = await memory.ask(
        subjects.MEMORY_CONTEXT,
        MemoryContextRequest(
            thread_id=incognito.thread_id,
            user_id=incognito.user_id,
            memory_mode=MemoryMode.INCOGNITO,
        ),
        MemoryContextReply,
    )
    assert context.context_text == ""
    assert context.memory_mode is MemoryMode.INCOGNITO
    with pytest.raises(ServiceError) as refused:
        await memory.commit(incognito)
    assert refused.value.code == "memory_off"


async def test_memory_itself_refuses_every_change_outside_persistent_mode(
    memory: MemoryClient, migrated: str, redis_url: str
) -> None:
    """Defence in depth: even a caller that skipped the mode check changes nothing."""
    settings = MemorySettings(database_url=migrated, redis_url=redis_url)
    redis = Redis.from_url(redis_url)
    incognito = Conversation(memory_mode=MemoryMode.INCOGNITO)
    said = "please remember to keep it short"
    quote = {"user_quote": said}
    calls = {
        "save_response_preference": {"preference_text": "Short.", **quote},
        "set_proactive_memory_recall": {"enabled": True, **quote},
        "prepare_memory_deletion_by_index": {"target_kind": "rule", "target_index": 1, **quote},
        "prepare_memory_deletion_by_query": {"query": "short", **quote},
        "confirm_memory_deletion": {},
        "cancel_memory_deletion": {},
    }
    try:
        async with connection_pool(migrated, max_size=1) as pool:
            _, tools, _ = build(settings, pool, redis, memory.js)
            handlers = tools.handlers()
            for tool, arguments in calls.items():
                spec = TOOL_CATALOG[tool]
                output = await handlers[tool](
                    spec.arguments.model_validate(arguments), incognito.context(said)
                )
                assert isinstance(output, ToolErrorOutput), tool
                assert output.error.code == "memory_off", tool
    finally:
        await redis.aclose()
    assert incognito.user_id is not None
    owner = f"user:{incognito.user_id}"
    assert memory.rows("SELECT 1 FROM memory.response_rules WHERE owner_key = %s", owner) == []
    assert memory.rows("SELECT 1 FROM memory.owner_settings WHERE owner_key = %s", owner) == []


# -- seeing and recalling ------------------------------------------------------------------------


async def test_saved_memory_is_numbered_newest_first_with_sources_and_this_sessions_facts(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(memory, conversation, "My sister is called Ana.", "I work nights.")
    assert (await memory.commit(conversation)).facts_committed == 2
    later = conversation.next_session()
    await save_rules(memory, later, "No advice unless I ask.", "Use my name rarely.")
    await said_and_stored(memory, later, "I have two dogs and they keep me sane.")

    shown = (await memory.call("show_saved_memory", later)).output
    assert [(item["index"], item["text"]) for item in shown["facts"]] == [
        (1, "I work nights."),
        (2, "My sister is called Ana."),
    ]
    assert all(item["source"]["session_id"] == conversation.session_id for item in shown["facts"])
    assert [item["text"] for item in shown["rules"]] == [
        "Use my name rarely.",
        "No advice unless I ask.",
    ]
    assert [item["source"]["session_id"] for item in shown["rules"]] == [later.session_id] * 2
    assert [(item["index"], item["text"]) for item in shown["pending_facts"]] == [
        (None, "I have two dogs.")
    ]
    assert (shown["total_facts"], shown["total_rules"], shown["total_sessions"]) == (2, 2, 0)
    # The same in plain sentences, for a companion asked what it remembers.
    assert shown["summary"] == (
        "Saved about you: I work nights. My sister is called Ana. "
        "Your preferences: Use my name rarely. No advice unless I ask. "
        "From this conversation, saved when it ends: I have two dogs."
    )


async def test_with_nothing_kept_the_saved_memory_says_so(
    memory: MemoryClient, conversation: Conversation
) -> None:
    shown = (await memory.call("show_saved_memory", conversation)).output
    assert (shown["facts"], shown["rules"], shown["pending_facts"]) == ([], [], [])
    assert shown["summary"] == (
        "Nothing is kept about you yet. Facts you share are saved when a conversation ends, "
        "if you choose to keep it."
    )
    # A preference alone is something kept (a companion must not say "nothing").
    await save_rules(memory, conversation, "Keep answers short.")
    shown = (await memory.call("show_saved_memory", conversation)).output
    assert shown["summary"] == "Your preferences: Keep answers short."
    # Summaries of earlier conversations are counted, not read out.
    for ended in (conversation, later := conversation.next_session()):
        await memory.commit(
            ended, summary=SessionSummary(summary="A talk about work.", ended_at=datetime.now(UTC))
        )
        shown = (await memory.call("show_saved_memory", later)).output
        counted = (
            "A summary of 1 earlier conversation is kept too."
            if ended is conversation
            else "Summaries of 2 earlier conversations are kept too."
        )
        assert shown["summary"] == f"Your preferences: Keep answers short. {counted}"


async def test_recall_is_refused_while_off_and_ranks_saved_facts_once_on(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(
        memory, conversation, "my sister is called Ana and I miss her", "I work nights"
    )
    await memory.commit(conversation)
    later = conversation.next_session()

    off = await memory.call("recall_saved_memory", later, query="sister")
    assert refusal(off.output) == "proactive_recall_off"
    said = "yes, you can bring up things I told you"
    on = await memory.call(
        "set_proactive_memory_recall", later, said, enabled=True, user_quote=said
    )
    assert on.output["status"] == "updated"

    found = (
        await memory.call("recall_saved_memory", later, query="what is my sister's name")
    ).output
    assert found["status"] == "found"
    assert found["items"][0]["text"] == "My sister is called Ana."
    assert found["items"][0]["index"] == 2
    nothing = (await memory.call("recall_saved_memory", later, query="cycling holidays")).output
    assert nothing == {**nothing, "status": "nothing_found", "items": []}


# -- deleting ------------------------------------------------------------------------------------


async def test_deleting_by_index_removes_exactly_the_confirmed_item_and_only_once(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await save_rules(memory, conversation, "Rule one.", "Rule two.", "Rule three.")
    said = "delete the second rule please"
    staged = await memory.call(
        "prepare_memory_deletion_by_index",
        conversation,
        said,
        target_kind="rule",
        target_index=2,
        user_quote=said,
    )
    assert staged.output["status"] == "staged"
    assert staged.output["staged"]["text"] == "Rule two."

    # The user says yes and the model confirms twice at once: one deletion.
    confirmations = await asyncio.gather(
        memory.call("confirm_memory_deletion", conversation),
        memory.call("confirm_memory_deletion", conversation),
    )
    assert sorted((c.output["status"], c.output["deleted"]) for c in confirmations) == [
        ("deleted", 1),
        ("nothing_staged", 0),
    ]
    rules = (await memory.call("show_saved_memory", conversation)).output["rules"]
    assert [item["text"] for item in rules] == ["Rule three.", "Rule one."]

    missing = await memory.call(
        "prepare_memory_deletion_by_index",
        conversation,
        said,
        target_kind="rule",
        target_index=9,
        user_quote=said,
    )
    assert missing.output["status"] == "not_found"


async def test_a_cancelled_deletion_deletes_nothing(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await save_rules(memory, conversation, "Rule to keep.")
    said = "actually delete my first rule"
    await memory.call(
        "prepare_memory_deletion_by_index",
        conversation,
        said,
        target_kind="rule",
        target_index=1,
        user_quote=said,
    )
    assert (await memory.call("cancel_memory_deletion", conversation)).output["status"] == (
        "cancelled"
    )
    assert (await memory.call("confirm_memory_deletion", conversation)).output["status"] == (
        "nothing_staged"
    )
    shown = (await memory.call("show_saved_memory", conversation)).output
    assert [item["text"] for item in shown["rules"]] == ["Rule to keep."]


async def test_deleting_by_query_stages_the_one_match_or_lists_candidates(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(
        memory,
        conversation,
        "My sister is called Ana.",
        "My brother is called Tom.",
        "I work nights.",
    )
    await memory.commit(conversation)
    later = conversation.next_session()

    said = "forget what I told you about my family"
    ambiguous = await memory.call(
        "prepare_memory_deletion_by_query", later, said, query="called", user_quote=said
    )
    assert ambiguous.output["status"] == "ambiguous"
    assert {item["text"] for item in ambiguous.output["candidates"]} == {
        "My sister is called Ana.",
        "My brother is called Tom.",
    }
    assert (await memory.call("confirm_memory_deletion", later)).output["status"] == (
        "nothing_staged"
    )

    said = "please forget my sister's name"
    staged = await memory.call(
        "prepare_memory_deletion_by_query", later, said, query="sister name", user_quote=said
    )
    assert staged.output["status"] == "staged"
    assert staged.output["staged"]["text"] == "My sister is called Ana."
    assert (await memory.call("confirm_memory_deletion", later)).output["deleted"] == 1
    facts = (await memory.call("show_saved_memory", later)).output["facts"]
    assert [item["text"] for item in facts] == ["I work nights.", "My brother is called Tom."]

    said = "forget about my cycling trips"
    nothing = await memory.call(
        "prepare_memory_deletion_by_query", later, said, query="cycling trips", user_quote=said
    )
    assert nothing.output["status"] == "not_found"


async def test_a_fact_deleted_before_the_session_ends_is_never_saved(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(memory, conversation, "I work nights.", "I am a nurse.")
    said = "actually don't remember that I work nights"
    staged = await memory.call(
        "prepare_memory_deletion_by_query",
        conversation,
        said,
        query="work nights",
        user_quote=said,
    )
    assert staged.output["staged"] == {**staged.output["staged"], "index": None}
    assert (await memory.call("confirm_memory_deletion", conversation)).output["deleted"] == 1

    committed = await memory.commit(conversation)
    assert committed.facts_committed == 1
    facts = (await memory.call("show_saved_memory", conversation)).output["facts"]
    assert [item["text"] for item in facts] == ["I am a nurse."]


async def test_a_saved_fact_deleted_is_not_saved_back_by_another_session_not_committed_yet(
    memory: MemoryClient, conversation: Conversation
) -> None:
    fact = "My sister is called Ana."
    await said_and_stored(memory, conversation, fact)
    assert (await memory.commit(conversation)).facts_committed == 1
    # The user says it again, the call drops and the page carries on in a new session: the
    # dropped one is committed only when the conversation ends.
    dropped = conversation.next_session()
    await said_and_stored(memory, dropped, fact)
    carried_on = dropped.next_session()

    said = "please forget my sister's name"
    staged = await memory.call(
        "prepare_memory_deletion_by_query", carried_on, said, query="sister name", user_quote=said
    )
    assert staged.output["staged"]["text"] == fact
    assert (await memory.call("confirm_memory_deletion", carried_on)).output["deleted"] == 1

    assert (await memory.commit(dropped)).facts_committed == 0
    assert (await memory.commit(carried_on)).facts_committed == 0
    assert (await memory.call("show_saved_memory", carried_on)).output["facts"] == []


async def test_committing_twice_commits_once_and_unsaved_sessions_commit_nothing(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(memory, conversation, "I live in Leeds.")
    first = await memory.commit(conversation)
    again = await memory.commit(conversation)
    assert (first.facts_committed, first.already_committed) == (1, False)
    assert (again.facts_committed, again.already_committed) == (1, True)
    assert conversation.user_id is not None
    assert (
        len(
            memory.rows(
                "SELECT 1 FROM memory.facts WHERE owner_key = %s", f"user:{conversation.user_id}"
            )
        )
        == 1
    )

    unsaved = conversation.next_session()
    await said_and_stored(memory, unsaved, "I am from Porto.")
    dropped = await memory.commit(unsaved, save=False)
    assert (dropped.facts_committed, dropped.discarded) == (0, 1)
    facts = (await memory.call("show_saved_memory", unsaved)).output["facts"]
    assert [item["text"] for item in facts] == ["I live in Leeds."]


async def test_a_new_session_starts_with_preferences_and_with_recall_on_a_few_facts(
    memory: MemoryClient, conversation: Conversation
) -> None:
    await said_and_stored(memory, conversation, "My dog is called Rex.")
    await memory.commit(conversation)
    await save_rules(memory, conversation, "Speak slowly.")

    async def context() -> MemoryContextReply:
        return await memory.ask(
            subjects.MEMORY_CONTEXT,
            MemoryContextRequest(
                thread_id=conversation.thread_id,
                user_id=conversation.user_id,
                memory_mode=MemoryMode.PERSISTENT,
            ),
            MemoryContextReply,
        )

    off = await context()
    assert "Speak slowly." in off.context_text
    assert "Rex" not in off.context_text
    assert off.message_count == 2
    said = "please turn recall on for me"
    await memory.call(
        "set_proactive_memory_recall", conversation, said, enabled=True, user_quote=said
    )
    on = await context()
    assert on.proactive_recall_enabled
    assert "My dog is called Rex." in on.context_text
    assert "I hear you" not in on.context_text  # never transcript text
