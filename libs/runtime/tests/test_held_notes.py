"""An instance holding a request says so, while it holds it, where its caller asked: every
``HOLD_NOTE_SECONDS`` from the first, and no more once it has answered. A request that asked
for none, and an endpoint that answers in turn, cost no note."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from opencouch.contracts.common import HeldNote, MemoryMode
from opencouch.contracts.subjects import held_notes
from opencouch.contracts.tools import ToolCallContext, ToolCallReply, ToolCallRequest
from opencouch.runtime.endpoints import HOLD_NOTE_SECONDS, Endpoint, start_service
from opencouch.runtime.messaging import flushed, request

CALL = ToolCallRequest(
    tool_name="wait_for_user",
    arguments={},
    context=ToolCallContext(
        session_id=f"vs_{uuid.uuid4().hex}", thread_id="t", memory_mode=MemoryMode.INCOGNITO
    ),
)
HELD = HOLD_NOTE_SECONDS * 3.5  # three notes, the last well before the answer


class _Notes:
    """The held notes a caller hears, with when each came."""

    def __init__(self) -> None:
        self.heard: list[tuple[float, str, HeldNote]] = []

    async def keep(self, msg: Msg) -> None:
        self.heard.append((time.monotonic(), msg.subject, HeldNote.model_validate_json(msg.data)))


async def _listening(nats_url: str) -> tuple[NatsClient, _Notes, str]:
    """A caller hearing the held notes of its requests: its connection, what it heard, and
    the name its notes subjects go under."""
    caller = await nats.connect(nats_url)
    notes = _Notes()
    me = uuid.uuid4().hex
    await caller.subscribe(held_notes(me, "*"), cb=notes.keep)
    await flushed(caller)
    return caller, notes, me


async def _owner(nats_url: str, held: float) -> tuple[NatsClient, str, str, str]:
    """An owner with a slow endpoint and an inline one, each holding a request ``held`` s."""
    nc = await nats.connect(nats_url)
    name = f"test-held-{uuid.uuid4().hex[:8]}"

    async def slow(_: ToolCallRequest) -> ToolCallReply:
        await asyncio.sleep(held)
        return ToolCallReply(output={"answered": True})

    async def in_turn(_: ToolCallRequest) -> ToolCallReply:
        time.sleep(held)  # noqa: ASYNC251 - holds the loop, as nothing inline ever should
        return ToolCallReply(output={"answered": True})

    service = await start_service(
        nc,
        name=name,
        version="0.0.1",
        description="test",
        endpoints=[
            Endpoint("slow", f"{name}.slow", ToolCallRequest, slow),
            Endpoint("in_turn", f"{name}.in_turn", ToolCallRequest, in_turn, inline=True),
        ],
    )
    await flushed(nc)
    return nc, f"{name}.slow", f"{name}.in_turn", service.id


async def test_a_held_request_is_noted_while_held_and_no_more_once_answered(
    nats_url: str,
) -> None:
    owner, slow, _, instance = await _owner(nats_url, HELD)
    caller, notes, me = await _listening(nats_url)
    try:
        sent = time.monotonic()
        subject = held_notes(me, "7")
        reply = await request(caller, slow, CALL, ToolCallReply, timeout=10, held_notes=subject)
        answered = time.monotonic()
        assert reply.output == {"answered": True}
        await asyncio.sleep(HOLD_NOTE_SECONDS * 2)  # any note after the answer would be here
        # Three are due before the answer; a slow machine's timers may push the third past it.
        assert 2 <= len(notes.heard) <= 3, notes.heard
        assert {(heard_on, note.instance_id) for _, heard_on, note in notes.heard} == {
            (subject, instance)
        }
        times = [at for at, _, _ in notes.heard]
        assert times[0] - sent >= HOLD_NOTE_SECONDS * 0.9  # the first is due after as long
        assert all(at < answered for at in times)
    finally:
        await caller.close()
        await owner.close()


async def test_no_note_unless_asked_and_none_from_an_endpoint_answered_in_turn(
    nats_url: str,
) -> None:
    owner, slow, in_turn, _ = await _owner(nats_url, HOLD_NOTE_SECONDS * 2.5)
    caller, notes, me = await _listening(nats_url)
    try:
        await request(caller, slow, CALL, ToolCallReply, timeout=10)
        await request(
            caller, in_turn, CALL, ToolCallReply, timeout=10, held_notes=held_notes(me, "1")
        )
        await flushed(caller)
        await asyncio.sleep(HOLD_NOTE_SECONDS)
        assert notes.heard == []
    finally:
        await caller.close()
        await owner.close()
