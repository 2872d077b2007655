"""Guided exercises over NATS: the catalog, starting, every progress outcome, conflicts,
retries and races, and a persistent session's exercise surviving the loss of Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.tools.service import Content
from opencouch.tools.session_state import SessionState, session_key
from opencouch.tools.store import ToolsStore
from opencouch.tools.testing import ToolsHarness, handlers_for

ServeTools = Any
BOX = "grounding_box_breathing"
BOX_STEPS = ["inhale", "hold_full", "exhale", "hold_empty"]


def progress(step: str, outcome: str, exercise: str = BOX) -> dict[str, str]:
    return {
        "expected_skill_id": exercise,
        "expected_step_id": step,
        "outcome": outcome,
        "user_response_summary": "they answered",
    }


async def test_the_catalog_lists_voice_exercises_first_and_filters(tools: ToolsHarness) -> None:
    everything = (await tools.call("list_guided_exercise_skills")).output["exercises"]
    assert len(everything) == 13
    fits = [entry["voice_fit"] for entry in everything]
    assert fits == sorted(fits, key=["good", "okay", "text_only"].index)
    voice = (await tools.call("list_guided_exercise_skills", {"channel": "voice"})).output
    assert len(voice["exercises"]) == 10
    assert all("voice" in entry["channels"] for entry in voice["exercises"])
    act = (await tools.call("list_guided_exercise_skills", {"therapeutic_approach": "act"})).output
    assert act["exercises"]
    assert all("act" in entry["approaches"] for entry in act["exercises"])
    entry = everything[0]
    for key in (
        "category",
        "tags",
        "duration_seconds",
        "intensity",
        "interaction_pattern",
        "cognitive_load",
        "aliases",
        "step_count",
    ):
        assert key in entry


async def test_start_leads_the_first_step(tools: ToolsHarness) -> None:
    reply = await tools.call("start_guided_exercise", {"exercise_type": BOX})
    output = reply.output
    assert (output["status"], output["runtime_action"]) == ("ok", "start")
    assert output["step"]["step_id"] == "inhale"
    assert output["step_count"] == 4


async def test_a_text_only_exercise_is_unavailable_in_a_voice_call(tools: ToolsHarness) -> None:
    for tool, arguments in (
        ("start_guided_exercise", {"exercise_type": "thought_work_simple_record"}),
        (
            "load_guided_exercise_skill",
            {"exercise_type": "defusion_leaves_on_stream", "runtime_action": "start"},
        ),
    ):
        output = (await tools.call(tool, arguments)).output
        assert output["status"] == "unavailable"
        assert output["step"] is None
        assert "voice" in output["guidance"]


async def test_a_whole_exercise_advances_step_by_step_to_complete(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": BOX})
    for here, following in zip(BOX_STEPS, [*BOX_STEPS[1:], None], strict=True):
        output = (
            await tools.call("record_guided_exercise_progress", progress(here, "complete"))
        ).output
        assert output["status"] == "recorded"
        if following is None:
            assert output["runtime_action"] == "complete"
            assert output["next_step"] is None
        else:
            assert output["runtime_action"] == "advance"
            assert output["next_step"]["step_id"] == following
    after = (
        await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    ).output
    assert after["status"] == "no_active_exercise"


async def test_partial_holds_stuck_simplifies_and_exit_cancels(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": "grounding_5_4_3_2_1"})
    held = (
        await tools.call(
            "record_guided_exercise_progress", progress("see", "partial", "grounding_5_4_3_2_1")
        )
    ).output
    assert (held["runtime_action"], held["step_id"]) == ("hold", "see")
    stuck = (
        await tools.call(
            "record_guided_exercise_progress", progress("see", "stuck", "grounding_5_4_3_2_1")
        )
    ).output
    assert stuck["runtime_action"] == "simplify"
    assert stuck["next_step"]["step_id"] == "see"
    assert stuck["next_step"]["instruction"] != held["next_step"]["instruction"]
    exited = (
        await tools.call(
            "record_guided_exercise_progress", progress("see", "exit", "grounding_5_4_3_2_1")
        )
    ).output
    assert exited["runtime_action"] == "cancel"
    gone = (
        await tools.call(
            "record_guided_exercise_progress", progress("see", "complete", "grounding_5_4_3_2_1")
        )
    ).output
    assert gone["status"] == "no_active_exercise"


async def test_a_mismatch_is_a_conflict_and_does_not_advance(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": BOX})
    wrong_step = (
        await tools.call("record_guided_exercise_progress", progress("exhale", "complete"))
    ).output
    assert (wrong_step["status"], wrong_step["runtime_action"]) == ("conflict", "conflict")
    assert wrong_step["step_id"] == "inhale"
    wrong_exercise = (
        await tools.call(
            "record_guided_exercise_progress",
            progress("inhale", "complete", "self_compassion_break"),
        )
    ).output
    assert wrong_exercise["status"] == "conflict"
    right = (
        await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    ).output
    assert right["next_step"]["step_id"] == "hold_full"


async def test_an_unsafe_answer_stops_the_exercise_for_the_crisis_path(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": "self_compassion_break"})
    # Even reported against the wrong step, an unsafe answer is never ignored.
    unsafe = (
        await tools.call(
            "record_guided_exercise_progress",
            progress("kind_phrase", "unsafe", "self_compassion_break"),
        )
    ).output
    assert (unsafe["status"], unsafe["runtime_action"]) == ("recorded", "crisis")
    assert "get_crisis_support_template" in unsafe["guidance"]
    assert "lookup_crisis_resources" in unsafe["guidance"]
    after = (
        await tools.call(
            "record_guided_exercise_progress",
            progress("acknowledge_suffering", "complete", "self_compassion_break"),
        )
    ).output
    assert after["status"] == "no_active_exercise"
    none_running = (
        await tools.call("record_guided_exercise_progress", progress("inhale", "unsafe"))
    ).output
    assert (none_running["status"], none_running["runtime_action"]) == (
        "no_active_exercise",
        "crisis",
    )


async def test_load_continues_repeats_simplifies_and_finishes(tools: ToolsHarness) -> None:
    def load(action: str, index: int | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"exercise_type": BOX, "runtime_action": action}
        if index is not None:
            arguments["current_step_index"] = index
        return arguments

    started = (await tools.call("load_guided_exercise_skill", load("start"))).output
    assert started["step"]["step_id"] == "inhale"
    await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    # The session's state is the truth, whatever index the model believes.
    cont = (await tools.call("load_guided_exercise_skill", load("continue", 3))).output
    assert cont["step"]["step_id"] == "hold_full"
    assert "step 2" in cont["guidance"]
    repeat = (await tools.call("load_guided_exercise_skill", load("repeat_step"))).output
    assert repeat["step"]["instruction"] == cont["step"]["instruction"]
    simpler = (await tools.call("load_guided_exercise_skill", load("simplify"))).output
    assert simpler["step"]["step_id"] == "hold_full"
    assert simpler["step"]["instruction"] != cont["step"]["instruction"]
    finished = (await tools.call("load_guided_exercise_skill", load("finish"))).output
    assert (finished["status"], finished["step"]) == ("finished", None)
    beyond = (await tools.call("load_guided_exercise_skill", load("continue", 9))).output
    assert beyond["status"] == "unavailable"


@pytest.mark.parametrize("action", ["finish", "continue", "repeat_step", "simplify"])
async def test_loading_an_exercise_not_under_way_leaves_the_one_running_alone(
    tools: ToolsHarness, action: str
) -> None:
    # A confused "continue grounding at step 4" during box breathing replaced the breathing
    # with the grounding at its fourth step, and the next report on the breathing conflicted.
    await tools.call(
        "load_guided_exercise_skill", {"exercise_type": BOX, "runtime_action": "start"}
    )
    await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    other = {
        "exercise_type": "grounding_5_4_3_2_1",
        "runtime_action": action,
        "current_step_index": 3,
    }

    loaded = (await tools.call("load_guided_exercise_skill", other)).output

    assert (loaded["status"], loaded["runtime_action"]) == ("unavailable", action)
    assert BOX in loaded["guidance"]
    # The box breathing goes on where it was.
    went_on = await tools.call("record_guided_exercise_progress", progress("hold_full", "complete"))
    assert went_on.output["status"] == "recorded"


async def test_starting_another_exercise_switches_to_it(tools: ToolsHarness) -> None:
    await tools.call(
        "load_guided_exercise_skill", {"exercise_type": BOX, "runtime_action": "start"}
    )
    other = {"exercise_type": "grounding_5_4_3_2_1", "runtime_action": "start"}
    started = (await tools.call("load_guided_exercise_skill", other)).output
    assert (started["status"], started["step"]["index"]) == ("ok", 0)
    stale = await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    assert stale.output["status"] == "conflict"


async def test_a_retried_call_gets_its_first_reply_and_advances_once(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": BOX})
    first = await tools.call(
        "record_guided_exercise_progress", progress("inhale", "complete"), call_id="call_retry_1"
    )
    again = await tools.call(
        "record_guided_exercise_progress", progress("inhale", "complete"), call_id="call_retry_1"
    )
    assert first.output == again.output
    assert first.output["next_step"]["step_id"] == "hold_full"
    later = await tools.call("record_guided_exercise_progress", progress("hold_full", "complete"))
    assert later.output["next_step"]["step_id"] == "exhale"


async def test_racing_reports_advance_the_exercise_once(tools: ToolsHarness) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": BOX})
    replies = await asyncio.gather(
        *(
            tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
            for _ in range(5)
        )
    )
    statuses = sorted(reply.output["status"] for reply in replies)
    assert statuses == ["conflict"] * 4 + ["recorded"]


async def test_a_persistent_sessions_exercise_survives_losing_redis(
    tools: ToolsHarness, redis_client: Redis, tools_store: ToolsStore
) -> None:
    persistent = MemoryMode.PERSISTENT
    await tools.call("start_guided_exercise", {"exercise_type": BOX}, mode=persistent)
    await tools.call(
        "record_guided_exercise_progress", progress("inhale", "complete"), mode=persistent
    )
    kept = await tools_store.exercise_run(tools.session_id)
    assert kept is not None
    assert (kept.exercise_id, kept.step_index) == (BOX, 1)
    await redis_client.delete(session_key(tools.session_id, "exercise"))
    resumed = await tools.call(
        "record_guided_exercise_progress", progress("hold_full", "complete"), mode=persistent
    )
    assert resumed.output["next_step"]["step_id"] == "exhale"


async def test_a_late_write_of_an_older_run_does_not_go_back(
    tools: ToolsHarness, redis_client: Redis, tools_store: ToolsStore
) -> None:
    """Two calls change the run in turn in Redis but write Postgres in either order: the older
    revision, written last, must not replace the newer one (which Redis losing would bring back)."""
    persistent = MemoryMode.PERSISTENT
    await tools.call("start_guided_exercise", {"exercise_type": BOX}, mode=persistent)
    older = await tools_store.exercise_run(tools.session_id)
    await tools.call(
        "record_guided_exercise_progress", progress("inhale", "complete"), mode=persistent
    )
    newer = await tools_store.exercise_run(tools.session_id)
    assert older is not None
    assert newer is not None
    assert newer.revision == older.revision + 1
    await tools_store.save_exercise_run(tools.session_id, older)
    kept = await tools_store.exercise_run(tools.session_id)
    assert kept == newer
    await redis_client.delete(session_key(tools.session_id, "exercise"))
    resumed = await tools.call(
        "record_guided_exercise_progress", progress("hold_full", "complete"), mode=persistent
    )
    assert resumed.output["next_step"]["step_id"] == "exhale"


async def test_an_incognito_exercise_is_never_written_to_postgres(
    tools: ToolsHarness, tools_store: ToolsStore
) -> None:
    await tools.call("start_guided_exercise", {"exercise_type": BOX})
    await tools.call("record_guided_exercise_progress", progress("inhale", "complete"))
    assert await tools_store.exercise_run(tools.session_id) is None


async def test_without_redis_exercise_tools_report_unavailable(
    serve_tools: ServeTools, content: Content, tools_store: ToolsStore
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    state = SessionState(dead, 3600)
    try:
        async with serve_tools(
            handlers_for(content, tools_store, state), tools_store, state
        ) as tools:
            reply = await tools.call("start_guided_exercise", {"exercise_type": BOX})
            listing = await tools.call("list_guided_exercise_skills")
    finally:
        await dead.aclose()
    assert not reply.ok
    assert reply.output["error"]["code"] == ErrorCode.TOOL_UNAVAILABLE
    assert listing.ok
