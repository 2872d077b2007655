"""The memory service's NATS requests and replies, and its tool outputs.

Durable memory belongs to an owner: the user when a user id is known, else the thread. It has
three layers: facts the user stated about themselves, summaries of past sessions, and rules
(response preferences and the proactive-recall flag). Every item carries its source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, model_validator

from opencouch.contracts.common import Contract, Identifier, MemoryMode, SessionId, StorableText
from opencouch.contracts.events import CrisisLevel
from opencouch.contracts.voice_api import Route, TurnOutcome, TurnResponseStyle, TurnToolCall

MEMORY_CONTEXT_MAX_CHARS: Final = 2000
SUMMARY_MAX_CHARS: Final = 600
THREAD_PAGE_MAX_TURNS: Final = 100
SESSION_PAGE_MAX_TURNS: Final = 200
TRANSCRIPT_PAGE_MAX_BYTES: Final = 512 * 1024
ERASE_MAX_KNOWN: Final = 64


class MemoryContextRequest(Contract):
    """Ask what a new voice session may know privately about its owner."""

    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode


class MemoryContextReply(Contract):
    """Private context for the instructions; empty in incognito. Never transcript text."""

    memory_mode: MemoryMode
    context_text: Annotated[str, Field(max_length=MEMORY_CONTEXT_MAX_CHARS)] = ""
    proactive_recall_enabled: bool = False
    message_count: int = 0
    """Messages already stored in the thread (two per turn)."""


# -- transcripts ------------------------------------------------------------------------------


ThreadCursor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""An opaque position in a thread's (or a session's) turns, as a previous page handed it out."""


class SessionTurnCountsRequest(Contract):
    """Ask how far memory has got with one voice session: counts only, never text."""

    session_id: SessionId


class SessionTurnCountsReply(Contract):
    """One COUNT query over the session's stored turns and their crisis levels."""

    session_id: SessionId
    thread_id: Identifier | None
    """None while no turn of the session is stored."""
    stored_turns: int
    classified_turns: int
    """How many of the stored turns have a crisis level yet."""
    peak_crisis_level: CrisisLevel | None
    """The highest level among the stored turns' classifications; None when none is."""
    first_spoken_at: datetime | None = None
    """When the first stored turn was spoken (or recorded)."""
    last_recorded_at: datetime | None = None
    """When the last stored turn was recorded."""


class SessionTranscriptRequest(Contract):
    """Ask for a page of one voice session's stored turns, in speech order.

    Without ``after`` the first page; with it, the page after the one that handed it out.
    """

    session_id: SessionId
    after: ThreadCursor | None = None
    limit: Annotated[int, Field(ge=1, le=SESSION_PAGE_MAX_TURNS)] = SESSION_PAGE_MAX_TURNS


class StoredTurn(Contract):
    """One turn as memory stored it."""

    session_id: SessionId
    client_turn_id: Identifier
    user_text: str
    assistant_text: str
    route: Route
    response_style: TurnResponseStyle
    tool_calls: list[TurnToolCall] = []
    outcome: TurnOutcome
    started_at: datetime | None = None
    """When the user started speaking, if the browser said; turns are ordered by it."""
    recorded_at: datetime


class SessionTranscriptReply(Contract):
    """A page of the session's turns in speech order (``started_at``, else ``recorded_at``).

    A page holds at most ``limit`` turns and stops early at about
    ``TRANSCRIPT_PAGE_MAX_BYTES``, so a reply stays well under NATS's 1 MB payload limit.
    """

    session_id: SessionId
    thread_id: Identifier | None
    turns: list[StoredTurn]
    after: ThreadCursor | None = None
    """Pass as ``after`` for the next page; None when this page reaches the last turn."""
    classified_turns: int = 0
    """How many of the session's turns have a crisis level yet."""
    peak_crisis_level: CrisisLevel | None = None
    """The highest crisis level of the session's classified turns; None when none is."""


class ThreadHistoryRequest(Contract):
    """Ask for a page of a thread's stored turns.

    Pages run backwards in time: without ``before`` the newest page; with it, the page just
    older than the one that handed out the cursor.
    """

    thread_id: Identifier
    before: ThreadCursor | None = None
    limit: Annotated[int, Field(ge=1, le=THREAD_PAGE_MAX_TURNS)] = 50


class ThreadHistoryReply(Contract):
    """A page of turns, oldest first within the page, and the cursor of the older page.

    Shaped like the gateway's ``voice_api.ThreadTurnsReply``, which it maps to one for one.
    """

    thread_id: Identifier
    turns: list[StoredTurn]
    before: ThreadCursor | None = None
    """Pass as ``before`` for the previous page; None when this page reaches the start."""


# -- memory candidates and the finalizer's commit ---------------------------------------------


class SessionSummary(Contract):
    """A finished session's summary, kept as episodic memory of its owner."""

    summary: Annotated[StorableText, StringConstraints(min_length=1, max_length=SUMMARY_MAX_CHARS)]
    themes: Annotated[
        list[Annotated[StorableText, StringConstraints(min_length=1, max_length=60)]],
        Field(max_length=3),
    ] = []
    ended_at: datetime


class CommitMemoryCandidatesRequest(Contract):
    """Commit the memory candidates held for a session (sent by the finalizer at its end).

    Idempotent per session: a second commit of the same session commits nothing more.
    ``save=False`` (the user ended without saving) drops the candidates and commits nothing.
    """

    session_id: SessionId
    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode
    save: bool = True
    summary: SessionSummary | None = None


class CommitMemoryCandidatesReply(Contract):
    """What the commit kept; ``already_committed`` when the session was committed before."""

    session_id: SessionId
    facts_committed: int
    summary_stored: bool
    already_committed: bool = False
    discarded: int = 0
    """Candidates dropped: ``save=False``, or facts the owner already had."""


# -- forgetting everything --------------------------------------------------------------------


class EraseMemoryRequest(Contract):
    """Erase every durable memory and transcript of a user, or of one thread.

    Exactly one of ``user_id`` and ``thread_id``. The gateway asks the user to confirm first;
    ``confirmed`` says it did. Memory erases its own tables, then the copies elsewhere, then
    publishes ``OwnerErased`` for every other service; an erasure interrupted after memory's
    commit is finished by a retry, or by memory's sweep if nobody retries.
    """

    user_id: Identifier | None = None
    thread_id: Identifier | None = None
    confirmed: Literal[True]
    session_ids: Annotated[list[SessionId], Field(max_length=ERASE_MAX_KNOWN)] = []
    """Sessions of the subject the caller knows of, though memory may hold nothing of them yet
    (the session asking, its turns still on their way): erased and announced with the rest."""
    thread_ids: Annotated[list[Identifier], Field(max_length=ERASE_MAX_KNOWN)] = []
    """Threads of the subject the caller knows of: announced with the rest."""

    @model_validator(mode="after")
    def _one_subject(self) -> EraseMemoryRequest:
        if (self.user_id is None) == (self.thread_id is None):
            raise ValueError("give exactly one of user_id and thread_id")
        return self


class EraseMemoryReply(Contract):
    """How many rows each memory table lost, and what else was cleared."""

    erasure_id: Identifier
    """The id of the ``OwnerErased`` event memory published."""
    erased_rows: dict[str, int]
    """Rows deleted per table of the memory schema."""
    sessions: int
    """Voice sessions whose transcripts were erased."""
    session_ids: list[SessionId] = []
    """Those sessions (and the ones the caller named, and those of an earlier unfinished try):
    the ones ``OwnerErased`` names, so the caller can forget what it keeps of them."""
    thread_ids: list[Identifier] = []
    """The threads involved (the user's, or the one erased), as ``OwnerErased`` names them."""
    stream_messages: int
    """Turn messages deleted from JetStream (stored copies and dead letters)."""
    pending_candidates: int
    """Unsaved memory candidates dropped from Redis."""


# -- memory tool outputs ------------------------------------------------------------------------

MemoryKind = Literal["fact", "session", "rule"]


class MemorySource(Contract):
    """Where a memory came from, so the user can ask."""

    session_id: SessionId | None = None
    recorded_at: datetime


class MemoryItem(Contract):
    """One memory as the user is shown it, with where it came from."""

    kind: MemoryKind
    index: int | None
    """1-based within its kind, newest first, as ``show_saved_memory`` numbers it; None for a
    fact from this conversation that is held until it ends and is not saved yet."""
    text: str
    source: MemorySource


class MemoryStatusOutput(Contract):
    """Whether memory is on in this session, and what it keeps."""

    status: Literal["ok"] = "ok"
    memory_mode: MemoryMode
    memory_enabled: bool
    proactive_recall_enabled: bool
    kept: list[str]
    saved_facts: int = 0
    saved_sessions: int = 0
    saved_rules: int = 0
    summary: str


class SavedMemoryOutput(Contract):
    """What is saved for the owner, numbered per kind, newest first.

    Each list shows only its newest items; the totals count them all.
    """

    status: Literal["ok"] = "ok"
    facts: list[MemoryItem]
    sessions: list[MemoryItem]
    rules: list[MemoryItem]
    pending_facts: list[MemoryItem] = []
    """Facts from this conversation, saved when it ends unless the user deletes them first."""
    total_facts: int
    total_sessions: int
    total_rules: int
    proactive_recall_enabled: bool
    summary: str
    """What is kept, in a few plain sentences with the items' own words: the facts, the
    preferences and what this conversation will add, or that nothing is kept yet."""
    guidance: str


class RecallOutput(Contract):
    """Saved facts and session summaries relevant to a query, best match first."""

    status: Literal["found", "nothing_found"]
    items: list[MemoryItem]
    guidance: str


class MemoryChangeOutput(Contract):
    """A preference saved, or the recall flag set."""

    status: Literal["saved", "updated", "unchanged"]
    detail: str
    proactive_recall_enabled: bool | None = None


class DeletionOutput(Contract):
    """A deletion staged, listed as candidates, done or dropped."""

    status: Literal["staged", "ambiguous", "not_found", "deleted", "nothing_staged", "cancelled"]
    staged: MemoryItem | None = None
    candidates: list[MemoryItem] = []
    deleted: int = 0
    guidance: str
