"""The tool calls this gateway process runs, for a replay of one on another process to ask.

A tool that keeps state runs once per ``call_id``: the first request claims the id in Redis,
and a replay waits for the output the first stores (``tool_calls._replayed``). But the first may
never store one:

- its gateway was killed in the middle of the call (the browser sends the call again to
  another replica);
- it answered 503 without running the call, because Redis's reply to its claim was lost
  although Redis had made the claim (a restart can cut a reply off after the command ran; the
  browser's retry then finds the claim).

A replay would then wait out the whole tool timeout, in silence, for nothing. So each claim
names its claimant (``begin``: this process's instance id and an attempt number), the process
keeps the attempts it runs until their outputs are stored (``end``), and answers on NATS
whether it still runs one. A replay that finds no output asks (``still_running``); a claimant
that says no, or that is not on NATS at all (NATS says at once that nobody listens: killed),
will never store one, and the replay is answered ``tool_unavailable`` at once.

A claim that names the very attempt making it is the attempt's own: Redis made it, its reply
was lost, and the batch was sent again (``redis_batching``); it is taken as claimed.
"""

from __future__ import annotations

import itertools
import logging

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from opencouch.contracts import subjects
from opencouch.contracts.tools import RunningCallAnswer, RunningCallQuery

log = logging.getLogger(__name__)

_YES = RunningCallAnswer(running=True).model_dump_json().encode()
_NO = RunningCallAnswer(running=False).model_dump_json().encode()


class RunningCalls:
    """The attempts this process has claimed a tool call for and not yet let go of."""

    def __init__(self, instance_id: str, timeout: float = 0.5) -> None:
        self.instance_id = instance_id
        self._attempts = itertools.count()
        self._running: set[str] = set()
        self._timeout = timeout
        self._nc: NatsClient | None = None

    async def listen(self, nc: NatsClient) -> None:
        """Answer, on ``nc``, whether an attempt of this process still runs."""
        await nc.subscribe(subjects.running_calls(self.instance_id), cb=self._asked)
        self._nc = nc

    def begin(self) -> str:
        """A new attempt, running from now (before its claim is sent: Redis may make the claim
        even when its reply never comes back)."""
        attempt = f"{self.instance_id}.{next(self._attempts)}"
        self._running.add(attempt)
        return attempt

    def end(self, attempt: str) -> None:
        """The attempt no longer runs: its output is stored, or it never will be."""
        self._running.discard(attempt)

    def __len__(self) -> int:
        return len(self._running)

    async def _asked(self, msg: Msg) -> None:
        try:
            query = RunningCallQuery.model_validate_json(msg.data)
        except ValidationError:
            log.warning("a running-call query that does not fit its contract")
            return
        await msg.respond(_YES if query.claimant in self._running else _NO)

    async def still_running(self, claimant: str) -> bool:
        """False only when the claimant's process says it no longer runs the call, or is not
        on NATS at all; True while it runs it, and when NATS cannot tell (a timeout, an
        outage): only a certain answer counts."""
        if self._nc is None:
            return True
        process = claimant.partition(".")[0]
        query = RunningCallQuery(claimant=claimant).model_dump_json().encode()
        try:
            reply = await self._nc.request(
                subjects.running_calls(process), query, timeout=self._timeout
            )
        except nats.errors.NoRespondersError:
            return False
        except nats.errors.Error:
            return True
        try:
            return RunningCallAnswer.model_validate_json(reply.data).running
        except ValidationError:
            log.warning("a running-call answer that does not fit its contract")
            return True
