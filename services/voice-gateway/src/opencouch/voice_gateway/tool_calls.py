"""``/tools``: check a model's function call against the catalog, then run it at its owner.

Policy is decided before anything is forwarded: the tool must exist, be offered in the
session's memory mode (from the token), and its arguments must fit its model. A ``call_id`` is
claimed once per session, so a replayed call gets the first output without running again.
Whatever goes wrong downstream, the reply is a tool output the model can speak around, after
at most ``tool_timeout_seconds``; a call that can no longer be answered (its owner died while
it waited, or NATS lost its request in a restart) is answered ``tool_unavailable`` a second or
two later (``OwnerWatch``). So is a replay whose first call will never store an output: its
claimant no longer runs it (``running_calls``).

A pure tool (``ToolSpec.pure``: it keeps and reads no state, and the same arguments give the
same answer) is asked while its claim is being decided, so the user does not wait for the Redis
round trip and the tool's one after the other; the claim is sent once the request is on its
way (``_request_written``). Its answer is given only if the claim admits the
call, and a refused call gets its refusal, as for every other tool. Its output is not stored:
a replay (same id, same arguments) is answered again, which is the same answer. Every other
tool runs only once its claim has admitted it, and a replay gets its stored output. A pure
tool too is asked only once admitted when its session's token has expired, or when a call of
its session was refused lately (``refusals``): a client calling on after its refusal does not
make the tool's owner work for calls it will never be given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from typing import Any, Final

from nats.aio.client import Client as NatsClient
from prometheus_client import Histogram
from pydantic import ValidationError

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import (
    TOOL_CATALOG,
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolErrorOutput,
    ToolSpec,
)
from opencouch.contracts.voice_api import ToolsReply, ToolsRequest
from opencouch.runtime.errors import ServiceError, describe_validation
from opencouch.runtime.messaging import request
from opencouch.runtime.metrics import TOOL_CALL_SECONDS, TOOL_CALLS_ASKED_AGAIN
from opencouch.runtime.observation import describe_current_span
from opencouch.runtime.tools import tool_error
from opencouch.voice_gateway.rate_limits import limited
from opencouch.voice_gateway.sealing import seal, unseal
from opencouch.voice_gateway.served_tools import OWNER_CHECK_SECONDS
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.tokens import VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import Caller, Claim, ClaimState, fingerprint

log = logging.getLogger(__name__)


def _reply(error: ToolErrorOutput) -> ToolsReply:
    return ToolsReply(output=error.model_dump(mode="json", exclude_none=True), ok=False)


def _failed(spec: ToolSpec, code: ErrorCode, message: str) -> ToolsReply:
    return _reply(tool_error(code, message, spec.failure_guidance))


def check_call(body: ToolsRequest, claims: VoiceSessionClaims) -> ToolSpec | ToolsReply:
    """The catalog entry the call may run, or the refusal to give the model instead."""
    spec = TOOL_CATALOG.get(body.tool_name)
    if spec is None:
        return _reply(
            tool_error(ErrorCode.UNKNOWN_TOOL, f"There is no tool named {body.tool_name!r}.")
        )
    if not spec.offered_in(claims.memory_mode):
        return _reply(
            tool_error(
                ErrorCode.TOOL_NOT_IN_MODE,
                f"{spec.name} is not available in a {claims.memory_mode.value} conversation.",
            )
        )
    try:
        spec.arguments.model_validate(body.arguments)
    except ValidationError as error:
        return _reply(
            tool_error(
                ErrorCode.INVALID_ARGUMENTS,
                describe_validation(error, root="arguments"),
                "Call the tool again with arguments that match its schema.",
            )
        )
    return spec


async def call_tool(
    gateway: Gateway, body: ToolsRequest, claims: VoiceSessionClaims, caller: Caller
) -> ToolsReply:
    """Run ``body.tool_name`` for the token's session, as a tool output in every case."""
    if body.call_id is None:
        raise ServiceError(
            ErrorCode.CALL_ID_MISSING, "A tool call needs the Realtime call_id it answers."
        )
    checked = check_call(body, claims)
    if isinstance(checked, ToolsReply):
        return checked
    spec = checked
    if not spec.pure:
        return await _run_once(gateway, spec, body, claims, caller, body.call_id)
    # A pure tool is asked first, and its claim is sent only once the request is on the wire,
    # unless its session's calls are likely to be refused.
    early = not (claims.expired() or gateway.refused.lately(claims.session_id))
    asked = asyncio.ensure_future(_run(gateway, spec, body, claims)) if early else None
    try:
        if asked is not None:
            await _request_written(gateway.nc, asked)
        await _admitted(gateway, caller, claims, body.call_id, call_fingerprint(spec, body), True)
        if asked is not None:  # a first call or a replay alike: the same answer
            return await asked
    finally:
        if asked is not None:
            _drop(asked)
    # Asked once admitted: a first call or a replay alike, the same answer.
    return await _run(gateway, spec, body, claims)


def call_fingerprint(spec: ToolSpec, body: ToolsRequest) -> str:
    """What tells a replay of a call from a reuse of its id: the tool and its arguments."""
    return fingerprint(f"{spec.name}\n{body.model_dump_json(include={'arguments'})}")


async def _run_once(
    gateway: Gateway,
    spec: ToolSpec,
    body: ToolsRequest,
    claims: VoiceSessionClaims,
    caller: Caller,
    call_id: str,
) -> ToolsReply:
    """A tool that keeps state: run once its claim admits it, or answered as its first call
    was. The attempt runs (``running_calls``) from before its claim is sent until its output is
    stored, or it is known that none will be."""
    body_print = call_fingerprint(spec, body)
    attempt = gateway.running.begin()
    handed_over = False
    try:
        claim = await _admitted(gateway, caller, claims, call_id, body_print, False, attempt)
        if claim.state is ClaimState.SEEN:
            gateway.running.end(attempt)  # another request holds the call, not this one
            return await _replayed(gateway, spec, claim, claims, call_id)
        reply = await _run(gateway, spec, body, claims)
        # Kept after the reply is sent: a replay that comes first waits for it (see _replayed).
        gateway.background.spawn(_keep_output(gateway, claims, call_id, body_print, reply, attempt))
        handed_over = True
        return reply
    finally:
        if not handed_over:
            gateway.running.end(attempt)


async def _keep_output(
    gateway: Gateway,
    claims: VoiceSessionClaims,
    call_id: str,
    body_print: str,
    reply: ToolsReply,
    attempt: str,
) -> None:
    """Store the call's output for its replays, then let the attempt go: a replay told it no
    longer runs finds the output, or knows none will come."""
    try:
        if claims.memory_mode is not MemoryMode.INCOGNITO:
            await gateway.sessions.store_call_output(
                claims.session_id, call_id, body_print, reply.output, reply.ok
            )
        elif claims.sealing_key is not None:  # else none could read it back
            sealed = seal(
                claims.sealing_key,
                {"output": reply.output, "ok": reply.ok},
                f"{claims.session_id}:{call_id}",
            )
            await gateway.sessions.store_sealed_output(
                claims.session_id, call_id, body_print, sealed, until=claims.expires_at
            )
    finally:
        gateway.running.end(attempt)


_MOST_TURNS_TO_WRITE: Final = 3


async def _request_written(nc: NatsClient, asked: asyncio.Future[Any]) -> None:
    """Return once the asked tool's request has been written to NATS (a few turns of the event
    loop at most; nothing here waits on I/O).

    The request and the claim go to two servers on the same few cores: sent the other way
    round, or together, the claim's command was written first, and Redis running the claim's
    script held up NATS and the tool while they had the call in hand, a tenth of the call's
    time. The asked task publishes on its first turn; nats-py's flusher writes what is
    pending on the next.
    """
    await asyncio.sleep(0)  # the asked task's first step: its request is published
    for _ in range(_MOST_TURNS_TO_WRITE):
        if not nc.pending_data_size or asked.done():
            return
        await asyncio.sleep(0)


def _drop(asked: asyncio.Future[ToolsReply]) -> None:
    """Cancel an early answer the call did not use (refused); a no-op once used."""
    if not asked.done():
        asked.cancel()
    elif not asked.cancelled():
        asked.exception()  # retrieved, so an unused failure is not reported as never retrieved


async def _admitted(
    gateway: Gateway,
    caller: Caller,
    claims: VoiceSessionClaims,
    call_id: str,
    body_print: str,
    pure: bool,
    by: str | None = None,
) -> Claim:
    """Claim the call: ``CLAIMED`` (run it) or ``SEEN`` (an honest replay), else the refusal
    raised (and remembered, see ``refusals``). A pure call's claim is kept as long as an output
    would be (none is stored); ``by`` names the attempt that claims it (``running_calls``)."""
    claim = await gateway.sessions.claim_call(
        caller, call_id, body_print, gateway.settings.tool_timeout_seconds, kept=pure, by=by
    )
    if claim.state is ClaimState.MISSING:
        gateway.refused.refused(claims.session_id)
        raise ServiceError(
            ErrorCode.VOICE_SESSION_NOT_FOUND, "This voice session is no longer known."
        )
    if claim.state is ClaimState.ENDED:
        gateway.refused.refused(claims.session_id)
        raise ServiceError(ErrorCode.SESSION_ENDED, "This voice session has ended.")
    if claim.state is ClaimState.LIMITED:
        gateway.refused.refused(claims.session_id, claim.retry_after)
        raise limited("calls of this voice session", claim.retry_after)
    if claim.state is ClaimState.SEEN:
        if claim.conflicts_with(body_print):
            raise ServiceError(
                ErrorCode.CALL_CONFLICT, "This call_id was already used for a different call."
            )
        return claim
    try:
        claims.refuse_if_expired()
    except ServiceError:
        await gateway.sessions.forget_call(claims.session_id, call_id)
        raise
    return claim


def _stored_reply(
    record: dict[str, Any] | None, claims: VoiceSessionClaims, call_id: str
) -> ToolsReply | None:
    """The output stored in a call's record, unsealed if its session is incognito's."""
    if record is None:
        return None
    if "sealed" in record:
        kept = None
        if claims.sealing_key is not None:
            kept = unseal(claims.sealing_key, record["sealed"], f"{claims.session_id}:{call_id}")
        record = kept if isinstance(kept, dict) else {}
    if "output" not in record:
        return None
    return ToolsReply(output=record["output"], ok=bool(record.get("ok", True)))


async def _replayed(
    gateway: Gateway, spec: ToolSpec, claim: Claim, claims: VoiceSessionClaims, call_id: str
) -> ToolsReply:
    """The first call's output; while the first still runs, wait for it as long as it may take.

    A first call that stores no output and no longer runs (its gateway was killed in the middle
    of it, or answered 503 without running it), or whose claim is gone, never will: the replay
    is answered ``tool_unavailable`` then, not after the whole timeout. Its claimant is asked at
    once, then every ``OWNER_CHECK_SECONDS``; a claim that names none (made before claims did)
    is waited for to the deadline."""
    session_id = claims.session_id
    record = claim.record
    started = time.monotonic()
    deadline = started + gateway.settings.tool_timeout_seconds + 1
    ask_at = started
    while True:
        if (stored := _stored_reply(record, claims, call_id)) is not None:
            return stored
        now = time.monotonic()
        if record is None or (
            claim.by is not None
            and now >= ask_at
            and not await gateway.running.still_running(claim.by)
        ):
            # Its output is stored before its claimant lets go of it: read once more.
            record = await gateway.sessions.call_record(session_id, call_id)
            if _stored_reply(record, claims, call_id) is not None:
                continue
            return _failed(
                spec, ErrorCode.TOOL_UNAVAILABLE, f"{spec.name} is not available right now."
            )
        if now >= ask_at:
            ask_at = now + OWNER_CHECK_SECONDS
        if now > deadline:
            return _failed(spec, ErrorCode.TOOL_TIMEOUT, f"{spec.name} took too long to answer.")
        await asyncio.sleep(0.05)
        record = await gateway.sessions.call_record(session_id, call_id)


def tool_request(spec: ToolSpec, body: ToolsRequest, claims: VoiceSessionClaims) -> ToolCallRequest:
    """The request its owner is sent: the call from the body, who calls from the token.

    Built from values validated already, each against the same field types (the body as it
    arrived, the token's claims as it was issued), so it is constructed rather than validated
    a second time; the owner validates it again as it arrives."""
    return ToolCallRequest.model_construct(
        tool_name=spec.name,
        arguments=body.arguments,
        context=ToolCallContext.model_construct(
            session_id=claims.session_id,
            thread_id=claims.thread_id,
            user_id=claims.user_id,
            memory_mode=claims.memory_mode,
            current_user_message=body.current_user_message,
            transcript=body.transcript,
            client_turn_id=body.client_turn_id,
            call_id=body.call_id,
            session_expires_at=claims.session_expires_at,
        ),
    )


def _ask_again(
    nc: NatsClient, spec: ToolSpec, call: ToolCallRequest, deadline: float
) -> Awaitable[ToolCallReply]:
    """The same request sent once more, within the call's own deadline (``perf_counter``)."""
    TOOL_CALLS_ASKED_AGAIN.labels(spec.name).inc()
    log.info("a pure tool's call asked again", extra={"tool": spec.name, "owner": spec.owner.value})
    left = deadline - time.perf_counter()
    return request(nc, spec.subject, call, ToolCallReply, timeout=max(left, 0.001))


async def _run(
    gateway: Gateway, spec: ToolSpec, body: ToolsRequest, claims: VoiceSessionClaims
) -> ToolsReply:
    call = tool_request(spec, body, claims)
    started = time.perf_counter()
    timeout = gateway.settings.tool_timeout_seconds
    outcome = "failed"
    # A pure tool is answered in turn, and may be asked again (see OwnerWatch); one that keeps
    # state may take a while, and its holder says it still holds it, so a replica killed in
    # the middle of it is noticed.
    notes = None if spec.pure else gateway.owners.notes_subject()
    try:
        reply = await gateway.owners.wait(
            spec.owner,
            request(
                gateway.nc, spec.subject, call, ToolCallReply, timeout=timeout, held_notes=notes
            ),
            notes,
            (
                functools.partial(_ask_again, gateway.nc, spec, call, started + timeout)
                if spec.pure
                else None
            ),
        )
        outcome = "ok" if reply.ok else _declined(reply)
        if not reply.ok and spec.failure_guidance and "guidance" not in reply.output:
            reply = ToolCallReply(
                output={**reply.output, "guidance": spec.failure_guidance}, ok=False
            )
        # The owner's reply was validated as it arrived: its output is the page's as it is.
        return ToolsReply.model_construct(output=reply.output, ok=reply.ok)
    except ServiceError as error:
        if error.code is ErrorCode.SERVICE_TIMEOUT:
            outcome = "timeout"
            return _failed(spec, ErrorCode.TOOL_TIMEOUT, f"{spec.name} took too long to answer.")
        if error.code is ErrorCode.SERVICE_UNAVAILABLE:
            outcome = "unavailable"
            return _failed(
                spec, ErrorCode.TOOL_UNAVAILABLE, f"{spec.name} is not available right now."
            )
        return _failed(spec, ErrorCode.TOOL_FAILED, f"{spec.name} could not run.")
    except asyncio.CancelledError:
        outcome = "dropped"  # a pure tool asked early for a call that was then refused
        raise
    finally:
        elapsed = time.perf_counter() - started
        _tool_call_seconds(spec.name, outcome).observe(elapsed)
        if outcome != "dropped":  # a dropped answer's request may have been answered already
            describe_current_span(
                {"opencouch.tool.name": spec.name, "opencouch.tool.outcome": outcome}
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "tool call",
                extra={
                    "tool": spec.name,
                    "outcome": outcome,
                    "session_id": claims.session_id,
                    "ms": round(elapsed * 1000, 1),
                },
            )


@functools.cache
def _tool_call_seconds(tool: str, outcome: str) -> Histogram:
    """The histogram child of one label set (labels() takes a lock and checks on every call)."""
    return TOOL_CALL_SECONDS.labels(tool, outcome)


def _declined(reply: ToolCallReply) -> str:
    """``refused`` when the owner declined on purpose, ``unavailable`` when it could not run
    the tool now (a store it needs is down), else ``failed``."""
    if reply.output.get("status") == "refused":
        return "refused"
    error = reply.output.get("error")
    if isinstance(error, dict) and error.get("code") == ErrorCode.TOOL_UNAVAILABLE.value:
        return "unavailable"
    return "failed"
