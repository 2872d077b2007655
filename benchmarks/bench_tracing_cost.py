"""What tracing adds to a tool call's latency: the same stack with tracing on and off, one run.

Two stacks of real processes (emulator, tools, memory, finalizer, gateway), each on a NATS of
its own and sharing Redis and Postgres; one exports every span over OTLP/HTTP, the other has
tracing off. The spans go to a sink process that answers like a collector without decoding
them: a collector runs elsewhere, and decoding here would charge its work to the services.
Tool calls (``answer_grounded_lookup``: gateway -> NATS -> tools -> Postgres) alternate between
the two stacks in random order, so both see the same machine load. Besides latency, the CPU time
the gateway and tools processes spent per call is reported, which other load on the machine
disturbs less. Prints one JSON line; exits 1 when tracing adds 10 % or more to the median.

    uv run python benchmarks/bench_tracing_cost.py [--calls 500] [--sample-ratio R]

Needs NATS (nats-server), Redis and Postgres as the tests find them (REDIS_URL, DATABASE_URL).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from opencouch.runtime.tracing import DEFAULT_SAMPLE_RATIO
from opencouch.testing.processes import RunningService, ServiceProcess, running_stack
from opencouch.testing.servers import free_port, nats_server, postgres_database, redis_server
from opencouch.testing.voice_client import API, VoiceClient

LIMIT = 0.10
QUERY = "what is box breathing"
# Every call comes from one address and one session; the product's limits are not measured here.
UNLIMITED = {
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_SESSION": "1000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_IP": "1000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_USER": "1000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_THREAD": "1000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_SESSION_PER_IP": "1000000/minute",
}


def _serve_sink(port: int, received: Any) -> None:
    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with received.get_lock():
                received.value += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


@contextmanager
def otlp_sink() -> Iterator[tuple[str, Any]]:
    """An OTLP/HTTP endpoint in a process of its own; yields its URL and its export count."""
    port = free_port()
    received = multiprocessing.Value("i", 0)
    process = multiprocessing.Process(target=_serve_sink, args=(port, received), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        process.terminate()
        process.join(5)


def pid_of(service: RunningService) -> int:
    """The process id of a service ``running_stack`` started."""
    assert isinstance(service, ServiceProcess)
    return service.process.pid


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tool_call(client: VoiceClient) -> float:
    """One tool call's latency as the page sees it, in seconds."""
    started = time.perf_counter()
    reply = client.tool("answer_grounded_lookup", {"query": QUERY})
    elapsed = time.perf_counter() - started
    if reply.status_code != 200 or not reply.json().get("ok"):
        raise RuntimeError(f"tool call failed: {reply.status_code} {reply.text[:200]}")
    return elapsed


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500, help="tool calls per side")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--sample-ratio",
        type=float,
        default=None,
        help="share of traces recorded on the traced side (OTEL_TRACES_SAMPLER=traceidratio); "
        "default: the product's own default sampling",
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_url = stack.enter_context(redis_server())
        database_url = stack.enter_context(postgres_database())
        sink_url, exports = stack.enter_context(otlp_sink())
        sides = {}
        pids: dict[str, dict[str, int]] = {}
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url}
        if args.sample_ratio is not None:
            traced |= {
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.sample_ratio),
            }
        for side, tracing in (("on", traced), ("off", {})):
            (logs / side).mkdir()
            running = stack.enter_context(
                running_stack(
                    nats_url=stack.enter_context(nats_server(private=True)),
                    redis_url=redis_url,
                    database_url=database_url,
                    log_dir=logs / side,
                    with_web=False,
                    env={**UNLIMITED, **tracing},
                )
            )
            http = stack.enter_context(httpx.Client(base_url=running.gateway_url, timeout=30))
            client = VoiceClient(http)
            started = client.start(f"thread-bench-{uuid.uuid4().hex[:8]}")
            if started.status_code != 200:
                raise RuntimeError(f"/session failed: {started.text[:200]}")
            sides[side] = client
            pids[side] = {
                name: pid_of(running.services[name]) for name in ("voice-gateway", "tools")
            }

        order = list(sides)
        for _ in range(args.warmup):
            for side in order:
                tool_call(sides[side])
        time.sleep(6)  # the warm-up's spans are exported before CPU is counted
        samples: dict[str, list[float]] = {side: [] for side in sides}
        before = {side: {n: cpu_seconds(p) for n, p in pids[side].items()} for side in sides}
        for _ in range(args.calls):
            random.shuffle(order)
            for side in order:
                samples[side].append(tool_call(sides[side]))
        time.sleep(6)  # and so are the last calls' spans
        cpu_us = {
            side: {
                name: round((cpu_seconds(pid) - before[side][name]) / args.calls * 1e6)
                for name, pid in pids[side].items()
            }
            for side in sides
        }
        deadline = time.monotonic() + 30  # the exporter sends its batches every 5 s
        while exports.value == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        if exports.value == 0:
            raise RuntimeError("tracing was on, yet no span was exported")
        batches = int(exports.value)

    on, off = summary(samples["on"]), summary(samples["off"])
    # Paired: each round's calls ran back to back, so the machine's load cancels out of the
    # difference; the overhead is the median difference over the median call with tracing off.
    differences = [a - b for a, b in zip(samples["on"], samples["off"], strict=True)]
    overhead = statistics.median(differences) / statistics.median(samples["off"])
    print(
        json.dumps(
            {
                "benchmark": "tracing_cost_per_tool_call",
                "route": f"POST {API}/tools answer_grounded_lookup",
                "calls_per_side": args.calls,
                "sample_ratio": args.sample_ratio or f"default ({DEFAULT_SAMPLE_RATIO})",
                "tracing_on": on,
                "tracing_off": off,
                "median_paired_difference_ms": round(statistics.median(differences) * 1000, 3),
                "overhead": round(overhead, 4),
                "cpu_us_per_call": cpu_us,
                "export_requests": batches,
                "limit": LIMIT,
            }
        )
    )
    sys.exit(0 if overhead < LIMIT else 1)


if __name__ == "__main__":
    main()
