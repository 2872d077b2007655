"""Run every OpenCouch Voice service on this machine, without Docker.

    uv run python scripts/local_stack.py up      # start all, return once all are healthy
    uv run python scripts/local_stack.py status  # which are running and healthy
    uv run python scripts/local_stack.py down    # stop what `up` started

NATS (with JetStream), Redis and Postgres must already run; NATS_URL, REDIS_URL and
DATABASE_URL (and the per-service variables) are honoured as the services honour them.
Each service runs as ``uv run python -m opencouch.<module>`` in its own process group, with
its pid in ``.run/<service>.pid`` and its output in ``.run/<service>.log``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".run"
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class Service:
    """One service process and how to tell that it is healthy."""

    name: str
    module: str
    prefix: str
    # HTTP services: the path that answers 200 when healthy, and the default address.
    health_path: str | None = None
    default_port: int | None = None

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return RUN_DIR / f"{self.name}.log"

    def health_url(self) -> str:
        """Where the HTTP health check goes, from the same variables the service reads."""
        host = os.environ.get(f"{self.prefix}HOST", "127.0.0.1")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        port = os.environ.get(f"{self.prefix}PORT", str(self.default_port))
        return f"http://{host}:{port}{self.health_path}"

    def health_command(self) -> list[str]:
        """The NATS health CLI for this instance (the same one docker-compose.yml uses)."""
        short = self.name
        id_file = os.environ.get(f"{self.prefix}ID_FILE", f"/tmp/opencouch/{short}.id")
        nats_url = os.environ.get(
            f"{self.prefix}NATS_URL", os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
        )
        return [
            sys.executable,
            "-m",
            "opencouch.runtime.health",
            "--name",
            f"opencouch-{short}",
            "--id-file",
            id_file,
            "--nats-url",
            nats_url,
        ]


SERVICES = [
    Service(
        "realtime-emulator", "opencouch.realtime_emulator", "REALTIME_EMULATOR_", "/healthz", 8090
    ),
    Service("tools", "opencouch.tools", "TOOLS_"),
    Service("memory", "opencouch.memory", "MEMORY_"),
    Service("finalizer", "opencouch.finalizer", "FINALIZER_"),
    Service("voice-gateway", "opencouch.voice_gateway", "VOICE_GATEWAY_", "/readyz", 8000),
    Service("web", "opencouch.web", "WEB_", "/healthz", 8080),
]

# Variables a service gets unless the environment sets them: the emulator plays the product.
DEFAULT_ENV = {
    "realtime-emulator": {
        "REALTIME_EMULATOR_SCENARIO": str(ROOT / "config" / "emulator" / "opencouch-companion.yaml")
    },
}

INFRASTRUCTURE = {
    "NATS": ("NATS_URL", "nats://127.0.0.1:4222", 4222),
    "Redis": ("REDIS_URL", "redis://127.0.0.1:6379/0", 6379),
    "Postgres": ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres", 5432),
}


# -- processes -------------------------------------------------------------------------------


def recorded_pid(service: Service) -> int | None:
    """The pid `up` recorded, if that process is still ours and alive."""
    try:
        pid = int(service.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_our_process(pid, service) else None


def is_our_process(pid: int, service: Service) -> bool:
    """Alive, leading its own process group, and running this service's module.

    Guards against a stale pid file whose number the system has since given to another process.
    """
    try:
        os.kill(pid, 0)
        if os.getpgid(pid) != pid:
            return False
    except (ProcessLookupError, PermissionError):
        return False
    result = subprocess.run(
        ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return service.module in result.stdout


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group `up` created.

    The processes were started by an earlier `up`, so it is init that reaps them, whenever it
    gets to it; a zombie has already exited and must not hold up `down`.
    """
    result = subprocess.run(
        ["ps", "-A", "-o", "pgid=", "-o", "stat="], capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == str(pgid) and not fields[1].startswith("Z"):
            return True
    return False


def start(service: Service) -> int:
    """Start one service in a new process group; record its pid."""
    with service.log_file.open("wb") as log:
        process = subprocess.Popen(
            ["uv", "run", "python", "-m", service.module],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**DEFAULT_ENV.get(service.name, {}), **os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own group, so `down` can also reach whatever `uv run` started.
            start_new_session=True,
        )
    service.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop(service: Service) -> None:
    """SIGTERM, wait, then SIGKILL what is left; forget the pid."""
    pid = recorded_pid(service)
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return
    # To the leader only: `uv run` forwards it to the service, which then shuts down cleanly.
    # Signalling the whole group would hand the service a second SIGTERM, which uvicorn takes
    # as "exit now".
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pid):
        print(f"  {service.name}: still running after {STOP_GRACE_SECONDS:.0f}s, killing")
        os.killpg(pid, signal.SIGKILL)
    service.pid_file.unlink(missing_ok=True)
    print(f"  {service.name}: stopped (pid {pid})")


# -- health ----------------------------------------------------------------------------------


def is_healthy(service: Service) -> bool:
    """One health probe: HTTP 200, or the NATS health CLI exiting 0."""
    if service.health_path is not None:
        try:
            with urllib.request.urlopen(service.health_url(), timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
    try:
        probe = subprocess.run(
            service.health_command(), capture_output=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def log_tail(service: Service) -> str:
    """The last lines the service wrote, for a failure report."""
    try:
        lines = service.log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in lines[-LOG_TAIL_LINES:]) or "    (log is empty)"


def unreachable_infrastructure() -> list[str]:
    """NATS, Redis or Postgres that refuse a TCP connection, each with the URL tried."""
    problems = []
    for label, (variable, default, default_port) in INFRASTRUCTURE.items():
        url = os.environ.get(variable, default)
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or default_port
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError:
            # Only the address: a URL may carry a password.
            problems.append(f"{label} at {host}:{port} ({variable})")
    return problems


# -- commands --------------------------------------------------------------------------------


def up(timeout: float) -> int:
    """Start every service that is not running, then wait until all are healthy."""
    missing = unreachable_infrastructure()
    if missing:
        print("Not reachable: " + "; ".join(missing), file=sys.stderr)
        print("Start them first (nats-server -js, redis-server, postgres).", file=sys.stderr)
        return 1

    RUN_DIR.mkdir(exist_ok=True)
    for service in SERVICES:
        pid = recorded_pid(service)
        if pid is not None:
            print(f"  {service.name}: already running (pid {pid})")
        else:
            print(f"  {service.name}: started (pid {start(service)}), log {service.log_file}")

    waiting = list(SERVICES)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for service in list(waiting):
            if recorded_pid(service) is None:
                print(f"\n{service.name} exited during start-up. Its log:\n{log_tail(service)}")
                service.pid_file.unlink(missing_ok=True)
                return 1
            if is_healthy(service):
                print(f"  {service.name}: healthy")
                waiting.remove(service)
        if waiting:
            time.sleep(0.5)

    if waiting:
        for service in waiting:
            print(
                f"\n{service.name} is not healthy after {timeout:.0f}s. Its log:\n{log_tail(service)}"
            )
        print("\nThe services are left running to inspect; `make down-local` stops them.")
        return 1
    print("All services are healthy: web http://127.0.0.1:8080/voice")
    return 0


def down() -> int:
    """Stop every service `up` recorded, the web page first and the emulator last."""
    for service in reversed(SERVICES):
        stop(service)
    return 0


def status() -> int:
    """Print each service's pid and health; exit 1 unless all are healthy."""
    all_healthy = True
    for service in SERVICES:
        pid = recorded_pid(service)
        healthy = pid is not None and is_healthy(service)
        all_healthy &= healthy
        state = "stopped" if pid is None else ("healthy" if healthy else "unhealthy")
        print(f"  {service.name:<18} {state:<10} {'' if pid is None else f'pid {pid}'}")
    return 0 if all_healthy else 1


def main() -> None:
    """Parse the command line and run ``up``, ``down`` or ``status``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("LOCAL_STACK_TIMEOUT", "60")),
        help="seconds `up` waits for every service to be healthy (LOCAL_STACK_TIMEOUT)",
    )
    args = parser.parse_args()
    commands = {"up": lambda: up(args.timeout), "down": down, "status": status}
    sys.exit(commands[args.command]())


if __name__ == "__main__":
    main()
