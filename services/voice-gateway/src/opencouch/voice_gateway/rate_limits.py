"""Rate limits (the ``limits`` library).

``/session`` is limited in Redis, shared by every gateway replica, per client address, per user
and per thread, since each one mints an OpenAI client secret on the operator's bill. The calls
of a live session are limited in Redis too, per voice session, per user, per thread and per
client address, but counted inside the round trip that already decides the call
(``VoiceSessionStore``'s claim scripts): the limits cost no round trip of their own.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import ConnectionPool

from opencouch.contracts.common import ErrorCode
from opencouch.runtime.errors import ServiceError
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.voice_sessions import CallLimit, CallLimits


class RateLimits:
    """The gateway's limits, checked by scope (``ip``, ``user``, ``thread``, ``session``)."""

    def __init__(self, settings: GatewaySettings, pool: ConnectionPool) -> None:
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix="ocv:rl",
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis.asyncio
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._session_start: dict[str, RateLimitItem] = {
            "ip": parse(settings.rate_limit_session_per_ip),
            "user": parse(settings.rate_limit_session_per_user),
            "thread": parse(settings.rate_limit_session_per_thread),
        }

    async def session_from(self, ip: str) -> None:
        """Count a ``/session`` from ``ip`` before any work is done for it (identity checks
        included), so no kind of refusal escapes the limit; 429 when over it."""
        await self._hit(self._session_start["ip"], "session-start", "ip", ip)

    async def session_start(self, *, user_id: str | None, thread_id: str) -> None:
        """Count a ``/session`` for its user and thread; 429 with ``retry_after`` when over."""
        if user_id is not None:
            await self._hit(self._session_start["user"], "session-start", "user", user_id)
        await self._hit(self._session_start["thread"], "session-start", "thread", thread_id)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> None:
        # Counters are not traced: two Redis spans on every call that the session store's own
        # spans already say (how Redis is doing), and tracing must stay cheap.
        with suppress_instrumentation():
            allowed = await self._limiter.hit(item, *identifiers)
        if allowed:
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        raise limited(item, stats.reset_time - time.time())


def limited(item: RateLimitItem | str, seconds: float) -> ServiceError:
    """The 429 for going over ``item``, to try again in ``seconds``."""
    wait = max(1, math.ceil(seconds))
    return ServiceError(
        ErrorCode.RATE_LIMITED,
        f"Too many requests ({item}); try again in {wait} s.",
        retry_after=wait,
    )


def call_limits(settings: GatewaySettings) -> CallLimits:
    """The limits on calls of live sessions, as the session store counts them."""

    def limit(text: str) -> CallLimit:
        item = parse(text)
        return CallLimit(calls=item.amount, window_seconds=item.get_expiry())

    return CallLimits(
        session=limit(settings.rate_limit_calls_per_session),
        user=limit(settings.rate_limit_calls_per_user),
        thread=limit(settings.rate_limit_calls_per_thread),
        address=limit(settings.rate_limit_calls_per_ip),
    )
