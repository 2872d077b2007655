"""The user's own memory through the gateway: a thread's earlier turns, and forgetting everything.

Both are decided by the voice-session token: history only for the token's thread, erasure only
of the token's owner (its verified user, else its thread). Memory owns the data, and after an
erasure tells every other service over JetStream; the gateway asks it over NATS.
"""

from __future__ import annotations

import logging

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode
from opencouch.contracts.memory import (
    ERASE_MAX_KNOWN,
    EraseMemoryReply,
    EraseMemoryRequest,
    ThreadHistoryReply,
    ThreadHistoryRequest,
)
from opencouch.contracts.voice_api import EraseReply, ThreadTurn, ThreadTurnsReply
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import OUTAGE_RETRY_SECONDS, request
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.tokens import VoiceSessionClaims

log = logging.getLogger(__name__)

ERASE_TIMEOUT_SECONDS = 30.0


def _unavailable(what: str) -> ServiceError:
    return ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"{what} is unavailable; try again shortly.",
        retry_after=OUTAGE_RETRY_SECONDS,
    )


async def thread_has_turns(gateway: Gateway, thread_id: str) -> bool:
    """Whether memory keeps any turn of the thread (asked of a thread no one is bound to)."""
    try:
        page = await request(
            gateway.nc,
            subjects.MEMORY_THREAD_TURNS,
            ThreadHistoryRequest(thread_id=thread_id, limit=1),
            ThreadHistoryReply,
            timeout=gateway.settings.memory_timeout_seconds,
        )
    except ServiceError as error:
        log.error("memory unavailable for a new thread", extra={"code": error.code.value})
        raise _unavailable("Memory") from None
    return bool(page.turns)


async def _require_thread_still_theirs(gateway: Gateway, claims: VoiceSessionClaims) -> None:
    """Refuse a token whose thread a signed-in user has since taken (``bind_thread``'s adopt):
    an anonymous session opened before, still live or within its grace, would otherwise read,
    or erase, what that user says there."""
    owner = await gateway.sessions.thread_owner(claims.thread_id)
    if owner is not None and owner.user_id is not None and owner.user_id != claims.user_id:
        raise ServiceError(
            ErrorCode.THREAD_FORBIDDEN,
            "This conversation now belongs to a signed-in user; start a new one instead.",
        )


async def thread_turns(
    gateway: Gateway, claims: VoiceSessionClaims, before: str | None, limit: int
) -> ThreadTurnsReply:
    """A page of the token's thread's stored turns, oldest first within the page."""
    await _require_thread_still_theirs(gateway, claims)
    try:
        page = await request(
            gateway.nc,
            subjects.MEMORY_THREAD_TURNS,
            ThreadHistoryRequest(thread_id=claims.thread_id, before=before, limit=limit),
            ThreadHistoryReply,
            timeout=gateway.settings.memory_timeout_seconds,
        )
    except ServiceError as error:
        if error.code is ErrorCode.INVALID_REQUEST:
            raise ServiceError(
                ErrorCode.INVALID_REQUEST, "That page cursor is not valid."
            ) from None
        raise _unavailable("Conversation history") from None
    return ThreadTurnsReply(
        thread_id=page.thread_id,
        turns=[
            ThreadTurn(
                session_id=turn.session_id,
                client_turn_id=turn.client_turn_id,
                user_text=turn.user_text,
                assistant_text=turn.assistant_text,
                started_at=turn.started_at,
                recorded_at=turn.recorded_at,
                route=turn.route,
            )
            for turn in page.turns
        ],
        before=page.before,
    )


async def erase_owner(gateway: Gateway, claims: VoiceSessionClaims) -> EraseReply:
    """Forget everything kept for the token's owner, everywhere.

    The owner's live sessions are closed first, so no turn can be stored behind the erasure.
    Memory erases, then tells every other service (``OwnerErased``); an erasure that failed
    half-way is finished by a retry, or by memory on its own.
    """
    await _require_thread_still_theirs(gateway, claims)
    live = await gateway.sessions.close_all_live(claims)
    # A deferred session must not be finalized after its turns are gone.
    await gateway.sessions.forget_deferred_ends(claims.owner_id)
    # The live sessions may have no turn stored yet: memory is told of them (the asking one
    # first, should there ever be more than a request may name).
    known = [claims.session_id, *(s for s in live if s != claims.session_id)][:ERASE_MAX_KNOWN]
    subject = {"user_id": claims.user_id} if claims.user_id else {"thread_id": claims.thread_id}
    erase = EraseMemoryRequest(
        **subject, confirmed=True, session_ids=known, thread_ids=[claims.thread_id]
    )
    try:
        erased = await request(
            gateway.nc,
            subjects.MEMORY_ERASE,
            erase,
            EraseMemoryReply,
            timeout=ERASE_TIMEOUT_SECONDS,
        )
    except ServiceError:
        raise _unavailable("Memory") from None
    await gateway.sessions.forget(erased.session_ids)
    log.info(
        "owner erased",
        extra={"sessions": len(erased.session_ids), "session_id": claims.session_id},
    )
    return EraseReply(
        owner="user" if claims.user_id else "thread",
        erased={
            **erased.erased_rows,
            "sessions": erased.sessions,
            "stream_messages": erased.stream_messages,
        },
    )
