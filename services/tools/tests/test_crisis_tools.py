"""The crisis tools over NATS: every lookup status, the scaffold, and what happens when the
crisis path itself cannot run. Resources only ever come from the vetted data."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from opencouch.contracts.care import CrisisResourcesOutput
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import CRISIS_FALLBACK
from opencouch.tools.location import UserLocation
from opencouch.tools.service import Content
from opencouch.tools.session_state import SessionState
from opencouch.tools.store import ToolsStore
from opencouch.tools.testing import ToolsHarness, handlers_for

ServeTools = Any  # the serve_tools fixture: (handlers, store, state) -> async context


def names(output: dict[str, Any]) -> list[str]:
    return [row["name"] for row in output["resources"]]


async def test_found_for_a_state_the_user_lives_in(tools: ToolsHarness) -> None:
    reply = await tools.call("lookup_crisis_resources", message="I live in New South Wales")
    assert reply.ok
    output = reply.output
    assert (output["status"], output["location_status"]) == ("found", "provided")
    assert output["region"] == "AU"
    assert output["location"] == "New South Wales, Australia"
    assert output["emergency_number"] == "000"
    assert names(output)[0] == "Lifeline Australia"
    assert all(row["source_url"].startswith("https://") for row in output["resources"])


async def test_location_comes_from_earlier_user_turns_never_the_assistant(
    tools: ToolsHarness,
) -> None:
    reply = await tools.call(
        "lookup_crisis_resources",
        message="I just can't cope tonight",
        transcript=[
            ("user", "I'm in Sydney, not in London anymore"),
            ("assistant", "Are you still in the UK?"),
            ("user", "I just can't cope tonight"),
        ],
    )
    assert reply.output["region"] == "AU"
    only_assistant = await tools.call(
        "lookup_crisis_resources",
        message="help",
        transcript=[("assistant", "I'm in the United States, where are you?")],
    )
    assert only_assistant.output["status"] == "no_location"


async def test_where_the_user_is_from_is_named_for_the_model_to_check(
    tools: ToolsHarness,
) -> None:
    reply = await tools.call("lookup_crisis_resources", message="I'm originally from the UK")
    output = reply.output
    assert (output["region"], output["location"]) == ("GB", "United Kingdom")
    assert "they are from the United Kingdom, not that they are there now" in output["guidance"]


async def test_no_location_offers_only_the_international_directory(tools: ToolsHarness) -> None:
    reply = await tools.call("lookup_crisis_resources", message="my sister lives in Canada")
    output = reply.output
    assert (output["status"], output["location_status"]) == ("no_location", "not_provided")
    assert [row["region"] for row in output["resources"]] == ["INTL"]
    assert output["emergency_number"] is None
    assert "which country" in output["guidance"]


async def test_a_refusal_is_respected(tools: ToolsHarness) -> None:
    reply = await tools.call(
        "lookup_crisis_resources",
        message="I'd rather not say",
        transcript=[("assistant", "Which country are you in right now?")],
    )
    output = reply.output
    assert (output["status"], output["location_status"]) == ("location_refused", "refused")
    assert [row["region"] for row in output["resources"]] == ["INTL"]


async def test_no_verified_results_still_gives_the_emergency_number(tools: ToolsHarness) -> None:
    reply = await tools.call("lookup_crisis_resources", message="I'm in Paris right now")
    output = reply.output
    assert (output["status"], output["region"], output["emergency_number"]) == (
        "no_verified_results",
        "FR",
        "112",
    )
    assert [row["region"] for row in output["resources"]] == ["INTL"]


async def test_lookup_error_gives_the_safe_fallback(
    serve_tools: ServeTools, content: Content, tools_store: ToolsStore, redis_client: Redis
) -> None:
    class BrokenDirectory:
        def lookup(self, location: UserLocation) -> CrisisResourcesOutput:
            raise RuntimeError("data unreadable")

    state = SessionState(redis_client, 3600)
    handlers = handlers_for(content, tools_store, state)
    handlers._crisis = BrokenDirectory()  # type: ignore[assignment]
    async with serve_tools(handlers, tools_store, state) as tools:
        reply = await tools.call("lookup_crisis_resources", message="I live in Texas")
    assert reply.ok
    assert reply.output["status"] == "lookup_error"
    assert reply.output["resources"] == []
    assert reply.output["guidance"] == CRISIS_FALLBACK


async def test_the_scaffold_names_only_what_the_sessions_lookup_returned(
    tools: ToolsHarness,
) -> None:
    before = await tools.call("get_crisis_support_template", {"risk_level": "high"})
    assert before.ok
    assert before.output["resources"] == []
    assert before.output["lookup_status"] is None
    assert "lookup_crisis_resources" in before.output["guidance"]

    lookup = await tools.call("lookup_crisis_resources", message="I'm in Birmingham, Alabama")
    assert lookup.output["region"] == "US"
    # The model's own idea of the location does not pick resources.
    after = await tools.call(
        "get_crisis_support_template",
        {"risk_level": "high", "inferred_location": "Australia"},
    )
    assert after.output["resources"] == lookup.output["resources"]
    assert after.output["lookup_status"] == "found"
    assert after.output["emergency_number"] == "911"

    other_session = await tools.call(
        "get_crisis_support_template",
        {"risk_level": "high"},
        session_id=tools.session_id[:-4] + "beef",
    )
    assert other_session.output["resources"] == []


async def test_the_scaffold_is_deterministic_with_exactly_one_question(
    tools: ToolsHarness,
) -> None:
    await tools.call("lookup_crisis_resources", message="I live in Ontario")
    for level in ("moderate", "high", "imminent"):
        first = await tools.call("get_crisis_support_template", {"risk_level": level})
        second = await tools.call("get_crisis_support_template", {"risk_level": level})
        assert first.output == second.output
        output = first.output
        assert output["question"].count("?") == 1
        assert output["question"].endswith("?")
        for part in ("opening", "validation", "safety_step"):
            assert "?" not in output[part]
        assert any("emergency services" in item for item in output["avoid"])
        assert any("method" in item for item in output["avoid"])
    imminent = await tools.call("get_crisis_support_template", {"risk_level": "imminent"})
    assert "911" in imminent.output["safety_step"]


async def test_imminent_risk_with_no_known_place_asks_where_they_are(tools: ToolsHarness) -> None:
    await tools.call("lookup_crisis_resources", message="I don't know")
    reply = await tools.call("get_crisis_support_template", {"risk_level": "imminent"})
    assert "country" in reply.output["question"]
    assert "local emergency services" in reply.output["safety_step"]


async def test_imminent_risk_does_not_ask_again_where_someone_would_rather_not_say(
    tools: ToolsHarness,
) -> None:
    refused = await tools.call(
        "lookup_crisis_resources",
        message="I'd rather not say",
        transcript=[("assistant", "Which country are you in right now?")],
    )
    assert refused.output["status"] == "location_refused"

    reply = await tools.call("get_crisis_support_template", {"risk_level": "imminent"})

    assert "country" not in reply.output["question"]
    assert reply.output["question"] == "Is there someone near you who can be with you right now?"


async def test_without_redis_the_scaffold_still_answers_and_names_nothing(
    serve_tools: ServeTools, content: Content, tools_store: ToolsStore
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    state = SessionState(dead, 3600)
    try:
        async with serve_tools(
            handlers_for(content, tools_store, state), tools_store, state
        ) as tools:
            lookup = await tools.call("lookup_crisis_resources", message="I live in Ireland")
            template = await tools.call("get_crisis_support_template", {"risk_level": "moderate"})
    finally:
        await dead.aclose()
    assert lookup.output["status"] == "found"
    assert template.ok
    assert template.output["resources"] == []


async def test_crisis_tools_answer_in_both_memory_modes(tools: ToolsHarness) -> None:
    for mode in MemoryMode:
        reply = await tools.call("lookup_crisis_resources", message="I'm in the UK", mode=mode)
        assert reply.output["region"] == "GB"
        assert reply.output["emergency_number"] == "999"
