"""Bodies and replies of the public voice API, ``/api/voice/realtime/*``.

``/session`` returns a voice-session token; every later call carries it as
``Authorization: Bearer``. The token decides the session, thread, user and memory mode. A body
may still name them (older clients do), but one that disagrees with the token is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from opencouch.contracts.common import (
    AssistantVoice,
    Contract,
    Identifier,
    JsonObject,
    MemoryMode,
    SessionId,
    StorableText,
    Transcript,
    UtteranceText,
)
from opencouch.contracts.realtime import ClientSecret, RealtimeSessionConfig

BearerText = Annotated[
    str, StringConstraints(min_length=16, max_length=4096, pattern=r"^[\x21-\x7e]+$")
]
"""An opaque credential: printable ASCII, bounded."""

# -- POST /session ----------------------------------------------------------------------------

PROPOSED_THREAD_SECRET_MIN_LENGTH: Final = 32
"""A thread secret the client made binds a new thread only when at least this long (random)."""


class SessionRequest(Contract):
    """Start a voice session for a web thread."""

    thread_id: Identifier
    user_id: Identifier | None = None
    """Trusted only when ``identity_token`` proves it (or in development identity mode)."""
    identity_token: BearerText | None = None
    """A JWT from the host application whose subject is the user id."""
    thread_secret: BearerText | None = None
    """The secret an anonymous thread was bound to on its first session. On that first session
    a client may propose one (random, ``PROPOSED_THREAD_SECRET_MIN_LENGTH`` characters or more):
    the thread is bound to it, so a lost reply cannot lock the client out; else the gateway
    makes one and replies with it."""
    memory_mode: MemoryMode = MemoryMode.INCOGNITO
    assistant_voice: AssistantVoice = "cedar"


class SessionReply(Contract):
    """What the browser needs: a token for our API, a client secret and where to call Realtime."""

    session_id: SessionId
    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode
    token: str
    """The voice-session token: ``Authorization: Bearer <token>`` on every later call."""
    token_expires_at: int
    """Unix seconds; the session's maximum duration plus a short grace for ``/end``."""
    session_expires_at: int
    """Unix seconds; tools and turns are refused after this."""
    thread_secret: str | None = None
    """Set only when this call bound an anonymous thread: keep it to open the thread again."""
    client_secret: ClientSecret
    realtime_calls_url: str
    """Where the browser posts its SDP offer, with the client secret as bearer."""
    session: RealtimeSessionConfig
    """The Realtime session as configured, without its private instructions."""


# -- POST /tools ------------------------------------------------------------------------------


class ToolsRequest(Contract):
    """A function call the model made, forwarded by the browser."""

    tool_name: Annotated[str, Field(min_length=1, max_length=64)]
    call_id: Identifier | None = None
    """The Realtime ``call_id``; required. A replay returns the first output."""
    arguments: JsonObject = {}
    current_user_message: UtteranceText = ""
    transcript: Transcript = []
    client_turn_id: Identifier | None = None
    # Checked against the token when present; never decide anything.
    thread_id: Identifier | None = None
    session_id: SessionId | None = None
    user_id: Identifier | None = None
    memory_mode: MemoryMode | None = None


class ToolsReply(Contract):
    """The tool's output, to send back to Realtime as a ``function_call_output``."""

    output: dict[str, Any]
    ok: bool = True
    """False when ``output`` is an error or a refusal, for the page's tool panel."""


# -- POST /turn -------------------------------------------------------------------------------


class ToolCallStatus(StrEnum):
    """How far a tool call in a turn got."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"


class TurnToolCall(Contract):
    """A tool call made during a turn, as the browser saw it."""

    tool_name: Annotated[StorableText, Field(min_length=1, max_length=64)]
    status: ToolCallStatus
    output: JsonObject | None = None
    error: Annotated[StorableText, Field(max_length=500)] | None = None


class TurnOutcome(StrEnum):
    """How a turn ended."""

    COMPLETED = "completed"
    CONNECTION_INTERRUPTED = "connection_interrupted"
    SAFETY_INTERRUPTED = "safety_interrupted"


Route = Literal["therapeutic", "crisis", "grounded_lookup", "memory_control", "guided_exercise"]
TurnResponseStyle = Literal[
    "voice", "crisis_response", "grounded_lookup", "memory_control", "guided_exercise"
]

ROUTE_PRIORITY: Final[tuple[Route, ...]] = (
    "crisis",
    "grounded_lookup",
    "memory_control",
    "guided_exercise",
    "therapeutic",
)
"""When a turn used tools of several routes, the first of these wins."""

RESPONSE_STYLE: Final[dict[Route, TurnResponseStyle]] = {
    "crisis": "crisis_response",
    "grounded_lookup": "grounded_lookup",
    "memory_control": "memory_control",
    "guided_exercise": "guided_exercise",
    "therapeutic": "voice",
}
"""The response style a route implies."""


class TurnLatency(Contract):
    """The browser's latency marks for the session so far, in milliseconds (for metrics only)."""

    session_minted_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    """``/session`` request to reply."""
    connected_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    """Session reply to the ``oai-events`` channel open."""
    first_audio_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    """End of the user's speech to the first assistant audio of this turn."""
    tool_round_trips_ms: Annotated[
        list[Annotated[float, Field(ge=0, le=600_000)]], Field(max_length=20)
    ] = []
    """Each tool call of this turn: arguments done to output sent back."""


# Wide enough for any browser's clock, however wrong (an unset one says 1970), and inside what
# every store can read back: Postgres keeps a time of year 1 in a zone east of UTC as 1 BC,
# which Python then cannot read, and a thread holding one could no longer be paged.
_SPOKEN_FROM: Final = datetime(1900, 1, 1, tzinfo=UTC)
_SPOKEN_UNTIL: Final = datetime(9000, 1, 1, tzinfo=UTC)


def _spoken_in_range(at: datetime) -> datetime:
    if not _SPOKEN_FROM <= at < _SPOKEN_UNTIL:
        raise ValueError("a time between the years 1900 and 9000 is required")
    return at


SpokenAt = Annotated[AwareDatetime, AfterValidator(_spoken_in_range)]
"""A time a client says something was said: with its zone, in the years 1900 to 9000."""


class TurnRequest(Contract):
    """A finished exchange: what the user said and what the assistant said back."""

    client_turn_id: Identifier
    """Chosen by the browser; a retry sends the same id and the same body."""
    user_text: UtteranceText
    assistant_text: UtteranceText
    started_at: SpokenAt | None = None
    """When the user started speaking (the browser's clock); turns are ordered by it."""
    route: Route | None = None
    response_style: TurnResponseStyle | None = None
    tool_calls: Annotated[list[TurnToolCall], Field(max_length=20)] = []
    outcome: TurnOutcome = TurnOutcome.COMPLETED
    latency: TurnLatency | None = None
    transcript: Transcript = []
    """The recent lines before this turn, oldest first, bounded as a tool call's are.

    Read only to screen an incognito turn for crisis in context (a "yes" right after the
    assistant asked about suicide, a plan after earlier ideation): it travels with the user's
    words over core NATS to the classifier and is never stored, logged or published as an event.
    A persistent turn's context comes from the service's own screening memory, so there it is
    ignored. Not part of the turn's identity: a retry with another window is the same turn.
    """
    # Checked against the token when present; never decide anything.
    thread_id: Identifier | None = None
    session_id: SessionId | None = None
    user_id: Identifier | None = None
    memory_mode: MemoryMode | None = None


class TurnReply(Contract):
    """Whether the turn is now durably recorded, and the thread's message count."""

    recorded: bool
    thread_id: Identifier
    message_count: int


# -- POST /end --------------------------------------------------------------------------------


class Feedback(StrEnum):
    """The user's optional verdict on the session."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    SKIP = "skip"


class FinalizationStatus(StrEnum):
    """Where a session's finalization is: pending -> in_progress -> completed | failed."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class EndRequest(Contract):
    """End the voice session the token names and, in persistent mode, finalize it."""

    feedback: Feedback | None = None
    save: bool = True
    """False ends the session without a summary or new memories ("end without saving")."""
    continued: bool = False
    """True: the conversation goes on in a new voice session of the same thread (the call
    dropped, or Realtime expired the session). This session is closed now, like any end, but
    not finalized yet: the conversation's last ``/end`` (by the same owner, on the same thread)
    finalizes it with its own ``save`` and ``feedback``. ``save`` and ``feedback`` sent with
    ``continued`` are ignored. Ending the session again without it finalizes it normally.
    No effect in incognito, where nothing is finalized."""
    # Checked against the token when present; never decide anything.
    thread_id: Identifier | None = None
    session_id: SessionId | None = None
    memory_mode: MemoryMode | None = None


class EndReply(Contract):
    """The finalization result, or its status while it is still running."""

    finalized: bool
    status: FinalizationStatus | None
    """None in incognito, where nothing is finalized."""
    session_id: SessionId
    thread_id: Identifier
    detail: str
    summary: str | None = None
    themes: list[str] = []
    mood_opened: str | None = None
    mood_closed: str | None = None
    turn_count: int = 0
    open_loops: list[str] = []
    resolved_threads: list[str] = []
    peak_crisis_level: int | None = None
    memories_committed: int = 0
    """Facts this session added to its owner's memory (only a saved persistent session adds)."""
    finalized_at: datetime | None = None


# -- GET /threads/{thread_id}/turns -----------------------------------------------------------


class ThreadTurn(Contract):
    """One stored turn of a thread, as the page shows earlier conversation."""

    session_id: SessionId
    client_turn_id: Identifier
    user_text: str
    assistant_text: str
    started_at: datetime | None = None
    recorded_at: datetime
    route: Route


class ThreadTurnsReply(Contract):
    """A page of a thread's stored turns, oldest first within the page.

    Pages go back in time: pass ``before`` from one reply to get the page before it; None when
    this page reaches the start of the thread.
    """

    thread_id: Identifier
    turns: list[ThreadTurn]
    before: str | None = None


# -- POST /memory/erase -----------------------------------------------------------------------

ERASE_CONFIRMATION: Final = "erase everything"


class EraseRequest(Contract):
    """Forget everything kept for the token's owner: its user id, else its thread."""

    confirm: Literal["erase everything"]
    """The exact words, so an erasure is never an accident."""


class EraseReply(Contract):
    """What was erased, by kind; the crisis log keeps no identity and is not touched."""

    owner: Literal["user", "thread"]
    erased: dict[str, int]
    """Rows removed per kind (turns, facts, session summaries, rules, finalizations...)."""
