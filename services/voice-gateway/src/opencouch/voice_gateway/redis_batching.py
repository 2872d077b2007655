"""Redis commands issued by concurrent requests, sent to Redis together.

redis-py sends each command on its own: a connection checkout (with a liveness probe of the
socket), a write and a read per command. The gateway's hot path issues one or two small
commands per request, so under load most of its Redis time was that per-command overhead.
``CommandBatcher`` collects the commands issued during one turn of the event loop and sends
them as one non-transactional pipeline: one checkout, one write, one read for all of them.
Each caller still gets its own reply or its own error, exactly as if it had sent the command
alone; a batch of one goes out as a plain command. Nothing waits for a batch to fill: a lone
request pays one extra hop of the event loop, not a timer.

Auto-pipelining is what ioredis and Lettuce do; redis-py has no such mode, and the asyncio
clients that multiplex (valkey-glide) would replace redis-py everywhere, the rate limiter's
storage included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


class CommandBatcher:
    """Send the commands of one event-loop turn as one pipeline; each caller gets its reply."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, *args: Any) -> Any:
        """Run one command (``"SET", key, value, ...``) in the next batch; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._pending:
            # Its first step runs once the callers ready now have run: it takes them all.
            task = asyncio.ensure_future(self._send_pending())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._pending.append((args, future))
        return await future

    async def run_script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` of a registered script in the next batch, loading it if Redis lost it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self.execute(*command)
        except NoScriptError:  # a restarted or flushed Redis: load it once, then again
            await self._redis.script_load(script.script)
            return await self.execute(*command)

    async def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        try:
            if len(batch) == 1:
                ((args, _),) = batch
                results: list[Any] = [await self._redis.execute_command(*args)]  # type: ignore[no-untyped-call]
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for args, _ in batch:
                        pipe.execute_command(*args)
                    results = await pipe.execute(raise_on_error=False)
        except Exception as error:  # the connection failed: every caller of the batch gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
