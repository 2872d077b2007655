"""The finalizer's NATS service and its record of a session's finalization."""

from __future__ import annotations

from datetime import datetime

from opencouch.contracts.common import Contract, Identifier, SessionId
from opencouch.contracts.voice_api import FinalizationStatus


class FinalizationRecord(Contract):
    """What finalizing a session produced, or how far it got."""

    session_id: SessionId
    thread_id: Identifier
    status: FinalizationStatus
    turn_count: int = 0
    summary: str | None = None
    themes: list[str] = []
    mood_opened: str | None = None
    mood_closed: str | None = None
    open_loops: list[str] = []
    resolved_threads: list[str] = []
    detail: str = ""
    updated_at: datetime


class FinalizationStatusRequest(Contract):
    """Ask for a session's finalization."""

    session_id: SessionId


class FinalizationStatusReply(Contract):
    """The record, or None when the finalizer has not seen the session end yet."""

    record: FinalizationRecord | None
