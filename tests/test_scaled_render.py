"""The scaled topology's configs, rendered from the single-node ones (no stack started): each is
accepted by the real program that reads it, and the rendering keeps what the single-node config
says about queues and retries while splitting the pipeline at the processors host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tbmon.ports import isolated_settings
from tbmon.stack import binaries, scaled_render
from tbmon.stack.components import COLLECTOR_FEATURE_GATES, Layout
from tbmon.stack.resources import COLLECTOR_CONFIG
from tbmon.stack.scaled import SCALED_COMPONENTS, ScaledBase, ScaledSettings, address

SINGLE = yaml.safe_load((COLLECTOR_CONFIG).read_text())


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ScaledBase:
    return isolated_settings(tmp_path_factory.mktemp("scaled-render"), ScaledSettings)


def _validate(
    program: Path, config: dict[str, Any], tmp_path: Path, name: str, *flags: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    scaled_render.write(path, config)
    done = subprocess.run(
        [str(program), "validate", f"--config=file:{path}", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"


@pytest.mark.parametrize(
    ("role", "n"), [("agent", 1), ("agent", 2), ("gateway", 1), ("gateway", 2)]
)
def test_collector_configs_validate(
    settings: ScaledBase, tmp_path: Path, role: str, n: int
) -> None:
    config = scaled_render.collector_document(settings, role, n, tmp_path / "queue")
    # With the single-node collector's flags (its feature gates), as the stack starts it.
    gates = f"--feature-gates={COLLECTOR_FEATURE_GATES}"
    _validate(binaries.OTELCOL.path(settings.cache_dir), config, tmp_path, f"{role}-{n}", gates)


@pytest.mark.parametrize("role", ["store", "collector", "query"])
def test_jaeger_roles_validate(settings: ScaledBase, tmp_path: Path, role: str) -> None:
    config = scaled_render.jaeger_document(settings, role, tmp_path / "badger")
    _validate(binaries.JAEGER.path(settings.cache_dir), config, tmp_path, f"jaeger-{role}")


def test_agents_balance_over_gateways_with_the_single_node_queue(
    settings: ScaledBase, tmp_path: Path
) -> None:
    agent = scaled_render.collector_document(settings, "agent", 1, tmp_path)
    (feed,) = scaled_render.feed_exporters(SINGLE)
    original = SINGLE["exporters"][feed]
    gateways = [address(settings, f"gateway_{n}_otlp_grpc_port") for n in (1, 2)]
    pipelines = agent["service"]["pipelines"]
    # Only the ingest stage: nothing exported to a backend from an agent.
    assert {e for p in pipelines.values() for e in p["exporters"]} == {
        f"load_balancing/{signal}" for signal in ("traces", "metrics", "logs")
    }
    for signal, key in scaled_render.ROUTING_KEYS.items():
        exporter = agent["exporters"][f"load_balancing/{signal}"]
        assert exporter["routing_key"] == key
        assert exporter["resolver"]["static"]["hostnames"] == gateways
        # The persistent queue stays in front of the routing; each endpoint retries forever.
        assert exporter["sending_queue"]["storage"] == original["sending_queue"]["storage"]
        assert "storage" not in exporter["protocol"]["otlp"]["sending_queue"]
        assert exporter["protocol"]["otlp"]["retry_on_failure"]["max_elapsed_time"] == "0s"
        assert exporter["protocol"]["otlp"]["tls"] == original["tls"]
    # No processor holds acknowledged data in memory ahead of the persistent queue.
    assert not [p for pl in pipelines.values() for p in pl["processors"] if p.startswith("batch")]


def test_gateways_keep_the_whole_pipeline_over_both_processors_hosts(
    settings: ScaledBase, tmp_path: Path
) -> None:
    gateway = scaled_render.collector_document(settings, "gateway", 2, tmp_path)
    assert set(gateway["service"]["pipelines"]) == set(SINGLE["service"]["pipelines"])
    hosts = [address(settings, f"processors_{n}_grpc_port") for n in (1, 2)]
    exporter = gateway["exporters"]["load_balancing/traces"]
    assert exporter["resolver"]["static"]["hostnames"] == hosts
    text = json.dumps(gateway)
    assert address(settings, "traces_collector_otlp_port") in text
    assert address(settings, "logs_insert_port") in text
    assert scaled_render.FEED_VARIABLE not in text
    one = scaled_render.collector_document(
        settings.model_copy(update={"gateway_replicas": 1}), "gateway", 1, tmp_path
    )
    assert one["exporters"]["load_balancing/traces"]["resolver"]["static"]["hostnames"] == [
        hosts[0]
    ]


def test_prometheus_pair_scrapes_alike_and_tells_the_store_apart(
    settings: ScaledBase, tmp_path: Path
) -> None:
    for replica in ("a", "b"):
        document = scaled_render.prometheus_document(settings, replica)
        # Same external labels (same scrape phase, same alerts); the replica only to the store.
        assert "replica" not in document["global"]["external_labels"]
        (write,) = document["remote_write"]
        assert write["write_relabel_configs"][0]["replacement"] == replica
        (targets,) = document["alerting"]["alertmanagers"][0]["static_configs"]
        assert targets["targets"] == [address(settings, f"alertmanager_{n}_port") for n in (1, 2)]
        path = tmp_path / f"prometheus-{replica}.yml"
        scaled_render.write(path, document)
        done = subprocess.run(
            [str(binaries.PROMTOOL.path(settings.cache_dir)), "check", "config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_instance_has_its_own_ports(settings: ScaledBase) -> None:
    ports = settings.ports()
    assert len(set(ports.values())) == len(ports)
    for component in SCALED_COMPONENTS:
        assert component.ports, component.name
        for field in component.ports:
            assert field in ports, f"{component.name}: {field}"
    defaults = ScaledSettings()
    assert min(defaults.ports().values()) == defaults.port_base
    assert defaults.data_dir.name == "tbmon-scaled"


def test_status_of_the_scaled_topology_from_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tbmon", "stack", "status", "--topology", "scaled", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"TBMON_SCALED_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    document = json.loads(done.stdout)
    assert document["data_dir"] == str(tmp_path)
    names = [c["name"] for c in document["components"]]
    assert names == [c.name for c in SCALED_COMPONENTS]
    assert {c["state"] for c in document["components"]} == {"stopped"}


def test_each_processors_host_keeps_its_marks_in_its_own_directory(settings: ScaledBase) -> None:
    """Metrics reach a processors host by service, so each keeps the marks of its own bots:
    two hosts writing one file would overwrite each other's."""
    hosts = [c for c in SCALED_COMPONENTS if c.name.startswith("processors-")]
    directories = {
        host.environment(Layout(settings, host.name))["PROCESSORS_ANALYTICS_STATE_DIR"]
        for host in hosts
    }
    assert len(hosts) == 2
    assert len(directories) == 2
    assert all(Path(d).is_relative_to(settings.data_dir) for d in directories)
