"""Rate limits in Redis, shared by every gateway replica (the ``limits`` library).

``/session`` is limited per client address, per user and per thread, since each one mints an
OpenAI client secret on the operator's bill; the calls of a live session are limited per voice
session and per client address.
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
        self._calls: dict[str, RateLimitItem] = {
            "session": parse(settings.rate_limit_calls_per_session),
            "ip": parse(settings.rate_limit_calls_per_ip),
        }

    async def session_start(self, *, ip: str, user_id: str | None, thread_id: str) -> None:
        """Count a ``/session``; ``ServiceError`` 429 with ``retry_after`` when over a limit."""
        await self._hit(self._session_start["ip"], "session-start", "ip", ip)
        if user_id is not None:
            await self._hit(self._session_start["user"], "session-start", "user", user_id)
        await self._hit(self._session_start["thread"], "session-start", "thread", thread_id)

    async def session_call(self, *, ip: str, session_id: str) -> None:
        """Count a call of a live session (tool, turn, end)."""
        await self._hit(self._calls["session"], "call", "session", session_id)
        await self._hit(self._calls["ip"], "call", "ip", ip)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> None:
        # Counters are not traced: two Redis spans on every call that the session store's own
        # spans already say (how Redis is doing), and tracing must stay cheap.
        with suppress_instrumentation():
            allowed = await self._limiter.hit(item, *identifiers)
        if allowed:
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise ServiceError(
            ErrorCode.RATE_LIMITED,
            f"Too many requests ({item}); try again in {wait} s.",
            retry_after=wait,
        )
