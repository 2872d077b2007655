"""Who owns durable memory, and when it may be changed.

Memory belongs to the user when a user id is known, else to the thread. Incognito is a floor:
nothing is read for, or written by, an incognito session. The gateway's token already decides
the mode; every mutation here checks it again, so a caller that skipped a check changes nothing.
"""

from __future__ import annotations

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import ToolCallContext
from opencouch.runtime.errors import ServiceError


def owner_key(thread_id: str, user_id: str | None) -> str:
    """Durable memory belongs to the user when known, else to the thread."""
    return f"user:{user_id}" if user_id else f"thread:{thread_id}"


def require_persistent(mode: MemoryMode) -> None:
    """Refuse (``memory_off``) anything that would keep or change memory outside persistent."""
    if mode is not MemoryMode.PERSISTENT:
        raise ServiceError(
            ErrorCode.MEMORY_OFF,
            "Memory is off in this conversation: nothing is saved, changed or deleted.",
        )


def mutation_owner(context: ToolCallContext) -> str:
    """The owner a memory tool may change, after checking the mode again.

    Raises ``memory_off`` outside persistent mode and ``owner_or_session_missing`` when the
    call names no session or no owner.
    """
    require_persistent(context.memory_mode)
    if not context.session_id or not (context.user_id or context.thread_id):
        raise ServiceError(
            ErrorCode.OWNER_OR_SESSION_MISSING,
            "This conversation has no user or thread to keep memory for.",
        )
    return owner_key(context.thread_id, context.user_id)
