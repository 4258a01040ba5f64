"""The Compose stack's files, checked without Docker: by Docker Compose's own loader (compose-go),
the Compose Specification schema, the collector and Jaeger binaries, and promtool."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from checktools import compose_schema, healthcheck_probe, load_compose
from support import CHECKOUT

from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack import binaries
from tbmon.stack.components import COLLECTOR_FEATURE_GATES
from tbmon.stack.resources import COLLECTOR_CONFIG, COLLECTOR_MANIFEST, STACK_DATA
from tbmon.stack.supervisor import Supervisor

COMPOSE = STACK_DATA / "docker-compose.monitoring.yml"
ENV_EXAMPLE = STACK_DATA / ".env.example"
SECRETS = {"GRAFANA_ADMIN_PASSWORD": "a-test-password", "ALERT_BRIDGE_TOKEN": "a-test-token"}
RAW: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
PROFILES = sorted({p for s in RAW["services"].values() for p in s.get("profiles", [])})
#: What people and bots reach: Grafana, OTLP, and the seed's "Access Dashboards" list (plus the
#: Jaeger UI, where the design card has users view traces). Everything else stays internal.
PUBLISHED = {
    ("grafana", 3000),
    ("otel-collector", 4317),
    ("otel-collector", 4318),
    ("otel-collector", 8000),
    ("prometheus", 9090),
    ("alertmanager", 9093),
    ("health", 8080),
    ("jaeger", 16686),
}
#: Host paths that node exporter and cAdvisor read (present on every Docker host).
HOST_PATHS = {"/", "/var/run", "/sys", "/var/lib/docker", "/dev/disk"}
#: The seed's .env variables.
SEED_VARIABLES = {
    "GRAFANA_ADMIN_USER",
    "GRAFANA_ADMIN_PASSWORD",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CRITICAL_CHAT_ID",
    "TELEGRAM_WARNING_CHAT_ID",
    "DATABASE_URL",
    "SMTP_HOST",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_FROM",
}


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()]
    return {key: value for key, value in (p for p in pairs if len(p) == 2) if key[0] != "#"}


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    """The stack as Docker Compose loads it from the example .env, every profile enabled."""
    loaded = load_compose(COMPOSE, SECRETS, env_files=[ENV_EXAMPLE], profiles=PROFILES)
    assert loaded.returncode == 0, loaded.stderr
    document: dict[str, Any] = json.loads(loaded.stdout)
    return document


def test_compose_file_matches_the_compose_specification_schema() -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(RAW)]
    assert errors == []
    # The schema is strict: a misspelt key is an error, not ignored.
    assert list(validator.iter_errors({"services": {"x": {"imagee": "busybox"}}}))


def test_docker_compose_loads_every_service_and_profile(project: dict[str, Any]) -> None:
    assert set(project["services"]) == set(RAW["services"])
    for name in ("otel-collector", "prometheus", "alertmanager", "jaeger", "loki", "grafana"):
        assert name in project["services"]
    for name in ("node-exporter", "cadvisor", "health", "alert-bridge", "processors"):
        assert name in project["services"]
    assert project["services"]["demo-bot"]["profiles"] == ["demo"]


@pytest.mark.parametrize("password", [None, ""])
def test_the_stack_refuses_to_start_without_a_grafana_password(password: str | None) -> None:
    env = {"ALERT_BRIDGE_TOKEN": "t"}
    if password is not None:
        env["GRAFANA_ADMIN_PASSWORD"] = password
    loaded = load_compose(COMPOSE, env, env_files=[ENV_EXAMPLE])
    assert loaded.returncode == 1
    assert "required variable GRAFANA_ADMIN_PASSWORD is missing a value" in loaded.stderr
    assert "stack/src/tbmon/stack/.env" in loaded.stderr  # says where to set it


def test_grafana_admin_comes_from_env_and_anonymous_access_is_off(
    project: dict[str, Any],
) -> None:
    env = project["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_SECURITY_ADMIN_USER"] == "admin"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_every_mounted_file_and_build_context_exists(project: dict[str, Any]) -> None:
    missing = []
    for name, service in project["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] != "bind":
                continue
            source = Path(volume["source"])
            if source.is_relative_to(CHECKOUT):
                if not source.exists():
                    missing.append(f"{name}: {source}")
            else:
                assert str(source) in HOST_PATHS, f"{name} mounts {source}"
        if "build" in service:
            context = Path(service["build"]["context"])
            if not (context / service["build"].get("dockerfile", "Dockerfile")).is_file():
                missing.append(f"{name}: Dockerfile in {context}")
    assert missing == []


def test_only_grafana_otlp_and_user_facing_ports_are_published_on_loopback(
    project: dict[str, Any],
) -> None:
    published = set()
    for name, service in project["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name}:{port['target']} is not loopback"
            assert int(port["published"]) == port["target"]
            published.add((name, port["target"]))
    assert published == PUBLISHED


def test_images_are_pinned_to_versions() -> None:
    for name, service in RAW["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue
        assert re.search(r":v?\d+\.\d+(\.\d+)?$", image), f"{name}: {image} is not pinned"


#: demo-bot is a client with no endpoint (restarted when it exits); Loki's distroless image has no
#: program a probe could run (a wget probe there fails forever), so it is checked from outside.
WITHOUT_HEALTHCHECK = {"demo-bot", "loki"}


def test_services_restart_have_healthchecks_and_keep_data_in_named_volumes(
    project: dict[str, Any],
) -> None:
    services = project["services"]
    one_shots = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"alertmanager-config", "jaeger-volume", "stack-config"}
    for name, service in services.items():
        assert service["networks"] == {"tbmon": None}, name
        if name in one_shots:
            continue
        assert service["restart"] == "unless-stopped", name
        if name in WITHOUT_HEALTHCHECK:
            assert "healthcheck" not in service, name
        else:
            assert service["healthcheck"]["test"], name
    for name in one_shots:  # each one-shot must finish before the services that need it
        dependents = [
            s["depends_on"][name]["condition"]
            for s in services.values()
            if name in s.get("depends_on", {})
        ]
        assert dependents
        assert set(dependents) == {"service_completed_successfully"}
    named = {
        (name, v["target"])
        for name, s in services.items()
        for v in s.get("volumes", [])
        if v["type"] == "volume"
    }
    for stateful in [
        ("otel-collector", "/var/lib/otelcol"),
        ("processors", "/var/lib/tbmon/processors"),
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("jaeger", "/badger"),
        ("loki", "/loki"),
        ("grafana", "/var/lib/grafana"),
        ("alert-bridge", "/var/lib/tbmon/bridge"),
        ("postgres", "/var/lib/postgresql"),
    ]:
        assert stateful in named
    used = {
        v["source"]
        for s in services.values()
        for v in s.get("volumes", [])
        if v["type"] == "volume"
    }
    assert used == set(project["volumes"])


def test_env_example_lists_every_variable_the_stack_reads() -> None:
    example = _env_example()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert interpolated - example.keys() == set()
    assert example.keys() - interpolated == set()
    assert example.keys() >= SEED_VARIABLES
    # No secret has a value in the example.
    for key in ("GRAFANA_ADMIN_PASSWORD", "ALERT_BRIDGE_TOKEN", "TELEGRAM_BOT_TOKEN"):
        assert example[key] == ""


def test_collector_image_is_built_with_the_manifests_builder_version() -> None:
    manifest = yaml.safe_load(COLLECTOR_MANIFEST.read_text())
    dockerfile = (CHECKOUT / "otel-collector" / "Dockerfile").read_text()
    assert f"ARG OCB_VERSION={manifest['dist']['version']}\n" in dockerfile
    assert f"/build/build/{manifest['dist']['name']} " in dockerfile


@pytest.mark.parametrize(
    ("dockerfile", "context"),
    [
        (CHECKOUT / "Dockerfile", CHECKOUT),
        (CHECKOUT / "otel-collector" / "Dockerfile", CHECKOUT / "otel-collector"),
    ],
)
def test_dockerfiles_copy_files_that_exist(dockerfile: Path, context: Path) -> None:
    sources = [
        source
        for line in dockerfile.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources
    assert [s for s in sources if not (context / s).exists()] == []


def test_collector_config_is_valid_with_composes_environment(project: dict[str, Any]) -> None:
    env = project["services"]["otel-collector"]["environment"]
    assert env["TBMON_PROCESSORS_ENDPOINT"] == "processors:4319"
    assert env["TBMON_LOGS_OTLP_ENDPOINT"] == "http://loki:3100/otlp/v1/logs"
    # Compose's own command-line flags (the feature gates), as the local stack's.
    gates = [
        flag
        for flag in project["services"]["otel-collector"]["command"]
        if flag.startswith("--feature-gates=")
    ]
    assert gates == [f"--feature-gates={COLLECTOR_FEATURE_GATES}"]
    program = binaries.OTELCOL.path(StackSettings().cache_dir)
    result = subprocess.run(
        [
            str(program),
            "validate",
            "--config=file:" + str(COLLECTOR_CONFIG),
            *gates,
        ],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_jaeger_config_is_valid_with_composes_environment(project: dict[str, Any]) -> None:
    env = project["services"]["jaeger"]["environment"]
    program = binaries.JAEGER.path(StackSettings().cache_dir)
    result = subprocess.run(
        [
            str(program),
            "validate",
            "--config=file:" + str(STACK_DATA / "jaeger/config.yaml"),
        ],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_prometheus_config_as_compose_mounts_it_passes_promtool() -> None:
    promtool = binaries.PROMTOOL.path(StackSettings().cache_dir)
    result = subprocess.run(
        [str(promtool), "check", "config", str(STACK_DATA / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((STACK_DATA / "prometheus/prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    assert jobs["health"]["metrics_path"] == "/health/metrics"
    for job, target in [
        ("otel-collector", "otel-collector:8000"),
        ("node-exporter", "node-exporter:9100"),
        ("cadvisor", "cadvisor:8080"),
        ("health", "health:8080"),
    ]:
        assert jobs[job]["static_configs"][0]["targets"] == [target]


def test_prometheus_in_compose_has_retention_from_env_exemplars_and_snapshots(
    project: dict[str, Any],
) -> None:
    example = _env_example()
    command = project["services"]["prometheus"]["command"]
    assert f"--storage.tsdb.retention.time={example['TBMON_PROMETHEUS_RETENTION_TIME']}" in command
    assert f"--storage.tsdb.retention.size={example['TBMON_PROMETHEUS_RETENTION_SIZE']}" in command
    assert "--enable-feature=exemplar-storage" in command
    assert "--web.enable-admin-api" in command


def test_loki_config_ingests_otlp_with_structured_metadata_and_retention() -> None:
    text = (STACK_DATA / "loki/loki.yaml").read_text()
    # Loki runs with -config.expand-env=true: give each ${VAR:-default} its default.
    config = yaml.safe_load(re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text))
    (period,) = config["schema_config"]["configs"]
    assert (period["store"], period["schema"]) == ("tsdb", "v13")
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["limits_config"]["retention_period"] == _env_example()["TBMON_LOG_RETENTION"]
    assert config["compactor"]["retention_enabled"] is True


@pytest.mark.stack
def test_collector_image_healthcheck_probe_tells_up_from_down(tmp_path: Path) -> None:
    probe = str(healthcheck_probe())
    settings = isolated_settings(tmp_path)
    supervisor = Supervisor(settings)
    url = settings.url(settings.collector_health_port, "/")
    try:
        supervisor.up(["collector"])
        assert subprocess.run([probe, url], capture_output=True, check=False).returncode == 0
    finally:
        supervisor.down(["collector"])
    down = subprocess.run([probe, url], capture_output=True, text=True, check=False)
    assert down.returncode == 1
    assert "connection refused" in down.stderr


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> where ``service`` mounts it."""
    return {v["source"]: v["target"] for v in service["volumes"] if v["type"] == "volume"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [({}, "  ) > 0.25\n"), ({"TBMON_THRESHOLD_DRAWDOWN_CRITICAL": "0.3"}, "  ) > 0.3\n")],
)
def test_stack_config_renders_the_thresholds_prometheus_and_grafana_read(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    loaded = load_compose(COMPOSE, {**SECRETS, **variables}, env_files=[ENV_EXAMPLE])
    assert loaded.returncode == 0, loaded.stderr
    services = json.loads(loaded.stdout)["services"]
    config = services["stack-config"]
    env = config["environment"]
    # Every threshold setting reaches the renderer, with the settings' own default.
    fields = [name for name in StackSettings.model_fields if name.startswith("threshold_")]
    assert set(env) == {f"TBMON_{name.upper()}" for name in fields}
    defaults = StackSettings.model_construct()
    for name in fields:
        value = json.loads(env[f"TBMON_{name.upper()}"])
        if f"TBMON_{name.upper()}" not in variables:
            assert value == getattr(defaults, name), name
    # What it writes is what Prometheus and Grafana read.
    rendered = _mounts(config)
    assert _mounts(services["prometheus"])["prometheus-rules"] == "/etc/prometheus/rules"
    assert _mounts(services["grafana"])["grafana-dashboards"] == "/etc/grafana/dashboards"
    prometheus = yaml.safe_load((STACK_DATA / "prometheus/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    provisioning = yaml.safe_load(
        (STACK_DATA / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    )
    assert provisioning["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    # Its command, run here with Compose's environment, into stand-ins for the volumes.
    (script,) = config["command"]
    for volume, target in rendered.items():
        script = script.replace(target, str(tmp_path / volume))
    done = subprocess.run(
        [*config["entrypoint"], script],
        env={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sorted(path.name for path in (tmp_path / "prometheus-rules").glob("*.yml"))
    assert rules == sorted(path.name for path in (STACK_DATA / "prometheus/rules").glob("*.yml"))
    assert expected in (tmp_path / "prometheus-rules" / "trading.yml").read_text()
    dashboards = tmp_path / "grafana-dashboards" / "tbmon-trading-performance.json"
    assert json.loads(dashboards.read_text())["uid"] == "tbmon-trading-performance"
