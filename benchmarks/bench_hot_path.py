"""The hot path against its floors, measured in one run on this machine.

Full path: HTTP -> gateway -> NATS -> tools -> back, a ``wait_for_user`` call with a fresh
``call_id`` each time (a pure tool, asked while its claim is decided; a tool that keeps state,
claimed first, is shown beside it). Floors measured in the same run: a bare FastAPI echo on
uvicorn with uvloop and httptools (HTTP floor), a bare nats-py request/reply echo (NATS floor),
and the same tool handler called in process. Load comes from wrk (C, a Lua script adds the token and a fresh
call_id per request); the open-loop run at a fixed rate uses a lean asyncio HTTP/1.1 client that
is measured against the HTTP echo at the same rate, so its own cost shows.

The sequential figures (five rounds) and the figures at 32 connections (three rounds) are each
the median of rounds interleaved with their floors, as this machine's speed drifts within a
minute. Each sequential round also reads from ``/proc`` the CPU every process on the path spent
per request (gateway, tools, NATS, Redis) and what the floors' processes spent per request: on
two cores the sequential call is near CPU-bound, so this says where its time over the floors
goes.

Prints a table, writes JSON (``--json``), exits 1 when a target is missed:
  sequential full-path p50 <= 1.5 x (HTTP floor + NATS floor); p99 <= 10 ms at 300 calls/s
  open loop; >= 1,500 tool calls/s and >= 1,000 acknowledged turns/s with one gateway process
  (turns: with the consumers paused, as the gateway's own capacity; the figure with them
  running on the same two cores is shown beside it);
  <= 150 MB resident per service.

    uv run python benchmarks/bench_hot_path.py [--seconds 8] [--json benchmarks/results/hot-path.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import uvloop
from redis.asyncio import Redis

from opencouch.contracts.care import WaitForUserOutput
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import ToolCallContext, ToolCallRequest, ToolOwner, tools_owned_by
from opencouch.runtime.tools import tool_endpoints
from opencouch.testing.infra import PrivateInfra
from opencouch.testing.processes import ServiceProcess, Stack, running_stack
from opencouch.testing.servers import free_port, wait_reachable
from opencouch.testing.voice_client import API, VoiceClient

HERE = Path(__file__).parent
UNLIMITED = {
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_SESSION": "100000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_IP": "100000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_USER": "100000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_THREAD": "100000000/minute",
    "VOICE_GATEWAY_RATE_LIMIT_SESSION_PER_IP": "1000000/minute",
    "LOG_LEVEL": "WARNING",
}

WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = "b" .. tid .. "x" .. os.getenv("OCV_RUN") .. "x"
end
request = function()
  counter = counter + 1
  local body = string.format(os.getenv("OCV_BODY"), prefix .. counter)
  return wrk.format("POST", os.getenv("OCV_PATH"), nil, body)
end
"""


@dataclass
class Load:
    """What wrk measured."""

    p50_ms: float
    p99_ms: float
    per_second: float
    errors: int
    requests: int


SEQUENTIAL_ROUNDS = 5
THROUGHPUT_ROUNDS = 3


@dataclass
class Round:
    """One round of the sequential figures, each run seconds after its floors."""

    http_echo_ms: float
    nats_echo_ms: float
    tool_call: Load
    stateful_tool: Load
    cpu_us: dict[str, dict[str, float]]
    """CPU per request of each process (``/proc``) while the pure tool call and each floor ran."""

    def ratio(self, extra_floor_ms: float = 0.0) -> float:
        """The pure tool call's p50 over the floor sum of this round."""
        return self.tool_call.p50_ms / (self.http_echo_ms + self.nats_echo_ms + extra_floor_ms)


def median_load(loads: list[Load]) -> Load:
    """The median of each figure of ``loads`` (errors summed)."""
    return Load(
        p50_ms=round(statistics.median(load.p50_ms for load in loads), 3),
        p99_ms=round(statistics.median(load.p99_ms for load in loads), 3),
        per_second=round(statistics.median(load.per_second for load in loads), 1),
        errors=sum(load.errors for load in loads),
        requests=sum(load.requests for load in loads),
    )


def cpu_seconds(pid: int) -> float:
    """The CPU time process ``pid``'s threads have used so far, to the nanosecond (the scheduler's
    own count in ``/proc``; ``stat``'s clock ticks of 10 ms would be a tenth of a floor's round)."""
    nanoseconds = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(FileNotFoundError, ProcessLookupError):  # a thread just ended
            nanoseconds += int((task / "schedstat").read_text().split()[0])
    return nanoseconds / 1e9


@contextmanager
def cpu_used(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """The CPU seconds each process used during the block (filled in as it ends)."""
    used: dict[str, float] = {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield used
    used.update({name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})


def per_request_us(used: dict[str, float], requests: int) -> dict[str, float]:
    """``cpu_used``'s seconds as microseconds per request."""
    return {name: round(seconds / max(requests, 1) * 1e6) for name, seconds in used.items()}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    base: str, path: str, body: str, *, connections: int, seconds: float, token: str | None = None
) -> Load:
    """Run wrk with a fresh id per request (``%s`` in ``body``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    headers = ["-H", "Content-Type: application/json"]
    if token:
        headers += ["-H", f"Authorization: Bearer {token}"]
    result = subprocess.run(
        ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
         "--latency", "-s", script.name, *headers, base],
        capture_output=True, text=True, check=True,
        env={**os.environ, "OCV_PATH": path, "OCV_BODY": body, "OCV_RUN": uuid.uuid4().hex[:12]},
    )  # fmt: skip
    os.unlink(script.name)
    out = result.stdout
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", out, re.M))

    def pct(key: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", percentiles[key]).groups()  # type: ignore[union-attr]
        return _ms(value, unit)

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    failed = re.search(r"Socket errors:.*?(\d+) timeout", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(failed.group(1)) if failed else 0)
    return Load(pct("50"), pct("99"), rate, errors, requests)


class OpenLoopClient:
    """A lean HTTP/1.1 client: keep-alive connections, requests sent on a schedule.

    Latency runs from when a request was due, not when it was sent, so a backlog shows.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _one(self, request: bytes) -> int:
        if self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed it while it sat idle (keep-alive timeout), as any client
                # finds now and then: send it again on a new connection.
                writer.close()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(reader, writer, request)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> int:
        conn = (reader, writer)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        self._idle.append(conn)
        return status

    async def run(self, make_request: Any, rate: float, seconds: float) -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        start = time.perf_counter() + 0.2
        count = int(rate * seconds)

        async def fire(n: int) -> None:
            nonlocal errors
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await self._one(make_request(n))
            latencies.append((time.perf_counter() - due) * 1000)
            errors += status != 200

        await asyncio.gather(*(fire(n) for n in range(count)))
        return latencies, errors


def http_request(path: str, body: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_loop(
    url: str, path: str, body: str, token: str | None, rate: float, seconds: float
) -> dict[str, float]:
    parts = httpx.URL(url)
    client = OpenLoopClient(parts.host, parts.port or 80)
    latencies, errors = await client.run(
        lambda n: http_request(path, body % f"o{uuid.uuid4().hex[:8]}{n}", token), rate, seconds
    )
    return {"p50_ms": round(percentile(latencies, 0.5), 3), "p99_ms": round(percentile(latencies, 0.99), 3),
            "errors": errors}  # fmt: skip


async def redis_floor(url: str, calls: int) -> float:
    """One redis-py round trip (``PING``): what the call_id claim adds at the least."""
    client = Redis.from_url(url)
    try:
        for _ in range(200):
            await client.ping()
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.ping()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)
    finally:
        await client.aclose()


async def nats_floor(url: str, calls: int, server_pid: int) -> tuple[float, dict[str, float]]:
    """The p50 ms of a bare request/reply echo, and the CPU us per request of its client, its
    responder and the NATS server."""
    subject = f"bench.echo.{uuid.uuid4().hex[:8]}"
    responder = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "floors" / "nats_echo.py"), url, subject, stdout=subprocess.PIPE
    )
    try:
        assert responder.stdout is not None
        await responder.stdout.readline()
        nc = await nats.connect(url)
        payload = (
            ToolCallRequest(
                tool_name="wait_for_user",
                arguments={},
                context=ToolCallContext(
                    session_id="vs_" + "0" * 32, thread_id="t", memory_mode=MemoryMode.PERSISTENT
                ),
            )
            .model_dump_json()
            .encode()
        )
        for _ in range(200):
            await nc.request(subject, payload, timeout=5)
        samples = []
        pids = {"client": os.getpid(), "responder": responder.pid, "nats-server": server_pid}
        with cpu_used(pids) as used:
            for _ in range(calls):
                started = time.perf_counter()
                await nc.request(subject, payload, timeout=5)
                samples.append((time.perf_counter() - started) * 1000)
        await nc.close()
        return statistics.median(samples), per_request_us(used, calls)
    finally:
        responder.terminate()
        await responder.wait()


async def in_process_handler(calls: int) -> float:
    async def wait_for_user(_: Any, __: ToolCallContext) -> WaitForUserOutput:
        return WaitForUserOutput()

    handlers = dict.fromkeys((s.name for s in tools_owned_by(ToolOwner.TOOLS)), wait_for_user)
    endpoint = next(
        e for e in tool_endpoints(ToolOwner.TOOLS, handlers) if e.name == "wait_for_user"
    )
    call = ToolCallRequest(
        tool_name="wait_for_user",
        arguments={},
        context=ToolCallContext(
            session_id="vs_" + "0" * 32, thread_id="t", memory_mode=MemoryMode.PERSISTENT
        ),
    )
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        reply = await endpoint.handler(ToolCallRequest.model_validate_json(call.model_dump_json()))
        reply.model_dump_json()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


@contextmanager
def paused(stack: Stack, names: tuple[str, ...]) -> Iterator[None]:
    """SIGSTOP these services for the block, then SIGCONT them."""
    pids = [service_pid(stack, name) for name in names]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def service_pid(stack: Stack, name: str) -> int:
    service = stack.services[name]
    assert isinstance(service, ServiceProcess)
    return service.process.pid


def resident_mb(stack: Stack) -> dict[str, float]:
    sizes = {}
    for name in stack.services:
        status = Path(f"/proc/{service_pid(stack, name)}/status").read_text()
        sizes[name] = round(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024, 1)  # type: ignore[union-attr]
    return sizes


def session_latency(gateway_url: str, count: int) -> float:
    samples = []
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        for n in range(count + 3):
            browser = VoiceClient(http)
            started = time.perf_counter()
            reply = browser.start(f"bench-{uuid.uuid4().hex[:10]}", user_id=f"u{uuid.uuid4().hex[:10]}",
                                  memory_mode="persistent")  # fmt: skip
            elapsed = (time.perf_counter() - started) * 1000
            assert reply.status_code == 200, reply.text
            browser.end()
            if n >= 3:
                samples.append(elapsed)
    return statistics.median(samples)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    seconds = args.seconds
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, str(HERE / "floors" / "http_echo.py"), str(echo_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    echo_url = f"http://127.0.0.1:{echo_port}"
    try:
        wait_reachable(echo_url)
        with (
            PrivateInfra() as infra,
            running_stack(
                nats_url=infra.nats.url,
                redis_url=infra.redis.url,
                database_url=infra.postgres.url,
                log_dir=Path(tempfile.mkdtemp(prefix="opencouch-bench-")),
                with_web=False,
                env=UNLIMITED,
            ) as stack,
        ):
            results["resident_mb_idle"] = resident_mb(stack)
            with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
                browser = VoiceClient(http)
                assert (
                    browser.start(
                        f"bench-{uuid.uuid4().hex[:10]}", memory_mode="persistent"
                    ).status_code
                    == 200
                )
                token = browser.token
            tool_body = '{"tool_name":"wait_for_user","call_id":"%s","arguments":{}}'
            stateful_body = (
                '{"tool_name":"get_crisis_support_template","call_id":"%s",'
                '"arguments":{"risk_level":"moderate"}}'
            )
            turn_body = (
                '{"client_turn_id":"%s","user_text":"a long day","assistant_text":"tell me more"}'
            )
            echo_body = '{"call_id":"%s","arguments":{}}'
            # Warm every process up before measuring.
            wrk(stack.gateway_url, f"{API}/tools", tool_body, connections=4, seconds=2, token=token)
            wrk(echo_url, "/echo", echo_body, connections=4, seconds=2)
            # The CPU each process spends per request shows where the full path's time goes.
            nats_pid, redis_pid = infra.nats.pid, infra.redis.pid
            assert nats_pid is not None
            assert redis_pid is not None
            on_path = {name: service_pid(stack, name) for name in ("voice-gateway", "tools")}
            on_path |= {"nats-server": nats_pid, "redis-server": redis_pid}
            # The sequential figures and their floors in interleaved rounds: this machine's
            # speed drifts within a minute, so each round's ratio compares runs seconds apart,
            # and the median round is reported.
            rounds = []
            for _ in range(SEQUENTIAL_ROUNDS):
                with cpu_used({"server": echo.pid}) as echo_used:
                    http_echo = wrk(echo_url, "/echo", echo_body, connections=1,
                                    seconds=seconds / 4)  # fmt: skip
                nats_echo, nats_cpu = asyncio.run(nats_floor(infra.nats.url, 1000, nats_pid))
                with cpu_used(on_path) as path_used:
                    pure = wrk(stack.gateway_url, f"{API}/tools", tool_body, connections=1,
                               seconds=seconds / 4, token=token)  # fmt: skip
                cpu_us = {
                    "http_echo": per_request_us(echo_used, http_echo.requests),
                    "nats_echo": nats_cpu,
                    "tool_call": per_request_us(path_used, pure.requests),
                }
                # A tool that keeps state runs only once its claim is decided (a pure one,
                # like wait_for_user, is asked meanwhile): the same run for one of those.
                stateful = wrk(stack.gateway_url, f"{API}/tools", stateful_body, connections=1,
                               seconds=seconds / 4, token=token)  # fmt: skip
                rounds.append(Round(http_echo.p50_ms, round(nats_echo, 3), pure, stateful, cpu_us))
            redis_ms = round(asyncio.run(redis_floor(infra.redis.url, 2000)), 3)
            floors = {
                "http_echo_p50_ms": round(statistics.median(r.http_echo_ms for r in rounds), 3),
                "nats_echo_p50_ms": round(statistics.median(r.nats_echo_ms for r in rounds), 3),
                "in_process_handler_p50_ms": round(asyncio.run(in_process_handler(2000)), 4),
                "redis_round_trip_p50_ms": redis_ms,
            }
            # Throughput in interleaved rounds too: one window of a few seconds on this machine
            # has given 1,321 and 1,590 calls/s for the same code minutes apart.
            echoes_32, tools_32 = [], []
            for _ in range(THROUGHPUT_ROUNDS):
                echoes_32.append(wrk(echo_url, "/echo", echo_body, connections=32,
                                     seconds=seconds / 2))  # fmt: skip
                tools_32.append(wrk(stack.gateway_url, f"{API}/tools", tool_body, connections=32,
                                    seconds=seconds / 2, token=token))  # fmt: skip
            floors["http_echo_32_per_second"] = median_load(echoes_32).per_second
            results["floors"] = floors
            results["tool_call"] = {
                "sequential": asdict(median_load([r.tool_call for r in rounds])),
                "concurrency_32": asdict(median_load(tools_32)),
                "concurrency_32_rounds": [
                    {
                        "http_echo_per_second": echo.per_second,
                        "tool_call_per_second": tool.per_second,
                    }
                    for echo, tool in zip(echoes_32, tools_32, strict=True)
                ],
                "ratio_to_floor_sum": round(statistics.median(r.ratio() for r in rounds), 2),
                # Not the target's floor: with the Redis round trip replay safety needs.
                "ratio_to_floor_sum_with_redis": round(
                    statistics.median(r.ratio(redis_ms) for r in rounds), 2
                ),
                "stateful_tool_sequential": asdict(median_load([r.stateful_tool for r in rounds])),
                "cpu_us_per_sequential_request": {
                    run: {
                        name: statistics.median(r.cpu_us[run][name] for r in rounds)
                        for name in rounds[0].cpu_us[run]
                    }
                    for run in rounds[0].cpu_us
                },
                "rounds": [asdict(r) for r in rounds],
            }
            results["open_loop_300"] = {
                "tool_call": asyncio.run(
                    open_loop(stack.gateway_url, f"{API}/tools", tool_body, token, 300, seconds)
                ),
                "client_against_http_echo": asyncio.run(
                    open_loop(echo_url, "/echo", echo_body, None, 300, seconds)
                ),
            }

            def turns_at_32() -> Load:
                return wrk(
                    stack.gateway_url,
                    f"{API}/turn",
                    turn_body,
                    connections=32,
                    seconds=seconds,
                    token=token,
                )

            results["turns_acknowledged"] = asdict(turns_at_32())
            results["session_p50_ms"] = round(session_latency(stack.gateway_url, 30), 2)
            results["resident_mb_after_load"] = resident_mb(stack)
            # The same turns with their consumers (tools' crisis screening, memory, the
            # finalizer) paused: what one gateway process acknowledges when, as deployed, its
            # consumers run on other machines rather than on these two cores. JetStream keeps
            # the turns; the consumers catch up once resumed (make load checks none is lost).
            with paused(stack, ("tools", "memory", "finalizer")):
                results["turns_acknowledged_gateway_alone"] = asdict(turns_at_32())
    finally:
        echo.terminate()
        echo.wait()
    return results


def verdict(results: dict[str, Any]) -> list[str]:
    problems = []
    if results["tool_call"]["ratio_to_floor_sum"] > 1.5:
        problems.append(
            f"sequential p50 is {results['tool_call']['ratio_to_floor_sum']}x the floor sum (target 1.5)"
        )
    if results["open_loop_300"]["tool_call"]["p99_ms"] > 10:
        problems.append(
            f"p99 at 300/s is {results['open_loop_300']['tool_call']['p99_ms']} ms (target 10)"
        )
    if results["tool_call"]["concurrency_32"]["per_second"] < 1500:
        problems.append(
            f"{results['tool_call']['concurrency_32']['per_second']:.0f} tool calls/s (target 1500)"
        )
    # Per gateway process: its consumers' CPU is not its own (see measure()); both are shown.
    alone = results["turns_acknowledged_gateway_alone"]["per_second"]
    if alone < 1000:
        problems.append(f"{alone:.0f} turns/s acknowledged by one gateway (target 1000)")
    for name, size in results["resident_mb_after_load"].items():
        if size > 150:
            problems.append(f"{name} holds {size} MB (target 150)")
    for name in ("tool_call",):
        for run in ("sequential", "concurrency_32", "stateful_tool_sequential"):
            if results[name][run]["errors"]:
                problems.append(f"{name} {run}: {results[name][run]['errors']} errors")
    for run in ("turns_acknowledged", "turns_acknowledged_gateway_alone"):
        if results[run]["errors"]:
            problems.append(f"{run}: {results[run]['errors']} errors")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/hot-path.json"))
    args = parser.parse_args()
    results = measure(args)
    problems = verdict(results)
    results["problems"] = problems
    f = results["floors"]
    t = results["tool_call"]
    print(f"{'figure':<44}{'p50 ms':>10}{'p99 ms':>10}{'per s':>10}")
    print(
        f"{'HTTP floor (FastAPI echo, uvloop+httptools)':<44}{f['http_echo_p50_ms']:>10}{'':>10}{f['http_echo_32_per_second']:>10.0f}"
    )
    print(f"{'NATS floor (nats-py request/reply echo)':<44}{f['nats_echo_p50_ms']:>10}")
    print(f"{'tool handler in process':<44}{f['in_process_handler_p50_ms']:>10}")
    print(f"{'Redis round trip (redis-py PING)':<44}{f['redis_round_trip_p50_ms']:>10}")
    print(
        f"{'tool call, sequential':<44}{t['sequential']['p50_ms']:>10}{t['sequential']['p99_ms']:>10}{t['sequential']['per_second']:>10.0f}"
    )
    print(
        f"{'tool call, 32 connections':<44}{t['concurrency_32']['p50_ms']:>10}{t['concurrency_32']['p99_ms']:>10}{t['concurrency_32']['per_second']:>10.0f}"
    )
    print(f"{'  ratio to (HTTP floor + NATS floor)':<44}{t['ratio_to_floor_sum']:>10}")
    print(
        f"{'  ratio to (HTTP + NATS + Redis floors)':<44}{t['ratio_to_floor_sum_with_redis']:>10}"
    )
    c = t["stateful_tool_sequential"]
    print(f"{'  a tool with state (claim first), sequential':<44}{c['p50_ms']:>10}{c['p99_ms']:>10}{c['per_second']:>10.0f}")  # fmt: skip
    o = results["open_loop_300"]
    print(
        f"{'tool call, open loop 300/s':<44}{o['tool_call']['p50_ms']:>10}{o['tool_call']['p99_ms']:>10}"
    )
    print(
        f"{'  the same client against the HTTP echo':<44}{o['client_against_http_echo']['p50_ms']:>10}{o['client_against_http_echo']['p99_ms']:>10}"
    )
    turns = results["turns_acknowledged"]
    print(
        f"{'turns acknowledged, 32 connections':<44}{turns['p50_ms']:>10}{turns['p99_ms']:>10}{turns['per_second']:>10.0f}"
    )
    alone = results["turns_acknowledged_gateway_alone"]
    print(
        f"{'  the same, its consumers paused':<44}{alone['p50_ms']:>10}{alone['p99_ms']:>10}{alone['per_second']:>10.0f}"
    )
    print(f"{'/session (memory context + config + mint)':<44}{results['session_p50_ms']:>10}")
    for run, used in t["cpu_us_per_sequential_request"].items():
        print(
            f"CPU us per request, {run + ':':<11}{', '.join(f'{n} {v:.0f}' for n, v in used.items())}"
        )
    print(f"resident MB idle:       {results['resident_mb_idle']}")
    print(f"resident MB after load: {results['resident_mb_after_load']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    for problem in problems:
        print(f"MISS {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    uvloop.install()
    main()
