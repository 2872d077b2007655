"""Test support shipped with the web client: a small fake of the public voice API.

Browser tests of the page's own behaviour run against it: it checks every body against the real
contracts (``opencouch.contracts.voice_api``) and the voice-session token on every call, mints
real client secrets from a real Realtime emulator so the page's WebRTC call is real, answers
tools with canned outputs, and records what the page sent. Knobs let a test make ``/turn``
fail, a tool fail or slow, or finalization pending. The end-to-end tests run the real gateway.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.realtime import (
    AudioConfig,
    AudioOutputConfig,
    ClientSecret,
    RealtimeSessionConfig,
)
from opencouch.contracts.tools import TOOL_CATALOG
from opencouch.contracts.voice_api import (
    PROPOSED_THREAD_SECRET_MIN_LENGTH,
    EndReply,
    EndRequest,
    EraseReply,
    EraseRequest,
    FinalizationStatus,
    SessionReply,
    SessionRequest,
    ThreadTurn,
    ThreadTurnsReply,
    ToolsReply,
    ToolsRequest,
    TurnReply,
    TurnRequest,
)

API = "/api/voice/realtime"
EMULATOR_KEY = "sk-emulator-local"

CANNED_OUTPUTS: dict[str, dict[str, Any]] = {
    "show_memory_status": {"memory_enabled": False, "mode": "incognito", "saved": []},
    "wait_for_user": {"status": "waiting", "should_respond": False},
    "lookup_crisis_resources": {
        "status": "found",
        "location_status": "provided",
        "location": "Canada",
        "resources": [
            {
                "name": "9-8-8 Suicide Crisis Helpline",
                "region": "Canada",
                "phone": "9-8-8",
                "url": "https://988.ca",
                "source_url": "https://988.ca",
                "verified_on": "2026-01-01",
            },
            {
                "name": "<b>Not markup</b>",
                "region": "Anywhere",
                "url": "javascript:alert(1)",
                "source_url": "https://example.org",
                "verified_on": "2026-01-01",
            },
        ],
        "guidance": "Name only these lines.",
    },
}


def error(status: int, code: str, message: str, retry_after: int | None = None) -> JSONResponse:
    """The house error body."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


@dataclass
class FakeSession:
    """One voice session the fake issued."""

    session_id: str
    token: str
    thread_id: str
    memory_mode: MemoryMode
    ended: bool = False
    saved: bool = True
    """False once ended with ``save: false``: finalized with no summary, as the gateway does."""
    end_polls: int = 0


@dataclass
class FakeGateway:
    """The fake's state: what it issued, what it received, and the knobs tests turn."""

    emulator_url: str
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    thread_secrets: dict[str, str] = field(default_factory=dict)
    session_requests: list[dict[str, Any]] = field(default_factory=list)
    turn_attempts: list[dict[str, Any]] = field(default_factory=list)
    turns: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Acknowledged turns by (session id, client_turn_id), in order."""
    tool_requests: list[dict[str, Any]] = field(default_factory=list)
    tool_replies: dict[tuple[str, str], ToolsReply] = field(default_factory=dict)
    ends: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)
    traceparents: list[str] = field(default_factory=list)
    client_secrets: list[str] = field(default_factory=list)
    # Knobs.
    failing_turns: int = 0
    """Answer this many coming /turn calls with 503 (Retry-After: 1)."""
    tool_delays: dict[str, float] = field(default_factory=dict)
    tool_failures: dict[str, str] = field(default_factory=dict)
    """Tool name -> error code its output carries (ok=false)."""
    pending_polls: int = 0
    """How many finalization polls answer 202 before the final reply."""
    session_failure: tuple[int, str, str] | None = None
    """(status, code, message) every /session answers with, when set."""
    lost_session_replies: int = 0
    """This many coming /session calls do all their work (the thread bound, the session made),
    then answer 504, as a proxy in front that gave up waiting would: the reply is lost."""
    history_page: int = 50
    """Stored turns per page of the thread's history."""

    def reset(self) -> None:
        """Forget everything but the emulator's address."""
        self.__init__(self.emulator_url)  # type: ignore[misc]

    def _session(self, request: Request) -> FakeSession | JSONResponse:
        self.traceparents.append(request.headers.get("traceparent", ""))
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return error(401, "token_missing", "No token.")
        for session in self.sessions.values():
            if session.token == auth.removeprefix("Bearer "):
                return session
        return error(401, "token_invalid", "Unknown token.")

    async def create_session(self, request: Request) -> JSONResponse:
        self.traceparents.append(request.headers.get("traceparent", ""))
        raw = await request.json()
        self.session_requests.append(raw)
        if self.session_failure is not None:
            return error(*self.session_failure, retry_after=5)
        try:
            body = SessionRequest.model_validate(raw)
        except ValidationError as problem:
            return error(422, "invalid_request", str(problem)[:400])
        thread_secret = None
        if body.thread_id in self.thread_secrets:
            if body.thread_secret != self.thread_secrets[body.thread_id]:
                return error(403, "thread_forbidden", "This conversation needs its thread secret.")
        else:
            # As the gateway: a long enough secret the page made is the one bound.
            proposed = body.thread_secret or ""
            if len(proposed) < PROPOSED_THREAD_SECRET_MIN_LENGTH:
                proposed = "ts_" + secrets.token_hex(16)
            thread_secret = self.thread_secrets[body.thread_id] = proposed
        config = RealtimeSessionConfig(
            model="gpt-realtime",
            instructions="Be brief and kind.",
            audio=AudioConfig(output=AudioOutputConfig(voice=body.assistant_voice)),
            tools=[
                spec.realtime_tool()
                for spec in TOOL_CATALOG.values()
                if spec.offered_in(body.memory_mode)
            ],
        )
        minted = await asyncio.to_thread(self._mint, config)
        self.client_secrets.append(minted["value"])
        session = FakeSession(
            session_id="vs_" + secrets.token_hex(16),
            token="tok_" + secrets.token_urlsafe(24),
            thread_id=body.thread_id,
            memory_mode=body.memory_mode,
        )
        self.sessions[session.session_id] = session
        if self.lost_session_replies:
            self.lost_session_replies -= 1
            return error(504, "gateway_timeout", "A proxy gave up waiting; the work was done.")
        now = int(time.time())
        reply = SessionReply(
            session_id=session.session_id,
            thread_id=body.thread_id,
            user_id=body.user_id,
            memory_mode=body.memory_mode,
            token=session.token,
            token_expires_at=now + 4500,
            session_expires_at=now + 3600,
            thread_secret=thread_secret,
            client_secret=ClientSecret(value=minted["value"], expires_at=minted["expires_at"]),
            realtime_calls_url=f"{self.emulator_url}/v1/realtime/calls",
            session=config.model_copy(update={"instructions": None}),
        )
        return JSONResponse(reply.model_dump(mode="json", exclude_none=True))

    def _mint(self, config: RealtimeSessionConfig) -> dict[str, Any]:
        """A client secret from the emulator, as the gateway mints one."""
        body = {"session": config.model_dump(mode="json", exclude_none=True)}
        request = urllib.request.Request(
            f"{self.emulator_url}/v1/realtime/client_secrets",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {EMULATOR_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            minted: dict[str, Any] = json.load(reply)
            return minted

    async def tools(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        raw = await request.json()
        self.tool_requests.append(raw)
        try:
            body = ToolsRequest.model_validate(raw)
        except ValidationError as problem:
            return error(422, "invalid_request", str(problem)[:400])
        if body.call_id is None:
            return error(422, "call_id_missing", "A tool call needs its call_id.")
        replayed = self.tool_replies.get((session.session_id, body.call_id))
        if replayed is not None:
            return JSONResponse(replayed.model_dump(mode="json"))
        await asyncio.sleep(self.tool_delays.get(body.tool_name, 0))
        if body.tool_name in self.tool_failures:
            code = self.tool_failures[body.tool_name]
            reply = ToolsReply(
                output={"status": "error", "error": {"code": code, "message": "It failed."}},
                ok=False,
            )
        else:
            output = CANNED_OUTPUTS.get(body.tool_name, {"status": "ok"})
            reply = ToolsReply(output=output)
        self.tool_replies[(session.session_id, body.call_id)] = reply
        return JSONResponse(reply.model_dump(mode="json"))

    async def turn(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        raw = await request.json()
        self.turn_attempts.append(raw)
        try:
            body = TurnRequest.model_validate(raw)
        except ValidationError as problem:
            return error(422, "invalid_request", str(problem)[:400])
        key = (session.session_id, body.client_turn_id)
        if key not in self.turns:
            if session.ended:
                return error(409, "session_ended", "This voice session has ended.")
            if self.failing_turns > 0:
                self.failing_turns -= 1
                return error(503, "service_unavailable", "Try again.", retry_after=1)
            self.turns[key] = raw
        recorded = session.memory_mode is MemoryMode.PERSISTENT
        count = 2 * len([k for k in self.turns if k[0] == session.session_id])
        reply = TurnReply(recorded=recorded, thread_id=session.thread_id, message_count=count)
        return JSONResponse(reply.model_dump(mode="json"))

    def _end_reply(self, session: FakeSession) -> EndReply:
        if session.memory_mode is MemoryMode.INCOGNITO:
            return EndReply(
                finalized=False,
                status=None,
                session_id=session.session_id,
                thread_id=session.thread_id,
                detail="Incognito session: nothing was kept.",
            )
        if session.end_polls < self.pending_polls:
            return EndReply(
                finalized=False,
                status=FinalizationStatus.IN_PROGRESS,
                session_id=session.session_id,
                thread_id=session.thread_id,
                detail="Being finalized.",
            )
        turns = [k for k in self.turns if k[0] == session.session_id]
        arc: dict[str, Any] = {
            "detail": "Finalized.",
            "summary": "We talked about a long day and found one small next step.",
            "themes": ["work stress", "rest"],
            "mood_opened": "tense",
            "mood_closed": "calmer",
            "memories_committed": 1,
        }
        if not session.saved:
            arc = {"detail": "Ended without saving: no summary and no new memories were kept."}
        return EndReply(
            finalized=True,
            status=FinalizationStatus.COMPLETED,
            session_id=session.session_id,
            thread_id=session.thread_id,
            turn_count=len(turns),
            finalized_at=datetime.now(UTC),
            **arc,
        )

    async def end(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        raw = await request.json()
        acknowledged = len([k for k in self.turns if k[0] == session.session_id])
        self.ends.append(
            {"session_id": session.session_id, "turns_acknowledged": acknowledged, **raw}
        )
        try:
            EndRequest.model_validate(raw)
        except ValidationError as problem:
            return error(422, "invalid_request", str(problem)[:400])
        session.ended = True
        session.saved = raw.get("save") is not False
        if raw.get("continued") and session.memory_mode is MemoryMode.PERSISTENT:
            # As the gateway does: closed now, finalized by the conversation's last /end.
            deferred = EndReply(
                finalized=False,
                status=FinalizationStatus.PENDING,
                session_id=session.session_id,
                thread_id=session.thread_id,
                detail="Closed; finalized when the conversation ends.",
            )
            return JSONResponse(deferred.model_dump(mode="json"), status_code=202)
        reply = self._end_reply(session)
        return JSONResponse(
            reply.model_dump(mode="json"), status_code=200 if reply.status != "in_progress" else 202
        )

    async def finalization(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        session.end_polls += 1
        reply = self._end_reply(session)
        return JSONResponse(
            reply.model_dump(mode="json"), status_code=200 if reply.status != "in_progress" else 202
        )

    async def thread_turns(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        thread_id = request.path_params["thread_id"]
        if thread_id != session.thread_id:
            return error(403, "token_mismatch", "Another thread.")
        stored = [
            ThreadTurn(
                session_id=session_id,
                client_turn_id=body["client_turn_id"],
                user_text=body["user_text"],
                assistant_text=body["assistant_text"],
                recorded_at=datetime.now(UTC),
                route="therapeutic",
            )
            for (session_id, _), body in self.turns.items()
            if self.sessions[session_id].thread_id == thread_id
            and self.sessions[session_id].memory_mode is MemoryMode.PERSISTENT
        ]
        # Pages go back in time: the newest page first, `before` names where the next one ends.
        end = int(request.query_params.get("before", len(stored)))
        start = max(0, end - self.history_page)
        reply = ThreadTurnsReply(
            thread_id=thread_id, turns=stored[start:end], before=str(start) if start else None
        )
        return JSONResponse(reply.model_dump(mode="json"))

    async def erase(self, request: Request) -> JSONResponse:
        session = self._session(request)
        if isinstance(session, JSONResponse):
            return session
        raw = await request.json()
        self.erasures.append(raw)
        EraseRequest.model_validate(raw)
        gone = [k for k in self.turns if self.sessions[k[0]].thread_id == session.thread_id]
        for key in gone:
            del self.turns[key]
        reply = EraseReply(owner="thread", erased={"turns": len(gone)})
        return JSONResponse(reply.model_dump(mode="json"))

    def app(self, web_origin: str) -> Starlette:
        """The ASGI app, allowing the web client's origin as the real gateway does."""
        return Starlette(
            routes=[
                Route(f"{API}/session", self.create_session, methods=["POST"]),
                Route(f"{API}/tools", self.tools, methods=["POST"]),
                Route(f"{API}/turn", self.turn, methods=["POST"]),
                Route(f"{API}/end", self.end, methods=["POST"]),
                Route(f"{API}/sessions/{{session_id}}/finalization", self.finalization),
                Route(f"{API}/threads/{{thread_id}}/turns", self.thread_turns),
                Route(f"{API}/memory/erase", self.erase, methods=["POST"]),
            ],
            middleware=[
                Middleware(
                    CORSMiddleware,
                    allow_origins=[web_origin],
                    allow_methods=["GET", "POST"],
                    allow_headers=["Content-Type", "Authorization", "traceparent", "tracestate"],
                    expose_headers=["Retry-After"],
                )
            ],
        )


# -- driving the page (Playwright's sync API) -------------------------------------------------

PAGE_WAIT_MS = 30_000


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"never became true: {value!r}"
            return value
        time.sleep(0.1)


def ready(page: Any) -> None:
    """Wait until the page's script has filled the setup form from storage and enabled it.

    The page's load event comes before that (the script first fetches its settings), so what
    the form shows is only worth reading, and Tab and Enter only reach it, after this.
    """
    page.wait_for_selector("#setup-fields:not([disabled])", timeout=PAGE_WAIT_MS)


def open_page(page: Any, url: str) -> None:
    """Go to a page of the client and wait until its setup form is ready."""
    page.goto(url)
    ready(page)


def reload(page: Any) -> None:
    """Reload the page and wait until its setup form is ready again."""
    page.reload()
    ready(page)


def connect(page: Any, web_url: str, *, persistent: bool = False, path: str = "/voice") -> None:
    """Open a page of the client, choose the memory mode, connect, wait until connected."""
    open_page(page, f"{web_url}{path}")
    if persistent and path == "/voice":
        page.check("#memory-persistent")
    elif persistent:
        page.select_option("#memory-mode", "persistent")
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=PAGE_WAIT_MS)


def say(page: Any, text: str) -> None:
    """Type a message, as a person who cannot or would rather not speak."""
    page.fill("#type-text", text)
    page.press("#type-text", "Enter")


def closed_turns(page: Any, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` turns are complete in the transcript; every turn shown, in order."""
    page.wait_for_function(
        "n => document.querySelectorAll('#transcript .turn[data-state=\"completed\"]').length >= n",
        arg=count,
        timeout=PAGE_WAIT_MS,
    )
    shown: list[dict[str, Any]] = page.eval_on_selector_all(
        "#transcript .turn",
        """items => items.map(item => ({
            id: item.dataset.turnId,
            user: [...item.querySelectorAll('.user .said')].map(n => n.textContent).join(' '),
            assistant: [...item.querySelectorAll('.assistant .said')].map(n => n.textContent),
            state: item.dataset.state,
        }))""",
    )
    return shown


def outbox_waiting(page: Any) -> None:
    """Wait until the page says a turn is waiting in its outbox (its delivery failed)."""
    page.wait_for_function(
        "() => document.getElementById('outbox-status').textContent.includes('waiting')",
        timeout=PAGE_WAIT_MS,
    )


def record_states(page: Any) -> Callable[[], list[str]]:
    """Start recording the connection states the page passes through; returns a reader."""
    page.evaluate(
        """() => {
            const node = document.getElementById('connection-state');
            window.seenStates = [];
            new MutationObserver(() => window.seenStates.push(node.dataset.state))
                .observe(node, {attributes: true, attributeFilter: ['data-state']});
        }"""
    )

    def seen() -> list[str]:
        states: list[str] = page.evaluate("() => window.seenStates")
        return states

    return seen
