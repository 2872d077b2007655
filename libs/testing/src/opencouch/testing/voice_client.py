"""A protocol-level client of the voice API, as the browser uses it: session, tools, turns, end.

It keeps the voice-session token from ``/session`` and sends it with every later call. Tests,
load generators and scripts use it instead of hand-building requests; each method returns the
raw ``httpx.Response`` so a caller can assert on refusals too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/voice/realtime"


@dataclass
class VoiceClient:
    """One browser's view of one voice session at a time."""

    http: httpx.Client
    session: dict[str, Any] = field(default_factory=dict)
    thread_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The current session's token."""
        value: str = self.session["token"]
        return value

    @property
    def session_id(self) -> str:
        """The current session's id."""
        value: str = self.session["session_id"]
        return value

    def auth(self, token: str | None = None) -> dict[str, str]:
        """The ``Authorization`` header for ``token`` (default: the current session's)."""
        return {"Authorization": f"Bearer {token or self.token}"}

    def start(self, thread_id: str, **body: Any) -> httpx.Response:
        """``POST /session``; on success it becomes the current session.

        The thread secret an anonymous thread was bound to is kept and sent again, as the page
        keeps it in localStorage.
        """
        payload = {"thread_id": thread_id, **body}
        if thread_id in self.thread_secrets and "thread_secret" not in body:
            payload["thread_secret"] = self.thread_secrets[thread_id]
        reply = self.http.post(f"{API}/session", json=payload)
        if reply.status_code == 200:
            self.session = reply.json()
            if self.session.get("thread_secret"):
                self.thread_secrets[thread_id] = self.session["thread_secret"]
        return reply

    def tool(
        self, tool_name: str, arguments: dict[str, Any] | None = None, **body: Any
    ) -> httpx.Response:
        """``POST /tools`` with a fresh ``call_id`` unless one is given."""
        payload = {"tool_name": tool_name, "arguments": arguments or {}, **body}
        payload.setdefault("call_id", f"call_{uuid.uuid4().hex[:16]}")
        return self.http.post(f"{API}/tools", json=payload, headers=self.auth())

    def turn(
        self, client_turn_id: str, user_text: str, assistant_text: str, **body: Any
    ) -> httpx.Response:
        """``POST /turn``."""
        payload = {
            "client_turn_id": client_turn_id,
            "user_text": user_text,
            "assistant_text": assistant_text,
            **body,
        }
        return self.http.post(f"{API}/turn", json=payload, headers=self.auth())

    def end(self, **body: Any) -> httpx.Response:
        """``POST /end``."""
        return self.http.post(f"{API}/end", json=body, headers=self.auth())

    def finalization(self) -> httpx.Response:
        """``GET /sessions/{id}/finalization``."""
        return self.http.get(f"{API}/sessions/{self.session_id}/finalization", headers=self.auth())
