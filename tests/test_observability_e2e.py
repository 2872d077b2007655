"""Observability of the real stack: every service a process, exporting to an OTLP receiver here.

- A tool call is one trace: the page's span -> gateway -> NATS -> the owning service -> its SQL.
- A turn is one trace: /turn -> JetStream publish -> memory's consumer -> its INSERT.
- The web service, an edge like the gateway, continues a caller's trace too.
- Every service serves /metrics with the product's metrics, on a port of its own: the API and
  the page answer 404 there.
- A session full of distinctive words, with DEBUG logging everywhere, leaves them in no log line
  and no span.
"""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from opencouch.contracts.subjects import MEMORY_TURNS_CONSUMER
from opencouch.testing.otlp import OtlpReceiver, ReceivedSpan, ancestors, otlp_receiver
from opencouch.testing.processes import Stack, running_stack
from opencouch.testing.voice_client import API, VoiceClient

pytestmark = pytest.mark.e2e

# Words no service has any reason to print: they stand for what a user says.
SAID = "Quillorn-tangerine-4471"
TOOL_QUERY = "what is box breathing Vexmere-lantern-9152"
REPLIED = "Brindlewick-harbour-3306"
PRIVATE = (SAID, TOOL_QUERY.split()[-1], REPLIED)


class Traced:
    """The running stack, the spans it exported, and its logs."""

    def __init__(self, stack: Stack, receiver: OtlpReceiver, logs: Path) -> None:
        self.stack = stack
        self.receiver = receiver
        self.logs = logs


@pytest.fixture(scope="module")
def traced(
    nats_url: str, redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traced]:
    log_dir = tmp_path_factory.mktemp("observed-stack")
    with otlp_receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fifth of a second
            "OTEL_TRACES_SAMPLER": "always_on",  # every trace, not the default one in ten
            "LOG_LEVEL": "DEBUG",
            "WEB_LOG_LEVEL": "DEBUG",
            "REALTIME_EMULATOR_LOG_LEVEL": "debug",
            # Limits of their own: every test of the run opens sessions from 127.0.0.1, and
            # the limiter keeps a count per limit, so this module spends no other's budget.
            "VOICE_GATEWAY_RATE_LIMIT_SESSION_PER_IP": "1000/minute",
            "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_IP": "100000/minute",
        }
        with running_stack(
            nats_url=nats_url,
            redis_url=redis_url,
            database_url=database_url,
            log_dir=log_dir,
            env=env,
        ) as stack:
            yield Traced(stack, receiver, log_dir)
        unclean = {name: code for name, code in stack.exit_codes.items() if code != 0}
        assert not unclean, f"services did not stop cleanly on SIGTERM: {unclean}"


@pytest.fixture
def browser(traced: Traced) -> Iterator[VoiceClient]:
    with httpx.Client(base_url=traced.stack.gateway_url, timeout=30) as http:
        yield VoiceClient(http)


def new_trace() -> tuple[str, str, str]:
    """A trace id, a span id and the ``traceparent`` a page sends for them."""
    trace_id, span_id = f"{uuid.uuid4().int:032x}", f"{uuid.uuid4().int >> 64:016x}"
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def is_sql(span: ReceivedSpan) -> bool:
    return span.attributes.get("db.system") == "postgresql" or (
        span.attributes.get("db.system.name") == "postgresql"
    )


def statement(span: ReceivedSpan) -> str:
    return str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")


def in_trace(trace_id: str) -> Callable[[list[ReceivedSpan]], list[ReceivedSpan]]:
    def select(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [span for span in spans if span.trace_id == trace_id]

    return select


def start(browser: VoiceClient, mode: str = "persistent") -> None:
    reply = browser.start(
        f"thread-obs-{uuid.uuid4().hex[:10]}",
        user_id=f"user-{uuid.uuid4().hex[:10]}",
        memory_mode=mode,
    )
    assert reply.status_code == 200, reply.text


def test_a_tool_call_is_one_trace_from_the_page_through_the_owner_into_its_sql(
    traced: Traced, browser: VoiceClient
) -> None:
    start(browser)
    trace_id, page_span, traceparent = new_trace()
    reply = browser.http.post(
        f"{API}/tools",
        json={
            "tool_name": "answer_grounded_lookup",
            "arguments": {"query": TOOL_QUERY},
            "call_id": f"call_{uuid.uuid4().hex[:16]}",
        },
        headers={**browser.auth(), "traceparent": traceparent},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["ok"] is True, reply.json()

    select = in_trace(trace_id)

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Each process exports in batches of its own: wait for every span the test looks at.
        mine = select(spans)
        return (
            any(s.service == "opencouch-tools" and is_sql(s) for s in mine)
            and any(s.service == "opencouch-tools" and s.kind == "server" for s in mine)
            and any(s.service == "opencouch-voice-gateway" and s.kind == "server" for s in mine)
        )

    spans = select(traced.receiver.wait_for(complete))
    gateway = next(
        s for s in spans if s.service == "opencouch-voice-gateway" and s.kind == "server"
    )
    assert gateway.parent_span_id == page_span
    assert gateway.attributes["opencouch.tool.name"] == "answer_grounded_lookup"
    assert gateway.attributes["opencouch.tool.outcome"] == "ok"
    served = next(s for s in spans if s.service == "opencouch-tools" and s.kind == "server")
    assert served.name == "serve opencouch-tools.answer_grounded_lookup"
    sent = next(s for s in spans if s.kind == "client" and s.name.startswith("request "))
    assert sent.service == "opencouch-voice-gateway"
    assert served.parent_span_id == sent.span_id
    assert gateway in ancestors(sent, spans)
    for sql in (s for s in spans if s.service == "opencouch-tools" and is_sql(s)):
        assert served in ancestors(sql, spans), sql.name
    # One trace: every span of the call hangs from the page's span.
    for span in spans:
        assert span is gateway or gateway in ancestors(span, spans), span.name


def test_a_turn_is_one_trace_from_turn_through_jetstream_into_memorys_insert(
    traced: Traced, browser: VoiceClient
) -> None:
    start(browser)
    trace_id, page_span, traceparent = new_trace()
    reply = browser.http.post(
        f"{API}/turn",
        json={
            "client_turn_id": f"turn-{uuid.uuid4().hex[:8]}",
            "user_text": "I slept badly.",
            "assistant_text": "That sounds hard.",
        },
        headers={**browser.auth(), "traceparent": traceparent},
    )
    assert reply.status_code == 200, reply.text

    select = in_trace(trace_id)

    def turns_consumer(span: ReceivedSpan) -> bool:
        # Memory consumes this trace twice: the turn, then the crisis level the tools service
        # publishes for it (TurnClassified, its own consumer). The insert is the turn's.
        return (
            span.service == "opencouch-memory"
            and span.kind == "consumer"
            and span.attributes.get("messaging.consumer.group.name") == MEMORY_TURNS_CONSUMER
        )

    def inserted(spans: list[ReceivedSpan]) -> bool:
        # Each process exports in batches of its own: wait for every span the test looks at.
        mine = select(spans)
        return (
            any(
                s.service == "opencouch-memory"
                and statement(s).lstrip().startswith("INSERT INTO memory.turns")
                for s in mine
            )
            and any(turns_consumer(s) for s in mine)
            and any(s.name == "publish TurnRecorded" for s in mine)
            and any(s.service == "opencouch-voice-gateway" and s.kind == "server" for s in mine)
        )

    spans = select(traced.receiver.wait_for(inserted))
    gateway = next(
        s for s in spans if s.service == "opencouch-voice-gateway" and s.kind == "server"
    )
    assert gateway.parent_span_id == page_span
    published = next(s for s in spans if s.name == "publish TurnRecorded")
    assert published.kind == "producer"
    assert published.service == "opencouch-voice-gateway"
    assert gateway in ancestors(published, spans)
    processed = next(s for s in spans if turns_consumer(s))
    assert processed.parent_span_id == published.span_id
    insert = next(
        s
        for s in spans
        if s.service == "opencouch-memory"
        and statement(s).lstrip().startswith("INSERT INTO memory.turns")
    )
    assert processed in ancestors(insert, spans)


def test_the_web_service_continues_a_callers_trace_too(traced: Traced) -> None:
    trace_id, caller_span, traceparent = new_trace()
    page = httpx.get(f"{traced.stack.web_url}/voice", headers={"traceparent": traceparent})
    assert page.status_code == 200, page.text

    def served(span: ReceivedSpan) -> bool:
        return span.service == "opencouch-web" and span.kind == "server"

    spans = in_trace(trace_id)(
        traced.receiver.wait_for(lambda spans: any(served(s) for s in in_trace(trace_id)(spans)))
    )
    (web,) = [s for s in spans if served(s)]
    assert web.parent_span_id == caller_span
    assert web.name.startswith("GET ")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def has_sample(text: str, name: str, **labels: str) -> bool:
    """Whether ``text`` has a sample of ``name`` with (at least) ``labels``."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return True
    return False


def test_every_service_serves_its_metrics(traced: Traced, browser: VoiceClient) -> None:
    start(browser)
    marks = {"session_minted_ms": 300.0, "connected_ms": 800.0, "first_audio_ms": 600.0}
    assert browser.tool("wait_for_user").status_code == 200
    turned = browser.turn("turn-metrics", "I feel a bit better today.", "I'm glad.", latency=marks)
    assert turned.status_code == 200, turned.text
    ended = browser.end()
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "completed", ended.json()

    # The API's port serves no metrics: what the product counts is not for whoever can reach it.
    for public in (traced.stack.gateway_url, traced.stack.web_url):
        assert httpx.get(f"{public}/metrics", timeout=5).status_code == 404, public
    gateway = scrape(traced.stack.metrics_urls["voice-gateway"])
    assert has_sample(
        gateway,
        "opencouch_http_request_duration_seconds_count",
        route=f"{API}/turn",
        method="POST",
        status="200",
    )
    assert has_sample(
        gateway, "opencouch_tool_call_duration_seconds_count", tool="wait_for_user", outcome="ok"
    )
    assert has_sample(gateway, "opencouch_turns_recorded_total", mode="persistent")
    assert has_sample(gateway, "opencouch_voice_sessions_active")
    assert has_sample(gateway, "opencouch_voice_sessions_started_total", mode="persistent")
    for mark in ("session_minted", "connected", "first_audio"):
        assert has_sample(gateway, "opencouch_browser_latency_seconds_count", mark=mark), mark

    web = scrape(traced.stack.metrics_urls["web"])
    assert "# TYPE opencouch_http_request_duration_seconds histogram" in web

    def service_metrics(name: str) -> str:
        return scrape(traced.stack.metrics_urls[name])

    tools, memory, finalizer = (service_metrics(n) for n in ("tools", "memory", "finalizer"))
    assert has_sample(
        tools,
        "opencouch_nats_request_duration_seconds_count",
        service="opencouch-tools",
        endpoint="wait_for_user",
        outcome="ok",
    )
    assert has_sample(tools, "opencouch_crisis_turns_total", mode="persistent")
    assert has_sample(memory, "opencouch_jetstream_consumer_pending")
    assert has_sample(memory, "opencouch_jetstream_event_age_seconds_count")
    assert has_sample(memory, "opencouch_jetstream_events_handled_total", outcome="ok")
    assert has_sample(
        memory, "opencouch_nats_request_duration_seconds_count", service="opencouch-memory"
    )
    assert has_sample(
        finalizer, "opencouch_finalization_duration_seconds_count", outcome="completed"
    )
    assert has_sample(finalizer, "opencouch_jetstream_events_handled_total", outcome="ok")
    for text in (tools, memory, finalizer):
        # Redeliveries happen only when an event had to wait; the counter is always exported.
        assert "# TYPE opencouch_jetstream_redeliveries_total counter" in text


def test_a_session_leaves_what_was_said_in_no_log_line_and_no_span(
    traced: Traced, browser: VoiceClient
) -> None:
    thread = f"thread-private-{uuid.uuid4().hex[:10]}"
    user = f"user-{uuid.uuid4().hex[:10]}"
    assert browser.start(thread, user_id=user, memory_mode="persistent").status_code == 200
    spoken = f"I'm in Toronto and I keep thinking about {SAID}"
    transcript = [{"role": "user", "text": spoken}, {"role": "assistant", "text": REPLIED}]
    calls = [
        browser.tool("answer_grounded_lookup", {"query": TOOL_QUERY}),
        browser.tool("lookup_crisis_resources", current_user_message=spoken, transcript=transcript),
    ]
    # A standing preference in the user's words: the next session's instructions carry it.
    asked = f"Please always call me {SAID} from now on"
    calls.append(
        browser.tool(
            "save_response_preference",
            {"preference_text": f"Call the user {SAID}.", "user_quote": asked},
            current_user_message=asked,
            transcript=[{"role": "user", "text": asked}],
        )
    )
    for call in calls:
        assert call.status_code == 200, call.text
        assert call.json()["ok"] is True, call.json()
    for number in range(3):
        turned = browser.turn(f"turn-{number}", f"{spoken} ({number})", f"{REPLIED} ({number})")
        assert turned.status_code == 200, turned.text
    ended = browser.end(feedback="positive")
    assert ended.status_code == 200, ended.text
    # A later session's memory context holds the user's words, and the gateway sends them on.
    again = browser.start(thread, user_id=user, memory_mode="persistent")
    assert again.status_code == 200, again.text
    minted = httpx.get(
        f"{traced.stack.emulator_url}/_emulator/client_secrets/"
        f"{again.json()['client_secret']['value']}"
    ).json()
    assert SAID in minted["session"]["instructions"]
    assert browser.turn("turn-again", SAID, REPLIED).status_code == 200
    assert browser.end().status_code == 200

    traced.receiver.wait_for(
        lambda spans: any(
            s.name.startswith("process") and s.service == "opencouch-finalizer" for s in spans
        )
    )
    logs = {path.name: path.read_text(errors="replace") for path in traced.logs.glob("*.log")}
    assert {"voice-gateway.log", "tools.log", "memory.log", "finalizer.log"} <= set(logs)
    # DEBUG really was on: the runtime's own debug lines are there.
    assert '"level": "debug"' in logs["tools.log"]
    for name, text in logs.items():
        for words in PRIVATE:
            lines = [line for line in text.splitlines() if words in line]
            assert not lines, f"{name} logged what the user said: {lines[:2]}"
    for span in traced.receiver.spans():
        shown = f"{span.name} {span.attributes} {span.events} {span.status_message}"
        for words in PRIVATE:
            assert words not in shown, f"{span.service} span {span.name} carries user text"
    assert re.search(r'"trace_id": "[0-9a-f]{32}"', logs["voice-gateway.log"])
