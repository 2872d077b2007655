"""The dead-letter replay command of a consuming service (``python -m
opencouch.<service>.replay_dead_letters``): one implementation, each service naming its consumers.

Once the cause of the failures is fixed, each dead letter is handed to the same handler its
consumer uses (handlers are idempotent, so running it twice does each once); what was handled
is removed. Prints one JSON line, ``{durable: {"replayed", "failed", "waiting"}}`` (only
``waiting`` with ``--count-only``), and exits 1 while some are still waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, NoReturn

from nats.js import JetStreamContext
from pydantic import BaseModel

from opencouch.runtime.jetstream import (
    count_dead_letters,
    ensure_events_stream,
    replay_dead_letters,
)
from opencouch.runtime.logs import configure_logging
from opencouch.runtime.messaging import nats_connection


@dataclass(frozen=True)
class DeadLetterHandler:
    """How one consumer's dead letters are handled again: its event model and handler."""

    durable: str
    event_model: type[BaseModel]
    handle: Callable[[Any], Awaitable[None]]


HandlersFactory = Callable[
    [AsyncExitStack, JetStreamContext], Awaitable[Sequence[DeadLetterHandler]]
]
"""Builds the handlers (opening what they need on the stack); only called to replay, not to count."""

Report = dict[str, dict[str, int]]


async def replay_consumers(
    nats_url: str,
    client_name: str,
    durables: Sequence[str],
    handlers: HandlersFactory,
    *,
    count_only: bool,
) -> Report:
    """Replay (or only count) the dead letters of ``durables``."""
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(nats_connection(nats_url, client_name))
        js = await ensure_events_stream(nc)
        if count_only:
            return {
                durable: {"waiting": await count_dead_letters(js, durable)} for durable in durables
            }
        report: Report = {}
        for handler in await handlers(stack, js):
            result = await replay_dead_letters(
                js, handler.durable, handler.event_model, handler.handle
            )
            report[handler.durable] = {
                "replayed": result.replayed,
                "failed": result.failed,
                "waiting": result.waiting,
            }
        return report


def run_replay_command(
    description: str | None,
    service: str,
    log_level: str,
    run: Callable[[bool], Coroutine[Any, Any, Report]],
) -> NoReturn:
    """Parse ``--count-only``, replay, print the report, exit 1 if anything is still waiting."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count-only", action="store_true", help="only count what is waiting")
    args = parser.parse_args()
    configure_logging(f"{service}-replay", log_level)
    report = asyncio.run(run(args.count_only))
    print(json.dumps(report))
    sys.exit(1 if any(entry["waiting"] for entry in report.values()) else 0)
