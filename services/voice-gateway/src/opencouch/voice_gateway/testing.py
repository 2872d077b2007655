"""Test support shipped with the gateway: run it in process against real NATS, Redis and the
Realtime emulator, with its downstream services as small fakes of our own NATS interface.

A pytest plugin (the repo's root conftest loads it). Tool owners, memory and the finalizer are
served from a thread with its own event loop: tests using these check the gateway's policy, not
the owners' (the end-to-end tests in tests/ run every real service).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.care import WaitForUserOutput
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.finalizer import FinalizationStatusReply, FinalizationStatusRequest
from opencouch.contracts.memory import (
    EraseMemoryReply,
    EraseMemoryRequest,
    MemoryContextReply,
    MemoryContextRequest,
    MemoryStatusOutput,
    StoredTurn,
    ThreadHistoryReply,
    ThreadHistoryRequest,
)
from opencouch.contracts.tools import (
    TOOL_CATALOG,
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
    ToolOwner,
    tools_owned_by,
)
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.http import server_config
from opencouch.runtime.messaging import flushed
from opencouch.runtime.tools import ToolHandler, tool_endpoints
from opencouch.testing.processes import ServiceProcess, http_ok
from opencouch.testing.processes import start_service as start_process
from opencouch.testing.servers import (
    ServerUnavailableError,
    free_port,
    nats_server,
    served_in_thread,
)
from opencouch.voice_gateway.app import create_app
from opencouch.voice_gateway.served_tools import OWNER_SERVICES
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.tokens import TokenSigner
from opencouch.voice_gateway.voice_sessions import CallLimit, CallLimits, VoiceSessionStore

API = "/api/voice/realtime"
SLOW_TOOL = "answer_grounded_lookup"
UNAVAILABLE_TOOL = "cancel_memory_deletion"
"""The fake owners answer it as an owner whose store is down does: ``tool_unavailable``."""


class FakeOwners:
    """Tools, memory and finalizer as thin fakes; counts every tool call that reached them.

    The fakes live for the whole test session, and a pure tool is asked before its claim is
    decided, so a refused call of one test may still reach them during the next: a test counts
    the calls of its own voice session (``calls_in``), never the running total."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.calls: Counter[str] = Counter()
        self.session_calls: Counter[tuple[str, str | None, str]] = Counter()
        self.erasures: list[EraseMemoryRequest] = []
        self.kept_turns: dict[str, list[StoredTurn]] = {}
        """Turns memory keeps, by thread (none unless a test puts some here)."""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeOwners:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("fake owners did not start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def calls_in(self, session: dict[str, Any], name: str, call_id: str | None = None) -> int:
        """How many calls of ``name`` (with ``call_id``, if given) came from the voice session
        ``open_session`` returned."""
        return sum(
            count
            for (session_id, called_id, called), count in list(self.session_calls.items())
            if session_id == session["session_id"]
            and called == name
            and call_id in (None, called_id)
        )

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    def _handler(self, name: str) -> ToolHandler:
        async def handle(_: Any, context: ToolCallContext) -> Any:
            self.calls[name] += 1
            self.session_calls[context.session_id, context.call_id, name] += 1
            if name == "wait_for_user":
                return WaitForUserOutput()
            if name == "show_memory_status":
                return MemoryStatusOutput(
                    memory_mode=context.memory_mode,
                    memory_enabled=context.memory_mode is MemoryMode.PERSISTENT,
                    proactive_recall_enabled=False,
                    kept=[],
                    summary="fake",
                )
            if name == SLOW_TOOL:
                await asyncio.sleep(30)
            if name == UNAVAILABLE_TOOL:
                raise ServiceError(ErrorCode.TOOL_UNAVAILABLE, f"{name} is not available now.")
            raise ServiceError(ErrorCode.TOOL_FAILED, "not served by the fake")

        return handle

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        nc = await nats.connect(self.nats_url)

        async def memory_context(request: MemoryContextRequest) -> MemoryContextReply:
            return MemoryContextReply(
                memory_mode=request.memory_mode,
                context_text="User prefers short answers."
                if request.memory_mode == "persistent"
                else "",
            )

        async def finalizer_status(request: FinalizationStatusRequest) -> FinalizationStatusReply:
            return FinalizationStatusReply(record=None)

        async def thread_turns(request: ThreadHistoryRequest) -> ThreadHistoryReply:
            kept = self.kept_turns.get(request.thread_id, [])
            return ThreadHistoryReply(thread_id=request.thread_id, turns=kept[-request.limit :])

        async def erase(request: EraseMemoryRequest) -> EraseMemoryReply:
            self.erasures.append(request)
            # Memory names back the sessions it was told of, and announces the erasure.
            return EraseMemoryReply(
                erasure_id="er_fake",
                erased_rows={},
                sessions=len(request.session_ids),
                session_ids=request.session_ids,
                thread_ids=request.thread_ids,
                stream_messages=0,
                pending_candidates=0,
            )

        services = []
        extras: tuple[tuple[ToolOwner, str, list[Endpoint[Any, Any]]], ...] = (
            (ToolOwner.TOOLS, subjects.TOOLS_SERVICE, []),
            (
                ToolOwner.MEMORY,
                subjects.MEMORY_SERVICE,
                [
                    Endpoint(
                        "context", subjects.MEMORY_CONTEXT, MemoryContextRequest, memory_context
                    ),
                    Endpoint(
                        "thread_turns",
                        subjects.MEMORY_THREAD_TURNS,
                        ThreadHistoryRequest,
                        thread_turns,
                    ),
                    Endpoint("erase", subjects.MEMORY_ERASE, EraseMemoryRequest, erase),
                ],
            ),
        )
        for owner, name, extra in extras:
            handlers = {spec.name: self._handler(spec.name) for spec in tools_owned_by(owner)}
            services.append(
                await start_service(
                    nc,
                    name=name,
                    version="0.0.0",
                    description="fake",
                    endpoints=[*tool_endpoints(owner, handlers), *extra],
                )
            )
        services.append(
            await start_service(
                nc,
                name=subjects.FINALIZER_SERVICE,
                version="0.0.0",
                description="fake",
                endpoints=[
                    Endpoint(
                        "status",
                        subjects.FINALIZER_STATUS,
                        FinalizationStatusRequest,
                        finalizer_status,
                    )
                ],
            )
        )
        self._ready.set()
        await self._stop.wait()
        for service in services:
            await service.stop(grace=1)
        await nc.close()


@pytest.fixture(scope="session")
def gateway_nats_url() -> Iterator[str]:
    """A NATS of the gateway tests' own: their fake owners must never answer real services."""
    try:
        with nats_server(private=True) as url:
            yield url
    except ServerUnavailableError as error:
        pytest.skip(f"NATS unavailable: {error}")


@pytest.fixture(scope="session")
def owners(gateway_nats_url: str) -> Iterator[FakeOwners]:
    with FakeOwners(gateway_nats_url) as running:
        yield running


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process: ServiceProcess = start_process(
        "realtime-emulator",
        "opencouch.realtime_emulator",
        {"REALTIME_EMULATOR_PORT": str(port), "REALTIME_EMULATOR_SPEECH": "tone"},
        Path(tmp_path_factory.mktemp("emulator")),
        http_ok(f"{url}/healthz"),
    )
    try:
        process.wait_healthy()
        yield url
    finally:
        process.stop()


GatewayFactory = Callable[..., TestClient]


def settings_for_tests(emulator_url: str, **overrides: Any) -> GatewaySettings:
    """Gateway settings for a test: short timeouts, limits that one test address won't hit."""
    defaults: dict[str, Any] = {
        "emulator_base_url": f"{emulator_url}/v1",
        "openai_api_key": None,
        "tool_timeout_seconds": 1.0,
        "end_wait_seconds": 0.5,
        # Redis outlives a test run: a sweeping gateway would end sessions of earlier runs in the
        # middle of another test. The sweep's own tests call it.
        "abandoned_sweep_seconds": 0,
        # Every test client comes from one address; tests of the limits set their own.
        "rate_limit_session_per_ip": "100000/minute",
        "rate_limit_calls_per_ip": "100000/minute",
    }
    return GatewaySettings(**{**defaults, **overrides})


@pytest.fixture
def make_gateway(
    gateway_nats_url: str, redis_url: str, emulator_url: str, owners: FakeOwners
) -> Iterator[GatewayFactory]:
    """Start a gateway with settings overrides; every one started is stopped after the test."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = settings_for_tests(
            emulator_url, **{"nats_url": gateway_nats_url, "redis_url": redis_url, **overrides}
        )
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@dataclass(frozen=True)
class LiveGateway:
    """A gateway served over real HTTP by uvicorn, as a browser or a fuzzer reaches it."""

    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def live_gateway(
    gateway_nats_url: str, redis_url: str, emulator_url: str, owners: FakeOwners
) -> Iterator[LiveGateway]:
    app = create_app(
        settings_for_tests(emulator_url, nats_url=gateway_nats_url, redis_url=redis_url)
    )
    with served_in_thread(server_config(app, host="127.0.0.1", port=free_port())) as url:
        yield LiveGateway(url, app)


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> TestClient:
    return make_gateway()


def unique(name: str) -> str:
    """Ids unique to this run: Redis outlives a test run."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def open_session(client: TestClient, **body: Any) -> dict[str, Any]:
    """POST /session for a fresh thread (unless given); asserts it worked."""
    body.setdefault("thread_id", unique("thread"))
    reply = client.post(f"{API}/session", json=body)
    assert reply.status_code == 200, reply.text
    session: dict[str, Any] = reply.json()
    return session


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['token']}"}


def session_store(redis: Redis) -> VoiceSessionStore:
    """A session store as the gateway builds one, with limits no test reaches by accident."""
    return VoiceSessionStore(
        redis,
        session_seconds=3600,
        grace_seconds=60,
        thread_binding_seconds=3600,
        call_output_seconds=3600,
        call_limits=CallLimits.uniform(CallLimit(calls=1000, window_seconds=60)),
    )


def token_started_ago(session: dict[str, Any], seconds: int, settings: GatewaySettings) -> str:
    """A token for ``session`` (persistent, anonymous) as if it had been issued ``seconds`` ago."""
    signer = TokenSigner(settings)
    claims = signer.verify(session["token"])
    token, _ = signer.issue(
        session_id=claims.session_id,
        thread_id=claims.thread_id,
        user_id=None,
        memory_mode=MemoryMode.PERSISTENT,
        now=int(time.time()) - seconds,
    )
    return token


class StandInOwner:
    """Serves one tool on the NATS at ``url`` as the tool's owner service does (so the gateway
    finds its owner running), answering after ``seconds``, or never when None. A context
    manager: it serves, from a thread of its own, for the block."""

    def __init__(self, url: str, tool_name: str, seconds: float | None) -> None:
        self.url = url
        self.asked = threading.Event()
        """Set once a call has reached the owner."""
        self.asks = 0
        """How many calls have reached it."""
        self._spec = TOOL_CATALOG[tool_name]
        self._seconds = seconds
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))
        self._stop = asyncio.Event()
        self._holding: set[asyncio.Task[Any]] = set()
        self._nc: NatsClient | None = None

    def __enter__(self) -> StandInOwner:
        self._thread.start()
        assert self._ready.wait(20)
        return self

    def __exit__(self, *_: object) -> None:
        # Stop serving, giving up any call it holds.
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _answer(self, _: Any) -> ToolCallReply:
        self.asks += 1
        self.asked.set()
        task = asyncio.current_task()
        assert task is not None
        self._holding.add(task)
        await asyncio.sleep(self._seconds if self._seconds is not None else 3600)
        return ToolCallReply(output=WaitForUserOutput().model_dump(mode="json"))

    async def _serve(self) -> None:
        # Back as soon as NATS is, for as long as it takes, like the services it stands in for.
        self._nc = await nats.connect(self.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
        service = await start_service(
            self._nc,
            name=OWNER_SERVICES[self._spec.owner],
            version="0.0.1",
            description="test",
            endpoints=[
                Endpoint(self._spec.name, self._spec.subject, ToolCallRequest, self._answer)
            ],
        )
        await flushed(self._nc)  # the server has its subscriptions before a call is made
        self._ready.set()
        await self._stop.wait()
        for task in self._holding:  # calls still held, killed or not
            task.cancel()
        if not self._nc.is_closed:
            await service.stop(grace=0)
            await self._nc.close()

    def kill(self) -> None:
        """Drop off NATS at once, as a SIGKILL of its process would: what it holds is never
        answered."""
        assert self._nc is not None
        asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(10)


@contextmanager
def lone_owner(tool_name: str, seconds: float | None) -> Iterator[StandInOwner]:
    """A private NATS whose only tool owner serves ``tool_name`` (every other tool has no
    responder), answering after ``seconds`` or never; for a gateway built with ``nats_url=``."""
    with nats_server(private=True) as url, StandInOwner(url, tool_name, seconds) as owner:
        yield owner


@contextmanager
def slow_owner(tool_name: str, seconds: float) -> Iterator[str]:
    """A private NATS whose only tool owner answers ``tool_name`` after ``seconds`` (every
    other tool has no responder): yields its URL, for a gateway built with ``nats_url=``."""
    with lone_owner(tool_name, seconds) as owner:
        yield owner.url


class Published:
    """Core NATS messages on some subjects that mention any of some ids, as a test saw them."""

    def __init__(self, nc: NatsClient, ids: set[str]) -> None:
        self._nc = nc
        self._ids = [value.encode() for value in ids]
        self.seen: list[bytes] = []

    async def _keep(self, msg: Msg) -> None:
        if any(value in msg.data for value in self._ids):
            self.seen.append(msg.data)

    async def settled(self, count: int) -> list[bytes]:
        """What was seen, once there are ``count`` (and a moment more for any extra)."""
        await flushed(self._nc)
        for _ in range(100):
            if len(self.seen) >= count:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        return list(self.seen)


@asynccontextmanager
async def published(
    nats_url: str, subjects_seen: list[str], ids: set[str]
) -> AsyncIterator[Published]:
    """Subscribe to ``subjects_seen`` for the block; keeps the messages that mention ``ids``."""
    nc = await nats.connect(nats_url)
    watched = Published(nc, ids)
    try:
        for subject in subjects_seen:
            await nc.subscribe(subject, cb=watched._keep)
        await flushed(nc)
        yield watched
    finally:
        await nc.close()
