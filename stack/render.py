"""Turn the Compose stack's Prometheus and Alertmanager configs into the local stack's.

Prometheus 2.42 and Alertmanager 0.25 do not expand environment variables, so one file cannot
serve both deployments the way the collector's config does. The files under ``stack/`` are
written for Compose (service names, container paths); here the local stack rewrites them:
every ``service:port`` of a Compose service becomes ``<bind host>:<local port>``, every
container mount path becomes the checkout's folder, and scrape targets that only exist in
Compose (cAdvisor, say) are left out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from tbmon.settings import PROJECT_ROOT, StackSettings

if TYPE_CHECKING:
    from tbmon.stack.components import Layout

#: Compose ``service:port`` -> the StackSettings port field serving it in the local stack.
COMPOSE_ADDRESSES: dict[str, str] = {
    "otel-collector:8000": "metrics_port",
    "otel-collector:8888": "collector_telemetry_port",
    "otel-collector:13133": "collector_health_port",
    "prometheus:9090": "prometheus_port",
    "alertmanager:9093": "alertmanager_port",
    "node-exporter:9100": "node_exporter_port",
    "jaeger:14269": "jaeger_telemetry_port",
    "jaeger:16686": "jaeger_query_port",
    "loki:3100": "victorialogs_port",
    "health:8080": "health_port",
    "processors:8091": "processors_http_port",
}

#: Container paths of the Compose file's config mounts -> folders of the checkout.
COMPOSE_MOUNTS: dict[str, str] = {
    "/etc/prometheus/": "stack/prometheus/",
    "/etc/alertmanager/": "stack/alertmanager/",
}

_ADDRESS = re.compile(r"\b([a-z][a-z0-9-]*):(\d{2,5})\b")


def localize(value: Any, settings: StackSettings) -> Any:
    """Rewrite every Compose address and mount path inside a parsed YAML document."""
    if isinstance(value, dict):
        return {key: localize(item, settings) for key, item in value.items()}
    if isinstance(value, list):
        return [localize(item, settings) for item in value]
    if not isinstance(value, str):
        return value

    def address(match: re.Match[str]) -> str:
        port_field = COMPOSE_ADDRESSES.get(match.group(0))
        if port_field is None:
            return match.group(0)
        return f"{settings.bind_host}:{getattr(settings, port_field)}"

    text = _ADDRESS.sub(address, value)
    for container_path, folder in COMPOSE_MOUNTS.items():
        if text.startswith(container_path):
            text = str(PROJECT_ROOT / folder) + "/" + text[len(container_path) :]
    return text


def prometheus_document(settings: StackSettings) -> dict[str, Any]:
    """The local Prometheus config, as a document."""
    source = yaml.safe_load((PROJECT_ROOT / "stack/prometheus/prometheus.yml").read_text())
    jobs = []
    for job in source.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            static["targets"] = [t for t in static["targets"] if t in COMPOSE_ADDRESSES]
        job["static_configs"] = [s for s in job.get("static_configs", []) if s["targets"]]
        if job["static_configs"]:
            jobs.append(job)
    source["scrape_configs"] = jobs
    document: dict[str, Any] = localize(source, settings)
    return document


def prometheus_config(layout: Layout) -> None:
    _write(layout, "prometheus.yml", prometheus_document(layout.settings))


def alertmanager_config(layout: Layout) -> None:
    source = yaml.safe_load((PROJECT_ROOT / "stack/alertmanager/alertmanager.yml").read_text())
    _write(layout, "alertmanager.yml", localize(source, layout.settings))


def _write(layout: Layout, name: str, document: dict[str, Any]) -> None:
    layout.data.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by tbmon from stack/ for the local stack; edit the source, not this.\n"
    (layout.data / name).write_text(header + yaml.safe_dump(document, sort_keys=False))
