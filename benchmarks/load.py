"""Load and chaos at the protocol level: many voice sessions, then an exact accounting.

    uv run python benchmarks/load.py --sessions 16 --seconds 60           # make load
    uv run python benchmarks/load.py --chaos --sessions 16 --seconds 90   # make chaos

Runs the whole stack as real processes on private NATS (JetStream on disk), Redis and Postgres
of its own, so a chaos run may kill and restart anything. Each simulated browser opens a
persistent session, makes tool calls and records turns with ids of its own, then ends the
session; it retries a call on 503/429 after ``Retry-After`` and, when a gateway is gone, on the
other gateway, with the same ids, as a browser behind a load balancer would.

Afterwards it checks, exactly: every acknowledged turn is stored once; every ended session is
finalized once; what the clients saw, by kind. With ``--chaos``, during the load it SIGKILLs
tools, memory, finalizer and one of two gateways in turn (each restarted after a pause), then
restarts NATS, Redis and Postgres, and checks that clients saw only 503s or
``tool_unavailable`` (no 500, no hung request) and that service resumed within 10 s of each
restart. A tool call that cannot be answered any more (its owner was killed, or NATS lost its
request in a restart) is answered ``tool_unavailable`` a second or two later by the gateway's
owner watch, so the gateways run with the product's tool timeout, not the shorter one of the
e2e stack: a ``tool_timeout`` here is a call the watch missed. Exits 1 if any check fails;
prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from opencouch.testing.infra import PrivateInfra
from opencouch.testing.processes import ServiceProcess, Stack, running_stack
from opencouch.voice_gateway.settings import GatewaySettings

API = "/api/voice/realtime"
CALL_TIMEOUT = 30.0
RESUME_LIMIT_SECONDS = 10.0
ALLOWED_DURING_OUTAGES = {
    "http:503",
    "http:429",
    "tool:tool_unavailable",
    "failover",
}


@dataclass
class Ledger:
    """What the clients were told, to hold against what was stored."""

    acknowledged: dict[str, set[str]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    seen: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    hung: int = 0


class Gateways:
    """Round-robin over the gateway replicas; a dead one is skipped, as a load balancer would."""

    def __init__(self, urls: list[str], ledger: Ledger) -> None:
        self._clients = [httpx.AsyncClient(base_url=url, timeout=CALL_TIMEOUT) for url in urls]
        self._ledger = ledger
        self._next = 0

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, attempts: int = 40
    ) -> httpx.Response | None:
        """The first answer that is not a retryable refusal; None if it never came."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(attempts):
            client = self._clients[self._next % len(self._clients)]
            self._next += 1
            self._ledger.calls += 1
            try:
                reply = await client.request(method, path, json=body, headers=headers)
            except httpx.TimeoutException:
                self._ledger.hung += 1
                self._ledger.seen["hung"] += 1
                continue
            except httpx.TransportError:
                self._ledger.seen["failover"] += 1
                await asyncio.sleep(0.2)
                continue
            if reply.status_code in (429, 503):
                self._ledger.seen[f"http:{reply.status_code}"] += 1
                await asyncio.sleep(min(float(reply.headers.get("Retry-After", 1)), 2.0))
                continue
            if reply.status_code >= 500:
                self._ledger.seen[f"http:{reply.status_code}"] += 1
            return reply
        return None


async def simulated_browser(
    gateways: Gateways, ledger: Ledger, deadline: float, turns: int
) -> None:
    """Sessions one after another until ``deadline``: tools and turns, then the end."""
    while time.monotonic() < deadline:
        started = await gateways.call(
            "POST",
            f"{API}/session",
            {"thread_id": f"load-{uuid.uuid4().hex[:12]}", "user_id": f"u-{uuid.uuid4().hex[:12]}",
             "memory_mode": "persistent"},
        )  # fmt: skip
        if started is None or started.status_code != 200:
            if started is not None:
                ledger.seen[f"http:{started.status_code}"] += 1
            await asyncio.sleep(0.5)
            continue
        session = started.json()
        token, session_id = session["token"], session["session_id"]
        ledger.acknowledged[session_id] = set()
        for n in range(turns):
            calls: list[tuple[str, dict[str, Any], str]] = [
                ("wait_for_user", {}, ""),
                ("lookup_crisis_resources", {}, "I live in Canada and things are hard."),
            ]
            for tool, arguments, message in calls:
                reply = await gateways.call(
                    "POST",
                    f"{API}/tools",
                    {"tool_name": tool, "arguments": arguments, "call_id": f"c-{uuid.uuid4().hex}",
                     "current_user_message": message},
                    token,
                )  # fmt: skip
                if reply is not None and reply.status_code == 200 and not reply.json()["ok"]:
                    ledger.seen[f"tool:{reply.json()['output']['error']['code']}"] += 1
            turn_id = f"t{n}-{uuid.uuid4().hex[:8]}"
            reply = await gateways.call(
                "POST",
                f"{API}/turn",
                {"client_turn_id": turn_id, "user_text": f"Turn {n}: a long day at work.",
                 "assistant_text": "That sounds tiring. What helped?"},
                token,
            )  # fmt: skip
            if reply is not None and reply.status_code == 200 and reply.json()["recorded"]:
                ledger.acknowledged[session_id].add(turn_id)
            elif reply is not None:
                ledger.seen[f"turn:{reply.status_code}"] += 1
            await asyncio.sleep(random.uniform(0.05, 0.2))
        ended = await gateways.call("POST", f"{API}/end", {"feedback": "positive"}, token)
        if ended is not None and ended.status_code in (200, 202):
            ledger.ended.add(session_id)
        elif ended is not None:
            ledger.seen[f"end:{ended.status_code}"] += 1


@dataclass
class Outage:
    """One fault injected during the load, and how long service took to come back."""

    what: str
    resumed_after: float | None = None


async def probe(gateways: Gateways) -> bool:
    """A whole path works: a session opens and a tool answers."""
    reply = await gateways.call(
        "POST", f"{API}/session", {"thread_id": f"probe-{uuid.uuid4().hex[:12]}"}, attempts=1
    )
    if reply is None or reply.status_code != 200:
        return False
    tool = await gateways.call(
        "POST",
        f"{API}/tools",
        {"tool_name": "wait_for_user", "call_id": f"p-{uuid.uuid4().hex}"},
        reply.json()["token"],
        attempts=1,
    )
    return tool is not None and tool.status_code == 200 and bool(tool.json()["ok"])


async def wait_resumed(gateways: Gateways, restarted_at: float) -> float | None:
    while time.monotonic() - restarted_at < 60:
        if await probe(gateways):
            return time.monotonic() - restarted_at
        await asyncio.sleep(0.25)
    return None


async def chaos(
    stack: Stack, infra: PrivateInfra, probe_gateways: Gateways, pause: float
) -> list[Outage]:
    """Kill each service in turn and restart it; then restart NATS, Redis and Postgres."""
    outages: list[Outage] = []
    for name in ("tools", "memory", "finalizer", "voice-gateway-2"):
        await asyncio.sleep(pause)
        service = stack.services[name]
        assert isinstance(service, ServiceProcess)  # a local process, so SIGKILL is ours to send
        service.process.kill()
        service.process.wait()
        await asyncio.sleep(1.0)
        stack.services[name] = await asyncio.to_thread(service.restart)
        restarted = time.monotonic()
        await asyncio.to_thread(stack.services[name].wait_healthy)
        outages.append(Outage(f"SIGKILL {name}", await wait_resumed(probe_gateways, restarted)))
    for name, server in (
        ("NATS", infra.nats),
        ("Redis", infra.redis),
        ("Postgres", infra.postgres),
    ):
        await asyncio.sleep(pause)
        await asyncio.to_thread(server.restart)
        outages.append(
            Outage(f"restart {name}", await wait_resumed(probe_gateways, time.monotonic()))
        )
    return outages


def stored(
    database_url: str, sessions: list[str]
) -> tuple[dict[str, Counter[str]], dict[str, list[str]]]:
    with psycopg.connect(database_url) as conn:
        turns = conn.execute(
            "SELECT session_id, client_turn_id FROM memory.turns WHERE session_id = ANY(%s)",
            (sessions,),
        ).fetchall()
        finals = conn.execute(
            "SELECT session_id, status FROM finalizer.finalizations WHERE session_id = ANY(%s)",
            (sessions,),
        ).fetchall()
    by_session: dict[str, Counter[str]] = {}
    for session_id, turn_id in turns:
        by_session.setdefault(session_id, Counter())[turn_id] += 1
    statuses: dict[str, list[str]] = {}
    for session_id, status in finals:
        statuses.setdefault(session_id, []).append(status)
    return by_session, statuses


async def account(ledger: Ledger, database_url: str, drain_seconds: float) -> dict[str, Any]:
    """Wait for the pipeline to drain, then hold what was stored against what was promised."""
    sessions = sorted(ledger.acknowledged)
    deadline = time.monotonic() + drain_seconds
    while True:
        turns, finals = await asyncio.to_thread(stored, database_url, sessions)
        missing = {
            s: sorted(ids - set(turns.get(s, {}))) for s, ids in ledger.acknowledged.items()
            if ids - set(turns.get(s, {}))
        }  # fmt: skip
        unfinished = sorted(s for s in ledger.ended if finals.get(s) != ["completed"])
        if (not missing and not unfinished) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    doubled = {
        s: [t for t, n in c.items() if n > 1] for s, c in turns.items() if max(c.values()) > 1
    }
    unpromised = {
        s: sorted(set(c) - ledger.acknowledged.get(s, set()))
        for s, c in turns.items() if set(c) - ledger.acknowledged.get(s, set())
    }  # fmt: skip
    finalized_but_not_ended = sorted(s for s in finals if s not in ledger.ended)
    acknowledged = sum(len(ids) for ids in ledger.acknowledged.values())
    return {
        "sessions": len(sessions),
        "ended_sessions": len(ledger.ended),
        "acknowledged_turns": acknowledged,
        "stored_turns": sum(sum(c.values()) for c in turns.values()),
        "missing_turns": missing,
        "doubled_turns": doubled,
        "stored_never_acknowledged": unpromised,
        "finalized_sessions": sum(1 for s in ledger.ended if finals.get(s) == ["completed"]),
        "ended_not_finalized_once": unfinished,
        "finalized_but_not_ended": finalized_but_not_ended,
        "calls": ledger.calls,
        "hung_calls": ledger.hung,
        "seen": dict(ledger.seen),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="opencouch-load-"))
    env = {
        "VOICE_GATEWAY_RATE_LIMIT_SESSION_PER_IP": "100000/minute",
        "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_IP": "1000000/minute",
        "VOICE_GATEWAY_END_WAIT_SECONDS": "0",
        "VOICE_GATEWAY_TOOL_TIMEOUT_SECONDS": str(
            GatewaySettings.model_fields["tool_timeout_seconds"].default
        ),
        "LOG_LEVEL": "WARNING",
    }
    with (
        PrivateInfra() as infra,
        running_stack(
            nats_url=infra.nats.url,
            redis_url=infra.redis.url,
            database_url=infra.postgres.url,
            log_dir=log_dir,
            with_web=False,
            env=env,
            gateways=2 if args.chaos else 1,
        ) as stack,
    ):
        ledger = Ledger()
        gateways = Gateways(stack.gateway_urls, ledger)
        probes = Gateways(stack.gateway_urls, Ledger())
        started = time.monotonic()
        deadline = started + args.seconds
        load = [
            asyncio.create_task(simulated_browser(gateways, ledger, deadline, args.turns))
            for _ in range(args.sessions)
        ]
        outages: list[Outage] = []
        if args.chaos:
            outages = await chaos(stack, infra, probes, pause=args.seconds / 8)
        await asyncio.gather(*load)
        elapsed = time.monotonic() - started
        report = await account(ledger, infra.postgres.url, args.drain_seconds)
        await gateways.close()
        await probes.close()
    report["seconds"] = round(elapsed, 1)
    report["turns_per_second"] = round(report["acknowledged_turns"] / elapsed, 1)
    report["chaos"] = [
        {
            "fault": o.what,
            "resumed_after_s": None if o.resumed_after is None else round(o.resumed_after, 2),
        }
        for o in outages
    ]
    report["logs"] = str(log_dir)
    return report


def verdict(report: dict[str, Any], chaos_run: bool) -> list[str]:
    """Every broken promise, in words; empty when the run held."""
    problems = []
    for key in (
        "missing_turns",
        "doubled_turns",
        "ended_not_finalized_once",
        "finalized_but_not_ended",
    ):
        if report[key]:
            problems.append(f"{key}: {report[key]}")
    if report["hung_calls"]:
        problems.append(f"{report['hung_calls']} calls hung past {CALL_TIMEOUT:g}s")
    unexpected = {
        kind: n for kind, n in report["seen"].items()
        if kind not in ALLOWED_DURING_OUTAGES or (not chaos_run and kind != "failover" and kind.startswith("http:5"))
    }  # fmt: skip
    if unexpected:
        problems.append(f"clients saw: {unexpected}")
    for outage in report["chaos"]:
        resumed = outage["resumed_after_s"]
        if resumed is None or resumed > RESUME_LIMIT_SECONDS:
            problems.append(f"{outage['fault']}: resumed after {resumed} s")
    if report["acknowledged_turns"] == 0:
        problems.append("no turn was acknowledged at all")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=16, help="concurrent simulated browsers")
    parser.add_argument("--seconds", type=float, default=60, help="how long new sessions start")
    parser.add_argument("--turns", type=int, default=4, help="turns per session")
    parser.add_argument("--drain-seconds", type=float, default=90)
    parser.add_argument("--chaos", action="store_true", help="kill and restart things meanwhile")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    problems = verdict(report, args.chaos)
    report["problems"] = problems
    print(f"{'chaos' if args.chaos else 'load'}: {args.sessions} browsers for {args.seconds:g}s")
    for key in ("sessions", "ended_sessions", "finalized_sessions", "acknowledged_turns",
                "stored_turns", "turns_per_second", "calls", "hung_calls"):  # fmt: skip
        print(f"  {key:<22} {report[key]}")
    print(f"  {'seen':<22} {report['seen']}")
    for outage in report["chaos"]:
        print(f"  {outage['fault']:<22} resumed after {outage['resumed_after_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    for problem in problems:
        print(f"FAIL {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
