"""Start OpenCouch Voice services as real processes, wait until healthy, stop them cleanly.

Stopping sends SIGTERM and expects exit code 0: a clean shutdown is part of what is tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opencouch.testing.servers import free_port

# How the emulator behaves as the product (its keyword rules and phrases), at the repo root.
EMULATOR_SCENARIO = Path("config") / "emulator" / "opencouch-companion.yaml"


def emulator_scenario() -> Path:
    """The product's emulator scenario file, found from this checkout's root."""
    for parent in Path(__file__).resolve().parents:
        if (parent / EMULATOR_SCENARIO).is_file():
            return parent / EMULATOR_SCENARIO
    raise FileNotFoundError(f"{EMULATOR_SCENARIO} not found above {__file__}")


# Offline, as the gateways are given no key below: an OpenAI key in the environment of a test
# run must not send anything to OpenAI. A test's own ``env`` may still choose otherwise.
OFFLINE: dict[str, dict[str, str]] = {"finalizer": {"FINALIZER_SUMMARISER": "extractive"}}


class ServiceFailedError(RuntimeError):
    """A service did not become healthy, or did not stop cleanly; carries its log tail."""


@dataclass
class ServiceProcess:
    """One running service and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    healthy: Callable[[], bool]
    module: str
    env: Mapping[str, str]

    def restart(self) -> ServiceProcess:
        """Start the same service again (after ``stop``), appending to the same log."""
        return start_service(self.name, self.module, self.env, self.log_path.parent, self.healthy)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's log, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until the health check passes; raise with the log if it dies or times out."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None:
                raise ServiceFailedError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServiceFailedError(
                    f"{self.name} not healthy in {timeout:g}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; SIGKILL only if it hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def http_ok(url: str) -> Callable[[], bool]:
    """A health check: GET ``url`` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def nats_ping(name: str, id_file: Path, nats_url: str) -> Callable[[], bool]:
    """A health check: the instance recorded in ``id_file`` answers ``$SRV.PING``."""

    def check() -> bool:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "opencouch.runtime.health",
                "--name",
                name,
                "--id-file",
                str(id_file),
                "--nats-url",
                nats_url,
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    return check


def start_service(
    name: str,
    module: str,
    env: Mapping[str, str],
    log_dir: Path,
    healthy: Callable[[], bool],
) -> ServiceProcess:
    """Run ``python -m module`` with ``env`` added to this environment."""
    log_path = log_dir / f"{name}.log"
    handle = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return ServiceProcess(name, process, log_path, healthy, module, env)


class RunningService(Protocol):
    """A service a test can stop and start again: a local process, or a composed container."""

    def stop(self, timeout: float = ...) -> int:
        """SIGTERM and wait; the exit code."""

    def restart(self) -> RunningService:
        """Start it again after ``stop``."""

    def wait_healthy(self, timeout: float = ...) -> None:
        """Block until its health check passes."""


@dataclass
class Stack:
    """Every service of the product, running against real infrastructure."""

    gateway_url: str
    emulator_url: str
    web_url: str
    nats_url: str
    redis_url: str
    database_url: str
    gateway_urls: list[str] = field(default_factory=list)
    """Every gateway replica's URL (the first is ``gateway_url``)."""
    metrics_urls: dict[str, str] = field(default_factory=dict)
    """Where each service (by name) serves ``/metrics``: a port of its own, never the API's."""
    services: dict[str, RunningService] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)


def _record_exit(stack: Stack, name: str) -> None:
    # Looked up at exit: a test may have replaced the process with a restarted one.
    stack.exit_codes[name] = stack.services[name].stop()


@contextmanager
def running_stack(
    *,
    nats_url: str,
    redis_url: str,
    database_url: str,
    log_dir: Path,
    with_web: bool = True,
    env: Mapping[str, str] | None = None,
    gateways: int = 1,
) -> Iterator[Stack]:
    """Start emulator, tools, memory, finalizer, gateway(s) (and web); stop all on exit.

    ``env`` is added to every service's environment (after the defaults here). ``gateways``
    replicas are named ``voice-gateway``, ``voice-gateway-2``... Exit codes after a SIGTERM are
    left in ``Stack.exit_codes`` for the test to check.
    """
    gateway_ports = [free_port() for _ in range(gateways)]
    emulator_port, web_port = free_port(), free_port()
    gateway_names = ["voice-gateway", *(f"voice-gateway-{n}" for n in range(2, gateways + 1))]
    metrics_ports = {
        name: free_port() for name in ("tools", "memory", "finalizer", *gateway_names, "web")
    }
    stack = Stack(
        gateway_url=f"http://127.0.0.1:{gateway_ports[0]}",
        gateway_urls=[f"http://127.0.0.1:{port}" for port in gateway_ports],
        emulator_url=f"http://127.0.0.1:{emulator_port}",
        web_url=f"http://127.0.0.1:{web_port}",
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        metrics_urls={
            name: f"http://127.0.0.1:{port}/metrics" for name, port in metrics_ports.items()
        },
    )
    infra = {"NATS_URL": nats_url, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    ids = {name: log_dir / f"{name}.id" for name in ("tools", "memory", "finalizer")}
    plan: list[tuple[str, str, dict[str, str], Callable[[], bool]]] = [
        (
            "realtime-emulator",
            "opencouch.realtime_emulator",
            {
                "REALTIME_EMULATOR_PORT": str(emulator_port),
                "REALTIME_EMULATOR_SCENARIO": str(emulator_scenario()),
            },
            http_ok(f"{stack.emulator_url}/healthz"),
        ),
        *[
            (
                name,
                f"opencouch.{name}",
                {
                    f"{name.upper()}_ID_FILE": str(ids[name]),
                    f"{name.upper()}_METRICS_PORT": str(metrics_ports[name]),
                    **OFFLINE.get(name, {}),
                },
                nats_ping(f"opencouch-{name}", ids[name], nats_url),
            )
            for name in ("tools", "memory", "finalizer")
        ],
        *[
            (
                name,
                "opencouch.voice_gateway",
                {
                    "VOICE_GATEWAY_PORT": str(port),
                    "VOICE_GATEWAY_METRICS_PORT": str(metrics_ports[name]),
                    "VOICE_GATEWAY_EMULATOR_BASE_URL": f"{stack.emulator_url}/v1",
                    "OPENAI_API_KEY": "",
                    "VOICE_GATEWAY_END_WAIT_SECONDS": "10",
                    # The web page below calls the gateway from its own origin.
                    "VOICE_GATEWAY_CORS_ORIGINS": stack.web_url,
                    "VOICE_GATEWAY_TOOL_TIMEOUT_SECONDS": "2",
                    # Every test browser comes from 127.0.0.1, and runs on this machine may
                    # overlap (the counters are in Redis): the per-address limits are tests
                    # of their own.
                    "VOICE_GATEWAY_RATE_LIMIT_SESSION_PER_IP": "100000/minute",
                    "VOICE_GATEWAY_RATE_LIMIT_CALLS_PER_IP": "100000/minute",
                },
                http_ok(f"http://127.0.0.1:{port}/readyz"),
            )
            for name, port in zip(gateway_names, gateway_ports, strict=True)
        ],
    ]
    if with_web:
        plan.append(
            (
                "web",
                "opencouch.web",
                {
                    "WEB_PORT": str(web_port),
                    "WEB_METRICS_PORT": str(metrics_ports["web"]),
                    "WEB_API_BASE_URL": stack.gateway_url,
                    "WEB_REALTIME_ORIGIN": stack.emulator_url,
                },
                http_ok(f"{stack.web_url}/healthz"),
            )
        )
    with ExitStack() as cleanup:
        for name, module, service_env, healthy in plan:
            stack.services[name] = start_service(
                name, module, {**infra, **service_env, **(env or {})}, log_dir, healthy
            )
            cleanup.callback(_record_exit, stack, name)
        for service in stack.services.values():
            service.wait_healthy()
        yield stack
