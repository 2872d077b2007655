"""A pure tool's claim is sent only once its request has been written to NATS: the two go to
servers on the same few cores, and the request goes first (see ``tool_calls``)."""

from __future__ import annotations

import asyncio
import uuid

import nats
from nats.aio.msg import Msg

from opencouch.runtime.messaging import flushed
from opencouch.voice_gateway.tool_calls import _request_written


async def test_the_claim_waits_until_the_request_is_published_and_written(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    listener = await nats.connect(nats_url)
    subject = f"test.order.{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def answer(msg: Msg) -> None:
        await received.put(msg.data)
        await msg.respond(b"ok")

    await listener.subscribe(subject, cb=answer)
    await flushed(listener)
    try:
        published = nc.stats["out_msgs"]
        asked = asyncio.ensure_future(nc.request(subject, b"the call", timeout=5))
        await _request_written(nc, asked)
        assert nc.stats["out_msgs"] == published + 1  # published by the asked task...
        assert nc.pending_data_size == 0  # ...and written to the socket, nothing left buffered
        assert await asyncio.wait_for(received.get(), 5) == b"the call"
        assert (await asked).data == b"ok"
    finally:
        await nc.close()
        await listener.close()


async def test_an_answer_that_comes_at_once_ends_the_wait(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        await asyncio.wait_for(_request_written(nc, done), 1)
    finally:
        await nc.close()
