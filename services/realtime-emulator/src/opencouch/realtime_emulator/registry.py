"""Live calls by id, and the logs of recently ended ones."""

from __future__ import annotations

from collections import deque

from .calls import Call

_ENDED_CALLS_KEPT = 200


class CallRegistry:
    """Live calls by id, and the logs of recently ended ones."""

    def __init__(self) -> None:
        self._live: dict[str, Call] = {}
        self._ended: deque[Call] = deque(maxlen=_ENDED_CALLS_KEPT)

    def add(self, call: Call) -> None:
        """Track a new call until it ends."""
        self._live[call.id] = call
        call.on_end(self._ended_call)

    def _ended_call(self, call: Call) -> None:
        self._live.pop(call.id, None)
        self._ended.append(call)

    def live(self, call_id: str) -> Call | None:
        """A call that has not ended."""
        return self._live.get(call_id)

    def find(self, call_or_session_id: str) -> Call | None:
        """A live or recently ended call, by call id or session id."""
        for call in self.all():
            if call_or_session_id in (call.id, call.session.get("id")):
                return call
        return None

    def all(self) -> list[Call]:
        """Live calls first, then recently ended ones."""
        return [*self._live.values(), *reversed(self._ended)]

    async def end_all(self) -> None:
        """End every live call (shutdown)."""
        for call in list(self._live.values()):
            await call.end("server_shutdown")
