"""Every NATS subject, stream and durable consumer name, versioned under ``opencouch.v1``.

A breaking change to a message gets a new version root; both can run side by side.
"""

from __future__ import annotations

from typing import Final

ROOT: Final = "opencouch.v1"

# Request/reply services (nats.micro); each is served by exactly one owner service.
TOOLS_PREFIX: Final = f"{ROOT}.tools"
MEMORY_CONTEXT: Final = f"{ROOT}.memory.context"
MEMORY_SESSION_TRANSCRIPT: Final = f"{ROOT}.memory.session_transcript"
MEMORY_SESSION_COUNTS: Final = f"{ROOT}.memory.session_counts"
MEMORY_THREAD_TURNS: Final = f"{ROOT}.memory.thread_turns"
MEMORY_COMMIT_CANDIDATES: Final = f"{ROOT}.memory.commit_candidates"
MEMORY_ERASE: Final = f"{ROOT}.memory.erase"
FINALIZER_STATUS: Final = f"{ROOT}.finalizer.status"

# Core NATS (no stream keeps it): incognito user speech for the crisis classifier.
CRISIS_SCREEN: Final = f"{ROOT}.crisis.screen"
CRISIS_SCREEN_QUEUE: Final = "tools-crisis-screen"
# Core NATS: a voice session closed (any mode), so its owners drop their scratch state now.
SESSION_CLOSED: Final = f"{ROOT}.sessions.closed"
SESSION_CLOSED_QUEUE: Final = "tools-session-closed"

# Core NATS: a gateway process asked whether it still runs a tool call it claimed
# (``RunningCallQuery``), by another that got a replay of it: one subject per process.
RUNNING_CALLS_PREFIX: Final = f"{ROOT}.gateway.running"

# Core NATS: a session's finalization result (``SessionFinalized``, its arc with it), for a
# gateway waiting on the session's /end (one subject per session). No stream keeps it: the arc
# is the finalizer's to keep for its retention, and memory's, not the events stream's for 30
# days.
SESSION_FINALIZED_PREFIX: Final = f"{ROOT}.finalized"

# Core NATS: an owner says it still holds a request (``HeldNote``), to the subject the caller
# named in the request's ``Opencouch-Held-Notes`` header: one per request, under its caller's.
HELD_NOTES_PREFIX: Final = f"{ROOT}.held"

# JetStream: one stream holds every durable event.
EVENTS_PREFIX: Final = f"{ROOT}.events"
EVENTS_STREAM: Final = "OPENCOUCH_V1_EVENTS"
TURN_RECORDED: Final = f"{EVENTS_PREFIX}.turn_recorded"
TURN_CLASSIFIED: Final = f"{EVENTS_PREFIX}.turn_classified"
TOOL_ACTIVITY: Final = f"{EVENTS_PREFIX}.tool_activity"
SESSION_ENDED: Final = f"{EVENTS_PREFIX}.session_ended"
OWNER_ERASED: Final = f"{EVENTS_PREFIX}.owner_erased"
# Where results were published before they left the stream: it may still hold some until
# they age out, and an erasure still looks there.
STORED_SESSION_FINALIZED_PREFIX: Final = f"{EVENTS_PREFIX}.session_finalized"

# Dead letters: events a consumer could not handle, kept (no age limit) until replayed.
DEAD_LETTERS_PREFIX: Final = f"{ROOT}.dead_letters"
DEAD_LETTERS_STREAM: Final = "OPENCOUCH_V1_DEAD_LETTERS"

# Durable consumers; replicas of a service share one, so each message goes to one replica.
MEMORY_TURNS_CONSUMER: Final = "memory-turns"
MEMORY_CLASSIFICATIONS_CONSUMER: Final = "memory-turn-classifications"
FINALIZER_SESSION_END_CONSUMER: Final = "finalizer-session-end"
TOOLS_CRISIS_CONSUMER: Final = "tools-crisis-classifier"
TOOLS_ERASURE_CONSUMER: Final = "tools-erasure"
FINALIZER_ERASURE_CONSUMER: Final = "finalizer-erasure"

# The consumers that must have read an event before it may be purged from the stream ahead of
# its age: a reader not created yet (its service not started for the first time) still counts.
EVENT_READERS: Final[dict[str, tuple[str, ...]]] = {
    TURN_RECORDED: (MEMORY_TURNS_CONSUMER, TOOLS_CRISIS_CONSUMER),
}

# Service names as nats.micro announces them ($SRV.PING.<name>).
TOOLS_SERVICE: Final = "opencouch-tools"
MEMORY_SERVICE: Final = "opencouch-memory"
FINALIZER_SERVICE: Final = "opencouch-finalizer"


def tool_subject(tool_name: str) -> str:
    """The subject a tool call is sent on; its owner service serves it."""
    return f"{TOOLS_PREFIX}.{tool_name}"


def held_notes(caller: str, request: str) -> str:
    """Where the owner of one request says it still holds it: ``caller`` names the instance
    that waits (subscribed to ``held_notes(caller, "*")``), ``request`` the request."""
    return f"{HELD_NOTES_PREFIX}.{caller}.{request}"


def running_calls(gateway: str) -> str:
    """Where one gateway process (``gateway``, its instance id) answers whether it still runs
    a tool call it claimed."""
    return f"{RUNNING_CALLS_PREFIX}.{gateway}"


def dead_letters(durable: str) -> str:
    """The subject the dead letters of one durable consumer are kept on."""
    return f"{DEAD_LETTERS_PREFIX}.{durable}"


def session_finalized(session_id: str) -> str:
    """The (core NATS) subject a session's finalization result is published on."""
    return f"{SESSION_FINALIZED_PREFIX}.{session_id}"


def stored_session_finalized(session_id: str) -> str:
    """Where the events stream may still hold a result published before it left the stream."""
    return f"{STORED_SESSION_FINALIZED_PREFIX}.{session_id}"
