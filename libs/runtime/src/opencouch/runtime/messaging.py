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
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.observation import requesting

log = logging.getLogger(__name__)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ReplyT = TypeVar("ReplyT", bound=BaseModel)

OUTAGE_RETRY_SECONDS = 2.0
"""What a caller is told to wait (``Retry-After``) when NATS itself is unreachable."""

# Errors that mean NATS (not the service) could not carry the request right now.
_NATS_OUTAGES = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
)


def nats_failure(error: Exception, subject: str) -> ServiceError:
    """The ``ServiceError`` a caller should see for a NATS-level failure on ``subject``."""
    if isinstance(error, nats.errors.NoRespondersError):
        return ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"no service answers {subject}",
            retry_after=OUTAGE_RETRY_SECONDS,
        )
    if isinstance(error, nats.errors.MaxPayloadError):
        return ServiceError(ErrorCode.PAYLOAD_TOO_LARGE, f"request too large for {subject}")
    if isinstance(error, _NATS_OUTAGES):
        return ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "the message bus is unreachable",
            retry_after=OUTAGE_RETRY_SECONDS,
        )
    return ServiceError(ErrorCode.SERVICE_UNAVAILABLE, f"{subject} failed: {type(error).__name__}")


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
        try:
            if nc.is_connected:
                await nc.drain()
            elif not nc.is_closed:
                await nc.close()
        except (OSError, nats.errors.Error) as error:
            # Mid-outage there is nothing to drain to; a stop must still be clean.
            log.warning("nats connection closed uncleanly", extra={"error": type(error).__name__})


async def request(
    nc: NatsClient,
    subject: str,
    payload: BaseModel,
    reply_model: type[ReplyT],
    *,
    timeout: float,
) -> ReplyT:
    """Send ``payload`` to ``subject`` and parse the reply as ``reply_model``.

    Raises ``ServiceError``: the service's own error reply as it sent it, else
    ``service_unavailable`` (nobody answers, or NATS is down), ``service_timeout``, or
    ``payload_too_large``.
    """
    data = payload.model_dump_json().encode()
    with requesting(subject, len(data)) as sent:
        try:
            reply = await _request(nc, subject, data, reply_model, timeout, sent.headers)
        except ServiceError as error:
            sent.outcome(error.code.value)
            raise
        sent.outcome("ok")
        return reply


async def _request(
    nc: NatsClient,
    subject: str,
    data: bytes,
    reply_model: type[ReplyT],
    timeout: float,
    headers: dict[str, str] | None,
) -> ReplyT:
    try:
        msg = await nc.request(subject, data, timeout=timeout, headers=headers)
    except nats.errors.TimeoutError as error:
        raise ServiceError(
            ErrorCode.SERVICE_TIMEOUT, f"{subject} did not answer in {timeout:g}s"
        ) from error
    except nats.errors.Error as error:
        raise nats_failure(error, subject) from error
    if msg.headers and ERROR_CODE_HEADER in msg.headers:
        try:
            body = ErrorResponse.model_validate_json(msg.data).error
        except ValidationError:
            raise ServiceError(ErrorCode.INTERNAL, f"{subject} failed") from None
        raise ServiceError(body.code, body.message)
    return reply_model.model_validate_json(msg.data)
