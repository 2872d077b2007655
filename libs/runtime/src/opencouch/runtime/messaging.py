"""Typed NATS request/reply: contracts in, contracts out, errors as ``ServiceCallError``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ValidationError

from opencouch.contracts.common import ErrorCode, ErrorResponse
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.observation import requesting

log = logging.getLogger(__name__)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
HELD_NOTES_HEADER = "Opencouch-Held-Notes"
"""A request's header naming where its owner should say it still holds it (``HeldNote``)."""
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

BUS_OUTAGES: Final = (
    *_NATS_OUTAGES,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
)
"""What a handler meets when NATS or JetStream cannot take what it sends (a publish unacked,
no stream or service to answer): an outage, not a bug."""


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


class ConnectionReport:
    """What a NATS connection logs about its own health, without a line a second in an outage.

    nats-py retries every second and calls back on each failure. The first failure of a kind is
    logged, then the 2nd, 4th, 8th... (and every 64th after that), each with the count so far,
    so a long outage stays visible in a few lines; losing and regaining the server are logged
    once each.
    """

    def __init__(self, url: str) -> None:
        self.server = _without_credentials(url)
        self._failures: dict[str, int] = {}
        self._was_down = False
        self.closing = False
        """Set when the service closes the connection itself: its disconnection is no news."""

    async def error(self, error: Exception) -> None:
        kind = type(error).__name__
        count = self._failures.get(kind, 0) + 1
        self._failures[kind] = count
        if count & (count - 1) == 0 or count % 64 == 0:
            log.warning(
                "nats unreachable" if isinstance(error, OSError) else "nats error",
                extra={"error": kind, "server": self.server, "failures": count},
            )

    async def disconnected(self) -> None:
        if self.closing:
            return
        self._was_down = True
        log.warning("nats disconnected", extra={"server": self.server})

    async def reconnected(self) -> None:
        self.connected()

    def connected(self) -> None:
        """Reset the counts; say so if the connection had been lost or never made."""
        if self._was_down or self._failures:
            log.info(
                "nats connected",
                extra={"server": self.server, "failures": sum(self._failures.values())},
            )
        self._failures.clear()
        self._was_down = False


def _without_credentials(url: str) -> str:
    """``url`` with any user and password taken out, fit for a log line."""
    servers = []
    for part in url.split(","):
        scheme, separator, rest = part.strip().rpartition("://")
        servers.append(f"{scheme}{separator}{rest.rsplit('@', 1)[-1]}")
    return ",".join(servers)


@asynccontextmanager
async def nats_connection(url: str, name: str) -> AsyncIterator[NatsClient]:
    """A NATS connection that reconnects forever and drains on exit."""
    report = ConnectionReport(url)
    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        error_cb=report.error,
        disconnected_cb=report.disconnected,
        reconnected_cb=report.reconnected,
    )
    report.connected()
    try:
        yield nc
    finally:
        report.closing = True
        try:
            if nc.is_connected:
                await nc.drain()
            elif not nc.is_closed:
                await nc.close()
        except (OSError, nats.errors.Error) as error:
            # Mid-outage there is nothing to drain to; a stop must still be clean.
            log.warning("nats connection closed uncleanly", extra={"error": type(error).__name__})


async def flushed(nc: NatsClient) -> None:
    """Return once the server has everything ``nc`` sent before (subscriptions, publishes).
    ``nc.flush()`` alone is not that: nats-py writes its PING straight to the socket, ahead of
    what is still in its buffer, so the PONG can come back before the server has a SUB or a PUB
    sent just before (a request then finds no responders, now and then)."""
    await asyncio.sleep(0)  # nats-py's flusher writes what is buffered
    await nc.flush()


async def request(
    nc: NatsClient,
    subject: str,
    payload: BaseModel,
    reply_model: type[ReplyT],
    *,
    timeout: float,
    held_notes: str | None = None,
) -> ReplyT:
    """Send ``payload`` to ``subject`` and parse the reply as ``reply_model``. With
    ``held_notes``, the instance that takes the request says there, every
    ``endpoints.HOLD_NOTE_SECONDS`` after the first, that it still holds it.

    Raises ``ServiceError``: the service's own error reply as it sent it, else
    ``service_unavailable`` (nobody answers, or NATS is down), ``service_timeout``,
    ``payload_too_large``, or ``internal_error`` (a reply that does not fit ``reply_model``).
    """
    data = payload.model_dump_json().encode()
    with requesting(subject, len(data)) as sent:
        headers = sent.headers
        if held_notes is not None:
            headers = {**(headers or {}), HELD_NOTES_HEADER: held_notes}
        try:
            reply = await _request(nc, subject, data, reply_model, timeout, headers)
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
    try:
        return reply_model.model_validate_json(msg.data)
    except ValidationError:  # the owner's fault, not the caller's: never a bare pydantic error
        raise ServiceError(
            ErrorCode.INTERNAL, f"{subject} sent a reply that does not fit its contract"
        ) from None
