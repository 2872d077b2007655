"""Redis commands issued by concurrent requests, sent to Redis together on a held connection.

redis-py sends each command on its own: a connection checkout (with a liveness probe of the
socket), packing the command in Python, a write under a timeout task, a read, and its own
metrics hooks. The gateway's hot path issues one or two small commands per request, so most of
its Redis time was that per-command overhead: about 100 us of CPU per command, where the write
and read themselves cost about half. ``CommandBatcher`` collects the commands issued during one
turn of the event loop and sends them together on a connection it holds: packed by hiredis in
one call, one write, then each reply read in order. Each caller still gets its own reply or its
own error, exactly as if it had sent the command alone. Nothing waits for a batch to fill: a
lone request pays one extra hop of the event loop, not a timer. While a batch is out, the
commands issued meanwhile make up the next one.

Failures read as redis-py's. The held connection is one of the client's pool (so closing the
client closes it). A batch that finds it lost before any reply came (Redis restarted, or closed
the idle connection) is sent once more, at once, on a fresh one. Most often none of it ran, but
Redis may have run it and stopped before writing its replies (a restart can), so what the
gateway batches is safe to run twice: reads, ``SET``s, counters, and claims that know their own
(a tool call's claim names its claimant, see ``running_calls``; a turn found claimed and not
completed goes on as a first try would). A batch that still fails, loses its connection after a
reply (some of it ran and some may not have), or gets no reply within the client's socket
timeout, fails for every caller, with redis-py's ``ConnectionError`` or ``TimeoutError``.
Replies are Redis's own (``b"OK"``, not ``True``): no response callbacks.

A batch bypasses redis-py's command path, and so its OpenTelemetry instrumentation: while
tracing is on, each batch is a client span of its own, as the instrumentation records a
pipeline (the command names, never their arguments), in the trace of the request whose command
opened the batch.

Auto-pipelining is what ioredis and Lettuce do; redis-py has no such mode, and the asyncio
clients that multiplex (valkey-glide) would replace redis-py everywhere, the rate limiter's
storage included.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

import hiredis
import redis.exceptions
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from opencouch.runtime.tracing import tracer, tracing_enabled

_Batch = list[tuple[tuple[Any, ...], "asyncio.Future[Any]"]]


_UNTRACED: Final = nullcontext()


class _LostUnanswered(redis.exceptions.ConnectionError):
    """The connection was lost before any reply to the batch (though Redis may have run it)."""


class CommandBatcher:
    """Send the commands of one event-loop turn together; each caller gets its reply."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._connection: AbstractConnection | None = None
        self._timeout: float | None = None
        self._pending: _Batch = []
        self._opened_in: otel_context.Context | None = None
        """The trace context of the command that opened the pending batch (tracing on)."""
        self._sender: asyncio.Task[None] | None = None

    async def execute(self, *args: Any) -> Any:
        """Run one command (``"SET", key, value, ...``) in the next batch; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._pending and tracing_enabled():
            self._opened_in = otel_context.get_current()
        self._pending.append((args, future))
        if self._sender is None:
            # Its first step runs once the callers ready now have run: it takes them all.
            self._sender = asyncio.ensure_future(self._send_all())
        return await future

    async def run_script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` of a registered script in the next batch, loading it if Redis lost it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self.execute(*command)
        except NoScriptError:  # a restarted or flushed Redis: load it once, then again
            await self.execute("SCRIPT", "LOAD", script.script)
            return await self.execute(*command)

    async def _send_all(self) -> None:
        """Send batches, one at a time on the held connection, until none is pending."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                opened_in, self._opened_in = self._opened_in, None
                await self._send(batch, opened_in)
        finally:
            self._sender = None

    async def _send(self, batch: _Batch, opened_in: otel_context.Context | None) -> None:
        try:
            with self._traced(batch, opened_in):
                connection = await self._held()
                try:
                    replies = await self._exchange(connection, batch)
                except _LostUnanswered:  # sent again on a fresh connection, once
                    replies = await self._exchange(connection, batch)
        except Exception as error:  # no connection, or it failed: every caller gets why
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def _traced(
        self, batch: _Batch, opened_in: otel_context.Context | None
    ) -> AbstractContextManager[Any]:
        """The batch's client span, as the Redis instrumentation records a pipeline."""
        if opened_in is None:
            return _UNTRACED
        names = [str(args[0]) for args, _ in batch]
        kwargs = self._redis.connection_pool.connection_kwargs
        return tracer().start_as_current_span(
            " ".join(names),
            context=opened_in,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "redis",
                "db.statement": "\n".join(
                    " ".join([str(args[0]), *("?" * (len(args) - 1))]) for args, _ in batch
                ),
                "db.redis.pipeline_length": len(batch),
                "db.redis.database_index": int(kwargs.get("db") or 0),
                "net.peer.name": str(kwargs.get("host", "localhost")),
                "net.peer.port": int(kwargs.get("port", 6379)),
            },
        )

    async def _held(self) -> AbstractConnection:
        """The batcher's connection: checked out of the client's pool once, and kept."""
        if self._connection is None:
            connection = await self._redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            # The batch keeps the socket timeout as its deadline (``_exchange``), for the write
            # and every reply together, rather than one timer per read and a task per write.
            self._timeout = connection.socket_timeout
            connection.socket_timeout = None
            self._connection = connection
        return self._connection

    async def _exchange(self, connection: AbstractConnection, batch: _Batch) -> list[Any]:
        """Write the batch and read one reply per command; a command's own error is its reply."""
        packed = b"".join(hiredis.pack_command(args) for args, _ in batch)
        replies: list[Any] = []
        stale = connection.is_connected  # else it connects now: failing that is not staleness
        try:
            async with asyncio.timeout(self._timeout):
                # Connects first when the connection was lost (as redis-py does before a write).
                await connection.send_packed_command(packed, check_health=False)
                for _ in batch:
                    try:
                        replies.append(await connection.read_response())
                    except ResponseError as error:  # this command's error: the rest still read
                        replies.append(error)
                return replies
        except redis.exceptions.ConnectionError as error:
            await connection.disconnect(nowait=True)
            if replies or not stale:
                raise
            raise _LostUnanswered(*error.args) from error
        except TimeoutError as error:
            # Cut off mid-exchange: closed, so a late reply is never read as the next batch's.
            # Raised as redis-py's own timeout, which callers know as an outage.
            await connection.disconnect(nowait=True)
            raise redis.exceptions.TimeoutError("Timeout waiting for Redis") from error
