"""A reply NATS will not carry (over the server's max payload) is answered ``internal_error``
in the usual error shape, and logged: it once went unsent, and its caller waited out its whole
deadline for an answer that never came (the finalizer, for half an hour)."""

from __future__ import annotations

import logging
import uuid

import nats
import pytest
from pydantic import BaseModel

from opencouch.contracts.common import ErrorCode
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import flushed, request


class Ask(BaseModel):
    size: int


class Answer(BaseModel):
    text: str


async def test_a_reply_too_large_to_send_is_answered_with_an_error(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_url)

    async def answer(ask: Ask) -> Answer:
        return Answer(text="a" * ask.size)

    name = f"test-too-large-{uuid.uuid4().hex[:8]}"
    subject = f"{name}.answer"
    service = await start_service(
        nc,
        name=name,
        version="0.0.1",
        description="test",
        endpoints=[Endpoint("answer", subject, Ask, answer)],
    )
    await flushed(nc)
    try:
        small = await request(nc, subject, Ask(size=10), Answer, timeout=5)
        with (
            caplog.at_level(logging.WARNING, "opencouch.runtime.endpoints"),
            pytest.raises(ServiceError) as failed,
        ):
            await request(nc, subject, Ask(size=nc.max_payload), Answer, timeout=5)
    finally:
        await service.stop()
        await nc.close()
    assert small.text == "a" * 10
    assert failed.value.code is ErrorCode.INTERNAL
    assert "too large" in failed.value.message
    (logged,) = [r for r in caplog.records if r.name == "opencouch.runtime.endpoints"]
    assert (logged.levelno, logged.getMessage()) == (logging.ERROR, "reply too large")
