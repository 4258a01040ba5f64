"""The scaled topology's configs, derived from the single-node ones at start, never copied.

- **Collectors** from ``tbmon/collector/config.yaml``. The exporter that feeds the processors host
  (the one whose endpoint is ``TBMON_PROCESSORS_ENDPOINT``) is the seam between the tiers. An
  *agent* keeps only the pipelines that end in it and swaps it for a ``load_balancing`` exporter
  over the gateways; a *gateway* keeps the whole config and swaps it for a ``load_balancing``
  exporter over the processors hosts. The swapped-in exporter keeps the original's timeout,
  retry, sending queue (persistent, with its batching) at its top level, so whatever the
  single-node config says about queues, batching, limits or redaction before the first queue
  holds on both tiers. Traces and logs are keyed on the trace id (every span of a trace, and its
  log lines, meet on one gateway and one processors host), metrics on ``service.name`` (a bot's
  series are always exposed by the same gateway, and the trading analytics see all of a bot).
  Each endpoint's sub-exporter has an in-memory queue that retries without a deadline: a gateway
  that is down holds back only its own share, which waits for it.
- **Jaeger**'s store, collector and query roles from ``tbmon/stack/jaeger/config.yaml``.
- **Prometheus**'s pair from ``tbmon/stack/prometheus/prometheus.yml``.

Per-instance values (ports, folders, next hops) are written into the rendered file in place of
the ``${env:TBMON_...}`` references that the single-node config reads; every other reference is
left for the collector to resolve from the environment, as in the single-node stack.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tbmon.settings import StackSettings
from tbmon.stack import render
from tbmon.stack.resources import COLLECTOR_CONFIG, STACK_DATA

JAEGER_CONFIG = STACK_DATA / "jaeger" / "config.yaml"

#: The variable naming the processors host in tbmon/collector/config.yaml: the tiers' seam.
FEED_VARIABLE = "TBMON_PROCESSORS_ENDPOINT"

#: How each signal is spread over the next tier (load_balancing ``routing_key``).
ROUTING_KEYS = {"traces": "traceID", "logs": "traceID", "metrics": "service"}

#: Labels that tell copies of one series apart: Prometheus's replica (external label) and the
#: store's replica (Thanos Receive ``--label``). Thanos Query deduplicates on both.
REPLICA_LABELS = ("replica", "receive_replica")

#: How many instances each replicated tier runs here (the scaled settings name a port for each).
AGENTS = (1, 2)
GATEWAYS = (1, 2)
PROCESSORS = (1, 2)
LOG_STORAGE = (1, 2)
METRIC_STORES = (1, 2)
ALERTMANAGERS = (1, 2)
PROMETHEUS = ("a", "b")

_ENV = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}")


def _port(settings: StackSettings, field: str) -> int:
    value: int = getattr(settings, field)
    return value


def _address(settings: StackSettings, field: str) -> str:
    return f"{settings.bind_host}:{_port(settings, field)}"


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """Replace ``${env:NAME}`` / ``${env:NAME:-default}`` for the names in ``variables``."""
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        return variables.get(match.group(1), match.group(0))

    text = _ENV.sub(one, value)
    # A port that was the whole value stays a number, as the collector's expansion types it.
    whole = _ENV.fullmatch(value)
    return int(text) if whole and text.isdigit() else text


# -- collectors -------------------------------------------------------------------------------


def _signal(pipeline: str) -> str:
    return pipeline.split("/", 1)[0]


def feed_exporters(document: dict[str, Any]) -> list[str]:
    """The exporters that send to the processors host (endpoint ``${env:FEED_VARIABLE}``)."""
    return [
        name
        for name, config in (document.get("exporters") or {}).items()
        if FEED_VARIABLE in str((config or {}).get("endpoint", ""))
    ]


def load_balancing(feed: dict[str, Any], signal: str, endpoints: list[str]) -> dict[str, Any]:
    """A ``load_balancing`` exporter doing what the ``feed`` exporter did, over ``endpoints``."""
    feed = copy.deepcopy(feed)
    exporter: dict[str, Any] = {
        "routing_key": ROUTING_KEYS[signal],
        "resolver": {"static": {"hostnames": endpoints}},
    }
    # The persistent queue (with any batching) and the retries stay in front of the routing.
    for key in ("timeout", "retry_on_failure", "sending_queue"):
        if key in feed:
            exporter[key] = feed.pop(key)
    feed.pop("endpoint", None)
    # Each endpoint's OTLP sub-exporter: the same transport settings, an in-memory queue (the
    # exporter refuses a persistent one there: all sub-exporters would share its storage) and
    # retries without a deadline, so one endpoint being down holds back only its own share.
    queue = {
        key: value
        for key, value in (exporter.get("sending_queue") or {}).items()
        if key not in ("storage", "batch", "sizer", "block_on_overflow", "wait_for_result")
    }
    feed["sending_queue"] = {**queue, "enabled": True}
    retry = exporter.get("retry_on_failure") or {"enabled": True}
    feed["retry_on_failure"] = {**retry, "enabled": True, "max_elapsed_time": "0s"}
    exporter["protocol"] = {"otlp": feed}
    return exporter


def collector_document(
    settings: StackSettings, role: str, n: int, queue_dir: Path
) -> dict[str, Any]:
    """The collector config of ``agent-N`` or ``gateway-N``, from tbmon/collector/config.yaml."""
    document: dict[str, Any] = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    feeds = feed_exporters(document)
    if not feeds:
        raise render.RenderError(
            f"{COLLECTOR_CONFIG}: no exporter sends to ${{env:{FEED_VARIABLE}}}; the scaled "
            "topology splits the pipeline there"
        )
    prefix = f"{role}_{n}"
    variables = {
        "TBMON_OTLP_GRPC_PORT": str(_port(settings, f"{prefix}_otlp_grpc_port")),
        "TBMON_OTLP_HTTP_PORT": str(_port(settings, f"{prefix}_otlp_http_port")),
        "TBMON_COLLECTOR_HEALTH_PORT": str(_port(settings, f"{prefix}_health_port")),
        "TBMON_COLLECTOR_TELEMETRY_PORT": str(_port(settings, f"{prefix}_telemetry_port")),
        "TBMON_COLLECTOR_ZPAGES_PORT": str(_port(settings, f"{prefix}_zpages_port")),
        "TBMON_COLLECTOR_STORAGE_DIR": str(queue_dir),
    }
    replicas = int(getattr(settings, "gateway_replicas", len(GATEWAYS)))
    if role == "agent":
        targets = [_address(settings, f"gateway_{g}_otlp_grpc_port") for g in GATEWAYS[:replicas]]
    else:
        targets = [_address(settings, f"processors_{p}_grpc_port") for p in PROCESSORS[:replicas]]
        variables |= {
            "TBMON_PROCESSED_PORT": str(_port(settings, f"{prefix}_processed_port")),
            "TBMON_METRICS_PORT": str(_port(settings, f"{prefix}_metrics_port")),
            "TBMON_JAEGER_OTLP_ENDPOINT": _address(settings, "traces_collector_otlp_port"),
            "TBMON_LOGS_OTLP_ENDPOINT": settings.url(
                _port(settings, "logs_insert_port"), "/insert/opentelemetry/v1/logs"
            ),
        }
    pipelines: dict[str, Any] = document["service"]["pipelines"]
    exporters: dict[str, Any] = document["exporters"]
    kept: dict[str, Any] = {}
    fed_receivers: set[str] = set()
    for name, pipeline in pipelines.items():
        fed = [e for e in pipeline["exporters"] if e in feeds]
        if not fed:
            if role == "gateway":
                kept[name] = pipeline
            continue
        fed_receivers.update(pipeline["receivers"])
        signal = _signal(name)
        balanced = f"load_balancing/{signal}"
        exporters[balanced] = load_balancing(exporters[fed[0]], signal, targets)
        pipeline["exporters"] = [
            balanced if e == fed[0] else e for e in pipeline["exporters"] if e not in fed[1:]
        ]
        kept[name] = pipeline
    document["service"]["pipelines"] = kept
    _batch_in_queues(document)
    if role == "gateway":
        _accept_what_agents_send(document, fed_receivers)
    _prune(document)
    result: dict[str, Any] = substitute(document, variables)
    return result


def _batch_in_queues(document: dict[str, Any]) -> None:
    """Move a ``batch`` processor's batching into its pipelines' persistent sending queues.

    A batch processor holds data the receiver has acknowledged in memory before any queue sees
    it, so killing a gateway would lose it; with batching in the exporter's persistent queue,
    the item is on disk first. tbmon/collector/config.yaml is moving to exporter-level batching
    (issue 13); once it has no batch processor left, this does nothing.
    """
    processors: dict[str, Any] = document.get("processors") or {}
    exporters: dict[str, Any] = document.get("exporters") or {}
    for pipeline in document["service"]["pipelines"].values():
        batches = [p for p in pipeline.get("processors") or [] if p.split("/")[0] == "batch"]
        if not batches:
            continue
        config = processors.get(batches[-1]) or {}
        pipeline["processors"] = [p for p in pipeline["processors"] if p not in batches]
        for name in pipeline["exporters"]:
            queue = (exporters.get(name) or {}).get("sending_queue")
            if isinstance(queue, dict) and "batch" not in queue:
                queue["batch"] = {
                    "flush_timeout": config.get("timeout", "200ms"),
                    "sizer": "items",
                    "min_size": config.get("send_batch_size", 8192),
                    "max_size": config.get("send_batch_max_size", 0)
                    or config.get("send_batch_size", 8192),
                }


def _accept_what_agents_send(document: dict[str, Any], fed: set[str]) -> None:
    """A gateway's receivers that the agents send to are a later hop: they accept the largest
    gRPC message any receiver of the single-node config accepts (what an agent's batch holds)."""
    receivers: dict[str, Any] = document.get("receivers") or {}
    grpc = {
        name: ((receiver or {}).get("protocols") or {}).get("grpc")
        for name, receiver in receivers.items()
    }
    limits = [
        g["max_recv_msg_size_mib"] for g in grpc.values() if g and "max_recv_msg_size_mib" in g
    ]
    for name in fed:
        settings = grpc.get(name)
        if limits and isinstance(settings, dict):
            settings["max_recv_msg_size_mib"] = max(limits)


def _prune(document: dict[str, Any]) -> None:
    """Drop receivers, processors, exporters and connectors no pipeline uses."""
    used: set[str] = set()
    for pipeline in document["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            used.update(pipeline.get(kind) or [])
    for kind in ("receivers", "processors", "exporters", "connectors"):
        section = document.get(kind)
        if isinstance(section, dict):
            document[kind] = {k: v for k, v in section.items() if k in used}
            if not document[kind]:
                del document[kind]


# -- Jaeger -----------------------------------------------------------------------------------


def jaeger_document(settings: StackSettings, role: str, badger_dir: Path) -> dict[str, Any]:
    """Jaeger v2's ``store``, ``collector`` or ``query`` role, from tbmon/stack/jaeger/config.yaml.

    The store runs the single-node config's storage backend (Badger) behind the
    ``remote_storage`` extension; the collector and query roles use the ``grpc`` backend on it
    (writes as OTLP to the store's receiver, reads through its remote storage API)."""
    document: dict[str, Any] = yaml.safe_load(JAEGER_CONFIG.read_text())
    extensions: dict[str, Any] = document["extensions"]
    service: dict[str, Any] = document["service"]
    backend = extensions["jaeger_query"]["storage"]["traces"]
    prefix = f"traces_{role}"
    variables = {
        "TBMON_JAEGER_HEALTH_PORT": str(_port(settings, f"{prefix}_health_port")),
        "TBMON_JAEGER_TELEMETRY_PORT": str(_port(settings, f"{prefix}_telemetry_port")),
        "TBMON_JAEGER_BADGER_DIR": str(badger_dir),
    }
    remote = {
        "grpc": {
            "endpoint": _address(settings, "traces_store_grpc_port"),
            "tls": {"insecure": True},
            "writer": {
                "endpoint": _address(settings, "traces_store_otlp_port"),
                "tls": {"insecure": True},
            },
        }
    }
    if role == "store":
        variables["TBMON_JAEGER_OTLP_GRPC_PORT"] = str(_port(settings, "traces_store_otlp_port"))
        del extensions["jaeger_query"]
        extensions["remote_storage"] = {
            "endpoint": _address(settings, "traces_store_grpc_port"),
            "storage": backend,
        }
        service["extensions"] = [
            "remote_storage" if e == "jaeger_query" else e for e in service["extensions"]
        ]
    elif role == "collector":
        variables["TBMON_JAEGER_OTLP_GRPC_PORT"] = str(
            _port(settings, "traces_collector_otlp_port")
        )
        extensions["jaeger_storage"]["backends"] = {backend: remote}
        del extensions["jaeger_query"]
        service["extensions"] = [e for e in service["extensions"] if e != "jaeger_query"]
    else:
        variables |= {
            "TBMON_JAEGER_QUERY_PORT": str(_port(settings, "traces_query_http_port")),
            "TBMON_JAEGER_QUERY_GRPC_PORT": str(_port(settings, "traces_query_grpc_port")),
        }
        extensions["jaeger_storage"]["backends"] = {
            backend: {"grpc": {k: v for k, v in remote["grpc"].items() if k != "writer"}}
        }
        document["receivers"] = {"nop": None}
        document["exporters"] = {"nop": None}
        document.pop("processors", None)
        service["pipelines"] = {"traces": {"receivers": ["nop"], "exporters": ["nop"]}}
    result: dict[str, Any] = substitute(document, variables)
    return result


# -- Prometheus pair and Thanos ---------------------------------------------------------------


def _scrape_targets(settings: StackSettings) -> dict[str, list[str]]:
    """Compose address in tbmon/stack/prometheus/prometheus.yml -> this topology's port fields."""
    collectors = [f"agent_{n}" for n in AGENTS] + [f"gateway_{n}" for n in GATEWAYS]
    return {
        "otel-collector:8000": [f"gateway_{n}_metrics_port" for n in GATEWAYS],
        "otel-collector:8888": [f"{c}_telemetry_port" for c in collectors],
        "processors:8091": [f"processors_{n}_http_port" for n in PROCESSORS],
        "prometheus:9090": [f"prometheus_{r}_port" for r in PROMETHEUS],
        "alertmanager:9093": [f"alertmanager_{n}_port" for n in ALERTMANAGERS],
        "node-exporter:9100": ["node_exporter_port"],
        "jaeger:14269": [
            f"traces_{role}_telemetry_port" for role in ("store", "collector", "query")
        ],
        "alert-bridge:8090": ["bridge_port"],
        "loki:3100": [f"logs_storage_{n}_port" for n in LOG_STORAGE]
        + ["logs_insert_port", "logs_select_port"],
    }


def prometheus_document(
    settings: StackSettings, replica: str, rules_dir: Path | None = None
) -> dict[str, Any]:
    """prometheus-``replica``'s config: every target of the topology, both Alertmanagers, and
    remote write into the metrics store with its replica label; it reads the rules rendered
    into ``rules_dir`` (default: the source files, as they are)."""
    source: dict[str, Any] = yaml.safe_load(
        (STACK_DATA / "prometheus" / "prometheus.yml").read_text()
    )
    targets = _scrape_targets(settings)
    jobs = []
    for job in source.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            static["targets"] = [
                _address(settings, field)
                for target in static["targets"]
                for field in targets.get(target, [])
            ]
        job["static_configs"] = [s for s in job.get("static_configs", []) if s["targets"]]
        if job["static_configs"]:
            jobs.append(job)
    source["scrape_configs"] = jobs
    # Both replicas keep the same external labels: Prometheus derives each target's scrape
    # phase from them, so the pair scrapes every target at the same moments and holds the same
    # samples, and both send Alertmanager the same alerts. Only what goes to the store is told
    # apart (the replica label, deduplicated by the query tier).
    source["alerting"] = {
        "alertmanagers": [
            {
                "static_configs": [
                    {
                        "targets": [
                            _address(settings, f"alertmanager_{n}_port") for n in ALERTMANAGERS
                        ]
                    }
                ]
            }
        ],
    }
    store = METRIC_STORES[PROMETHEUS.index(replica) % len(METRIC_STORES)]
    write_port = _port(settings, f"metrics_store_{store}_write_port")
    source["remote_write"] = [
        {
            "url": settings.url(write_port, "/api/v1/receive"),
            "write_relabel_configs": [
                {"target_label": REPLICA_LABELS[0], "replacement": replica, "action": "replace"}
            ],
        }
    ]
    document: dict[str, Any] = render.localize(source, settings)
    if rules_dir is not None:
        document["rule_files"] = [str(rules_dir / "*.yml")]
    return document


def hashrings(settings: StackSettings) -> list[dict[str, Any]]:
    """Thanos Receive's hashring: every store, so each series is written to all of them."""
    return [
        {
            "hashring": "default",
            "endpoints": [
                _address(settings, f"metrics_store_{n}_grpc_port") for n in METRIC_STORES
            ],
        }
    ]


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Rendered by tbmon (tbmon/stack/scaled_render.py) for the scaled topology; do not edit.\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
