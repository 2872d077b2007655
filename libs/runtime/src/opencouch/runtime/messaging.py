"""Typed NATS request/reply: contracts in, contracts out, errors as ``ServiceCallError``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ValidationError

from opencouch.contracts.common import ErrorCode, ErrorResponse

log = logging.getLogger(__name__)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ReplyT = TypeVar("ReplyT", bound=BaseModel)


class ServiceCallError(Exception):
    """A NATS service answered with an error, or could not answer."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ServiceUnavailableError(ServiceCallError):
    """Nobody serves the subject."""

    def __init__(self, subject: str) -> None:
        super().__init__(ErrorCode.SERVICE_UNAVAILABLE, f"no service answers {subject}")


class ServiceTimeoutError(ServiceCallError):
    """The service did not answer in time."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(ErrorCode.SERVICE_TIMEOUT, f"{subject} did not answer in {timeout:g}s")


@asynccontextmanager
async def nats_connection(url: str, name: str) -> AsyncIterator[NatsClient]:
    """A NATS connection that reconnects forever and drains on exit."""

    async def on_error(error: Exception) -> None:
        log.warning("nats error", extra={"error": type(error).__name__})

    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        error_cb=on_error,
    )
    try:
        yield nc
    finally:
        if not nc.is_closed:
            await nc.drain()


async def request(
    nc: NatsClient,
    subject: str,
    payload: BaseModel,
    reply_model: type[ReplyT],
    *,
    timeout: float,
) -> ReplyT:
    """Send ``payload`` to ``subject`` and parse the reply as ``reply_model``.

    Raises ``ServiceCallError`` (or a subclass) for an error reply, no responder or a timeout.
    """
    try:
        msg = await nc.request(subject, payload.model_dump_json().encode(), timeout=timeout)
    except nats.errors.NoRespondersError as error:
        raise ServiceUnavailableError(subject) from error
    except nats.errors.TimeoutError as error:
        raise ServiceTimeoutError(subject, timeout) from error
    if msg.headers and ERROR_CODE_HEADER in msg.headers:
        try:
            body = ErrorResponse.model_validate_json(msg.data).error
        except ValidationError:
            raise ServiceCallError(ErrorCode.INTERNAL, f"{subject} failed") from None
        raise ServiceCallError(body.code, body.message)
    return reply_model.model_validate_json(msg.data)
