"""A typed request's deadline is its own: a silent owner is a ``service_timeout`` after the
timeout given, and nothing of the abandoned request is left behind in the client."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
import pytest
from nats.aio.msg import Msg

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import ToolCallContext, ToolCallReply, ToolCallRequest
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import flushed, request

CALL = ToolCallRequest(
    tool_name="wait_for_user",
    arguments={},
    context=ToolCallContext(
        session_id=f"vs_{uuid.uuid4().hex}", thread_id="t", memory_mode=MemoryMode.INCOGNITO
    ),
)


async def test_a_silent_owner_is_a_timeout_after_the_deadline_given(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    silent = await nats.connect(nats_url)
    subject = f"test.silent.{uuid.uuid4().hex[:8]}"

    async def take(msg: Msg) -> None:  # takes the request, never answers
        await asyncio.sleep(0)

    await silent.subscribe(subject, cb=take)
    await flushed(silent)
    try:
        started = time.monotonic()
        with pytest.raises(ServiceError) as refused:
            await request(nc, subject, CALL, ToolCallReply, timeout=0.3)
        waited = time.monotonic() - started
        assert refused.value.code is ErrorCode.SERVICE_TIMEOUT
        assert 0.3 <= waited < 3
        assert not nc._resp_map  # the abandoned reply's slot is gone
    finally:
        await nc.close()
        await silent.close()


async def test_an_answer_within_the_deadline_is_the_reply(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    owner = await nats.connect(nats_url)
    subject = f"test.owner.{uuid.uuid4().hex[:8]}"

    async def answer(msg: Msg) -> None:
        await msg.respond(ToolCallReply(output={"answered": True}).model_dump_json().encode())

    await owner.subscribe(subject, cb=answer)
    await flushed(owner)
    try:
        reply = await request(nc, subject, CALL, ToolCallReply, timeout=5)
        assert reply.output == {"answered": True}
        assert not nc._resp_map
    finally:
        await nc.close()
        await owner.close()


@pytest.mark.parametrize(
    "sent", [b"not json", b'{"ok": true}', b'{"output": [1, 2], "ok": true}'], ids=str
)
async def test_a_reply_that_does_not_fit_its_contract_is_the_owners_failure(
    nats_url: str, sent: bytes
) -> None:
    # Not a pydantic error escaping to the caller (the gateway answered a tool call with a 500).
    nc = await nats.connect(nats_url)
    owner = await nats.connect(nats_url)
    subject = f"test.garbled.{uuid.uuid4().hex[:8]}"

    async def answer(msg: Msg) -> None:
        await msg.respond(sent)

    await owner.subscribe(subject, cb=answer)
    await flushed(owner)
    try:
        with pytest.raises(ServiceError) as failed:
            await request(nc, subject, CALL, ToolCallReply, timeout=5)
        assert failed.value.code is ErrorCode.INTERNAL
        assert subject in failed.value.message
    finally:
        await nc.close()
        await owner.close()
