"""Test support for the tools service: run it on NATS, call its tools like the gateway does, and
check every output names only vetted contacts. Shipped beside the service so any suite (this
service's, the gateway's end-to-end tests) can use the same harness and the same check.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from opencouch.contracts.common import MemoryMode, TranscriptLine
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallContext, ToolCallReply, ToolCallRequest
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import request
from opencouch.runtime.service import run_nats_service
from opencouch.tools.erasure import Erasure
from opencouch.tools.grounded import GroundedLookup
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.screening import CrisisScreening
from opencouch.tools.service import Content, tools_service
from opencouch.tools.session_state import SessionState
from opencouch.tools.settings import ToolsSettings
from opencouch.tools.store import ToolsStore

# -- the vetted contacts ----------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"\+?\d[\d\s().\-]*\d|\d")
_URL_LIKE = re.compile(
    r"https?://[^\s\"'<>)\]]+|\b(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\."
    r"(?:org|com|net|gov|uk|au|ca|ie|nz|info|io|int|scot)\b(?:/[^\s\"'<>)\]]*)?",
    re.IGNORECASE,
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _url_forms(url: str) -> set[str]:
    bare = re.sub(r"^https?://", "", url.lower()).removeprefix("www.").rstrip("/.,;:")
    return {bare, bare.split("/", 1)[0]}


@dataclass
class VettedContacts:
    """Every phone number and link a tool output may contain."""

    phones: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)

    def add_url(self, url: str) -> None:
        """Allow ``url`` (and its host)."""
        self.urls |= _url_forms(url)

    def unvetted(self, output: Any) -> list[str]:
        """Phone-like numbers (3+ digits) and links in ``output`` that are not vetted."""
        found: list[str] = []
        for key, text in _strings(output):
            if key == "verified_on":
                continue
            for match in _PHONE_LIKE.finditer(text):
                digits = _digits(match.group(0))
                if len(digits) >= 3 and digits not in self.phones:
                    found.append(match.group(0))
            for match in _URL_LIKE.finditer(text):
                forms = _url_forms(match.group(0))
                if not forms & self.urls:
                    found.append(match.group(0))
        return found


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for child_key, child in value.items():
            yield from _strings(child, str(child_key))
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child, key)


def vetted_from_data(corpus_urls: set[str]) -> VettedContacts:
    """The contacts in the packaged crisis data, plus the corpus's cited URLs."""
    data = resources.files("opencouch.tools").joinpath("data")
    vetted = VettedContacts()
    for row in json.loads(data.joinpath("crisis_resources.json").read_text())["resources"]:
        for name in ("phone", "text"):
            if row.get(name):
                vetted.phones.add(_digits(row[name]))
                vetted.phones |= {_digits(part) for part in re.findall(r"\d[\d ]*\d", row[name])}
        for name in ("url", "source_url"):
            if row.get(name):
                vetted.add_url(row[name])
    for row in json.loads(data.joinpath("emergency_numbers.json").read_text())["numbers"]:
        vetted.phones.add(_digits(row["number"]))
        vetted.add_url(row["source_url"])
    for url in corpus_urls:
        vetted.add_url(url)
    return vetted


def handlers_for(content: Content, store: ToolsStore, state: SessionState) -> ToolHandlers:
    """Tool handlers over real stores, as the service builds them."""
    return ToolHandlers(
        skills=content.skills,
        exercises=content.exercises,
        crisis=content.crisis,
        grounded=GroundedLookup(store),
        state=state,
        store=store,
    )


# -- the crisis classifier's labelled set -----------------------------------------------------


def crisis_evaluation_set() -> list[dict[str, Any]]:
    """The classifier's labelled utterances (``data/crisis_eval.jsonl``), in file order: each a
    ``text``, its ``level`` (0 to 3) and a ``category``; an answer to the safety question also
    has ``after_safety_check``. Its tests, its benchmark and the offline companion's tests read
    the same lines."""
    text = resources.files("opencouch.tools").joinpath("data/crisis_eval.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the service on NATS ----------------------------------------------------------------------


def new_session_id() -> str:
    """A fresh voice session id."""
    return f"vs_{uuid.uuid4().hex}"


@dataclass
class ToolsHarness:
    """The tools service running on NATS, and a client that calls its tools like the gateway."""

    nc: NatsClient
    vetted: VettedContacts
    session_id: str = field(default_factory=new_session_id)

    def context(
        self,
        message: str = "",
        transcript: list[tuple[str, str]] | None = None,
        *,
        mode: MemoryMode = MemoryMode.INCOGNITO,
        session_id: str | None = None,
        call_id: str | None = None,
        session_expires_at: int | None = None,
    ) -> ToolCallContext:
        """A call context for this harness's session (or ``session_id``)."""
        return ToolCallContext(
            session_id=session_id or self.session_id,
            thread_id="thread-tools-test",
            memory_mode=mode,
            current_user_message=message,
            transcript=[TranscriptLine(role=role, text=text) for role, text in transcript or []],
            call_id=call_id,
            session_expires_at=session_expires_at,
        )

    async def call(
        self, tool: str, arguments: dict[str, Any] | None = None, **context: Any
    ) -> ToolCallReply:
        """Call ``tool`` over NATS and check its output names only vetted contacts."""
        call = ToolCallRequest(
            tool_name=tool, arguments=arguments or {}, context=self.context(**context)
        )
        reply = await request(self.nc, TOOL_CATALOG[tool].subject, call, ToolCallReply, timeout=10)
        unvetted = self.vetted.unvetted(reply.output)
        assert not unvetted, f"{tool} named contacts outside the vetted data: {unvetted}"
        return reply


@asynccontextmanager
async def serving(
    nats_url: str, handlers: ToolHandlers, store: ToolsStore, state: SessionState
) -> AsyncIterator[NatsClient]:
    """Run the tools service with ``handlers`` until the block ends; yields a client."""
    service_nc = await nats.connect(nats_url)
    client = await nats.connect(nats_url)
    js = await ensure_events_stream(service_nc)
    stop = asyncio.Event()
    screening = CrisisScreening(store, state, js)
    settings = ToolsSettings(id_file=f"/tmp/opencouch/tools-test-{uuid.uuid4().hex[:8]}.id")
    runner = asyncio.create_task(
        run_nats_service(
            service_nc,
            tools_service(handlers, screening, Erasure(store, state)),
            settings,
            stop,
        )
    )
    try:
        await _until_served(client, runner)
        yield client
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
        await client.close()
        await service_nc.close()


async def _until_served(client: NatsClient, runner: asyncio.Task[None]) -> None:
    subject = TOOL_CATALOG["wait_for_user"].subject
    probe = ToolCallRequest(
        tool_name="wait_for_user",
        arguments={},
        context=ToolCallContext(
            session_id=new_session_id(), thread_id="probe", memory_mode=MemoryMode.INCOGNITO
        ),
    )
    for _ in range(200):
        if runner.done():
            runner.result()
        try:
            await request(client, subject, probe, ToolCallReply, timeout=1)
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise RuntimeError("the tools service did not start serving")
