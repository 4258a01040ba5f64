"""The scaled topology (`tbmon stack up --topology scaled`): the stack as a fund with hundreds of
bots runs it across machines, on the backends' own cluster modes, here all on 127.0.0.1.

Two collector agents (where bots send) spread traces and logs by trace id and metrics by
service over two gateway collectors with the contrib ``load_balancing`` exporter; the gateways run
the single-node pipeline over two processors hosts; traces go to Jaeger v2 split into collector
and query roles over Jaeger's remote storage; logs to VictoriaLogs' cluster mode (vlinsert,
vlselect, two vlstorage); metrics are scraped by an HA pair of Prometheus that remote-write into
Thanos Receive (two nodes, replication factor 2) queried through Thanos Query; alerts go from both
Prometheus to an Alertmanager gossip cluster of two. docs/scaling.md is the description that the
Kubernetes chart mirrors; the configs are rendered from the single-node ones by
:mod:`tbmon.stack.scaled_render`.

Its settings are :class:`ScaledSettings`: the same fields as the single-node stack plus one port
field per instance, read from ``TBMON_SCALED_<FIELD>``; ports not set are numbered from
``TBMON_SCALED_PORT_BASE``, and the data folder is its own, so both topologies run side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, create_model, model_validator
from pydantic_settings import SettingsConfigDict

from tbmon.settings import Duration, StackSettings, _xdg
from tbmon.stack import binaries, render, scaled_render
from tbmon.stack.components import (
    COMPONENTS,
    VICTORIA_LOGS_FLUSH_INTERVAL,
    VICTORIA_LOGS_MAX_REQUEST,
    Component,
    Layout,
    processors_command,
)
from tbmon.stack.scaled_render import (
    AGENTS,
    ALERTMANAGERS,
    GATEWAYS,
    LOG_STORAGE,
    METRIC_STORES,
    PROCESSORS,
    PROMETHEUS,
)


def _instance_ports() -> dict[str, str]:
    ports: dict[str, str] = {}
    for n in AGENTS:
        ports |= {
            f"agent_{n}_otlp_grpc_port": f"agent-{n} OTLP/gRPC: bots send here",
            f"agent_{n}_otlp_http_port": f"agent-{n} OTLP/HTTP",
            f"agent_{n}_health_port": f"agent-{n} health_check",
            f"agent_{n}_telemetry_port": f"agent-{n} own metrics",
            f"agent_{n}_zpages_port": f"agent-{n} zpages",
        }
    for n in GATEWAYS:
        ports |= {
            f"gateway_{n}_otlp_grpc_port": f"gateway-{n} OTLP/gRPC (from the agents)",
            f"gateway_{n}_otlp_http_port": f"gateway-{n} OTLP/HTTP",
            f"gateway_{n}_processed_port": f"gateway-{n} OTLP/gRPC back from processors-{n}",
            f"gateway_{n}_metrics_port": f"gateway-{n} Prometheus exporter",
            f"gateway_{n}_health_port": f"gateway-{n} health_check",
            f"gateway_{n}_telemetry_port": f"gateway-{n} own metrics",
            f"gateway_{n}_zpages_port": f"gateway-{n} zpages",
        }
    for n in PROCESSORS:
        ports |= {
            f"processors_{n}_grpc_port": f"processors-{n} OTLP/gRPC",
            f"processors_{n}_http_port": f"processors-{n} /health and /metrics",
        }
    for n in LOG_STORAGE:
        ports[f"logs_storage_{n}_port"] = f"logs-storage-{n} (vlstorage) HTTP"
    ports |= {
        "logs_insert_port": "logs-insert (vlinsert): OTLP logs in",
        "logs_select_port": "logs-select (vlselect): LogsQL and vmui",
        "traces_store_grpc_port": "traces-store: Jaeger remote storage API",
        "traces_store_otlp_port": "traces-store: OTLP/gRPC for writes",
        "traces_store_health_port": "traces-store health",
        "traces_store_telemetry_port": "traces-store own metrics",
        "traces_collector_otlp_port": "traces-collector OTLP/gRPC (from the gateways)",
        "traces_collector_health_port": "traces-collector health",
        "traces_collector_telemetry_port": "traces-collector own metrics",
        "traces_query_http_port": "traces-query HTTP API",
        "traces_query_grpc_port": "traces-query gRPC API",
        "traces_query_health_port": "traces-query health",
        "traces_query_telemetry_port": "traces-query own metrics",
    }
    for n in METRIC_STORES:
        ports |= {
            f"metrics_store_{n}_http_port": f"metrics-store-{n} (Thanos Receive) HTTP",
            f"metrics_store_{n}_grpc_port": f"metrics-store-{n} Store API (gRPC)",
            f"metrics_store_{n}_write_port": f"metrics-store-{n} remote write",
            f"metrics_store_{n}_replication_port": f"metrics-store-{n} replication (Cap'n Proto)",
        }
    ports |= {
        "metrics_query_http_port": "metrics-query (Thanos Query): PromQL, the datasource",
        "metrics_query_grpc_port": "metrics-query Store API (gRPC)",
    }
    for r in PROMETHEUS:
        ports[f"prometheus_{r}_port"] = f"prometheus-{r} web and API"
    for n in ALERTMANAGERS:
        ports |= {
            f"alertmanager_{n}_port": f"alertmanager-{n} web and API",
            f"alertmanager_{n}_cluster_port": f"alertmanager-{n} gossip",
        }
    return ports


#: Each instance's port field and what it serves.
INSTANCE_PORTS = _instance_ports()

DEFAULT_PORT_BASE = 24000


class ScaledBase(StackSettings):
    """The single-node settings, read from ``TBMON_SCALED_*``, with ports numbered from a base."""

    model_config = SettingsConfigDict(env_prefix="TBMON_SCALED_")

    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "tbmon-scaled",
        description="The scaled topology's data, logs and pid files, one folder each.",
    )
    alertmanager_peer_timeout: Duration = Field(
        default="15s",
        description="How long an Alertmanager waits per cluster position for its peers to "
        "notify before it does (--cluster.peer-timeout); the tests shorten it so that both "
        "nodes notify the bridge.",
    )
    gateway_replicas: int = Field(
        default=len(GATEWAYS),
        ge=1,
        le=len(GATEWAYS),
        description="How many gateways (each with its processors host) the agents spread over; "
        "the benchmark compares one with two.",
    )
    port_base: int = Field(
        default=DEFAULT_PORT_BASE,
        description="Ports not set one by one are this plus an offset, in INSTANCE_PORTS order.",
    )

    @model_validator(mode="before")
    @classmethod
    def _ports_from_base(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        base = int(data.get("port_base", DEFAULT_PORT_BASE))
        inherited = [name for name in StackSettings.model_fields if name.endswith("_port")]
        for offset, name in enumerate([*INSTANCE_PORTS, *inherited]):
            data.setdefault(name, base + offset)
        return data


_FIELDS: dict[str, Any] = {
    name: (int, Field(default=0, description=what)) for name, what in INSTANCE_PORTS.items()
}
#: The scaled topology's settings: ScaledBase plus one ``int`` field per INSTANCE_PORTS entry.
ScaledSettings: type[ScaledBase] = create_model("ScaledSettings", __base__=ScaledBase, **_FIELDS)


def port(settings: StackSettings, field: str) -> int:
    """The port a field of these settings holds."""
    value: int = getattr(settings, field)
    return value


def address(settings: StackSettings, field: str) -> str:
    """``host:port`` of a port field."""
    return f"{settings.bind_host}:{port(settings, field)}"


# -- the collectors ---------------------------------------------------------------------------


def _config_args(layout: Layout) -> list[str]:
    return ["--config", f"file:{layout.data / 'config.yaml'}"]


def _collector_args(layout: Layout) -> list[str]:
    """The single-node collector's command line (its flags, feature gates...), on the rendered
    config instead of tbmon/collector/config.yaml."""
    args = _single("collector").args(layout)
    config = args.index("--config")
    return [*args[:config], *_config_args(layout), *args[config + 2 :]]


def _collector(role: str, n: int) -> Component:
    prefix = f"{role}_{n}"
    ports: tuple[str, ...]
    if role == "agent":
        ports = ("health", "otlp_grpc", "otlp_http", "telemetry", "zpages")
        summary = f"collector agent {n}: bots send here; load-balances to the gateways"
        links = {
            "otlp_grpc": (f"{prefix}_otlp_grpc_port", ""),
            "telemetry": (f"{prefix}_telemetry_port", "/metrics"),
        }
    else:
        ports = ("health", "otlp_grpc", "otlp_http", "processed", "metrics", "telemetry", "zpages")
        summary = f"gateway collector {n}: the single-node pipeline over the processors hosts"
        links = {
            "otlp_grpc": (f"{prefix}_otlp_grpc_port", ""),
            "metrics": (f"{prefix}_metrics_port", "/metrics"),
            "telemetry": (f"{prefix}_telemetry_port", "/metrics"),
        }

    def prepare(layout: Layout) -> None:
        scaled_render.write(
            layout.data / "config.yaml",
            scaled_render.collector_document(layout.settings, role, n, layout.data / "queue"),
        )

    return Component(
        name=f"{role}-{n}",
        summary=summary,
        binary=binaries.OTELCOL,
        args=_collector_args,
        ports=tuple(f"{prefix}_{p}_port" for p in ports),
        ready_path="/",
        links=links,
        prepare=prepare,
    )


def _processors(n: int) -> Component:
    def args(layout: Layout) -> list[str]:
        s = layout.settings
        return processors_command(
            s.bind_host,
            port(s, f"processors_{n}_grpc_port"),
            port(s, f"processors_{n}_http_port"),
            address(s, f"gateway_{n}_processed_port"),
        )

    return Component(
        name=f"processors-{n}",
        summary=f"tbmon processors host {n}: fed by both gateways, forwards to gateway-{n}",
        binary=binaries.PYTHON,
        args=args,
        ports=(f"processors_{n}_http_port", f"processors_{n}_grpc_port"),
        ready_path="/health",
        links={"health": (f"processors_{n}_http_port", "/health")},
        # Its own state directory: metrics reach a host by service (ROUTING_KEYS), so each
        # host keeps the marks of the bots it is given.
        environment=_single("processors").environment,
    )


# -- logs: VictoriaLogs cluster mode ----------------------------------------------------------

#: vlstorage keeps fresh rows in memory this long, as the single-node log store does; a kill -9
#: loses at most about this much of what it acknowledged (no write-ahead log; docs/scaling.md).
LOG_FLUSH_INTERVAL = VICTORIA_LOGS_FLUSH_INTERVAL


def _log_storage(n: int) -> Component:
    def args(layout: Layout) -> list[str]:
        s = layout.settings
        return [
            f"-httpListenAddr={address(s, f'logs_storage_{n}_port')}",
            f"-storageDataPath={layout.data}",
            f"-retentionPeriod={s.log_retention}",
            f"-inmemoryDataFlushInterval={LOG_FLUSH_INTERVAL}",
        ]

    return Component(
        name=f"logs-storage-{n}",
        summary=f"VictoriaLogs storage node {n} (vlstorage)",
        binary=binaries.VICTORIA_LOGS,
        args=args,
        ports=(f"logs_storage_{n}_port",),
        ready_path="/health",
    )


def _storage_nodes(settings: StackSettings) -> str:
    return ",".join(address(settings, f"logs_storage_{n}_port") for n in LOG_STORAGE)


def _log_front(role: str) -> Component:
    field = f"logs_{role}_port"

    def args(layout: Layout) -> list[str]:
        s = layout.settings
        return [
            f"-httpListenAddr={address(s, field)}",
            f"-storageNode={_storage_nodes(s)}",
            f"-opentelemetry.maxRequestSize={VICTORIA_LOGS_MAX_REQUEST}",
        ]

    links = (
        {"otlp": (field, "/insert/opentelemetry/v1/logs")}
        if role == "insert"
        else {"ui": (field, "/select/vmui/"), "api": (field, "/select/logsql/query")}
    )
    return Component(
        name=f"logs-{role}",
        summary=f"VictoriaLogs vl{role} over both storage nodes",
        binary=binaries.VICTORIA_LOGS,
        args=args,
        ports=(field,),
        ready_path="/health",
        links=links,
    )


# -- traces: Jaeger v2 roles over its remote storage ------------------------------------------


def _jaeger(role: str) -> Component:
    fields = {
        "store": ("health", "grpc", "otlp", "telemetry"),
        "collector": ("health", "otlp", "telemetry"),
        "query": ("health", "http", "grpc", "telemetry"),
    }[role]
    summary = {
        "store": "Jaeger v2 remote storage (Badger): the traces store both roles share",
        "collector": "Jaeger v2 collector role: OTLP in, writes to the traces store",
        "query": "Jaeger v2 query role: the query APIs over the traces store",
    }[role]

    def prepare(layout: Layout) -> None:
        document = scaled_render.jaeger_document(layout.settings, role, layout.data / "badger")
        scaled_render.write(layout.data / "config.yaml", document)

    links = {"api": ("traces_query_http_port", "/api")} if role == "query" else {}
    return Component(
        name=f"traces-{role}",
        summary=summary,
        binary=binaries.JAEGER,
        args=_config_args,
        ports=tuple(f"traces_{role}_{f}_port" for f in fields),
        ready_path="/status",
        links=links,
        prepare=prepare,
    )


# -- metrics: Thanos Receive and Query --------------------------------------------------------


def _metric_store(n: int) -> Component:
    def args(layout: Layout) -> list[str]:
        s = layout.settings
        return [
            "receive",
            f"--http-address={address(s, f'metrics_store_{n}_http_port')}",
            f"--grpc-address={address(s, f'metrics_store_{n}_grpc_port')}",
            f"--remote-write.address={address(s, f'metrics_store_{n}_write_port')}",
            f"--receive.capnproto-address={address(s, f'metrics_store_{n}_replication_port')}",
            f"--receive.local-endpoint={address(s, f'metrics_store_{n}_grpc_port')}",
            f"--receive.hashrings-file={layout.data / 'hashrings.json'}",
            f"--receive.replication-factor={len(METRIC_STORES)}",
            f"--tsdb.path={layout.data / 'tsdb'}",
            f"--tsdb.retention={s.prometheus_retention_time}",
            f'--label=receive_replica="{n}"',
        ]

    def prepare(layout: Layout) -> None:
        scaled_render.write_json(
            layout.data / "hashrings.json", scaled_render.hashrings(layout.settings)
        )

    return Component(
        name=f"metrics-store-{n}",
        summary=f"Thanos Receive {n}: remote write in, replicated to every store",
        binary=binaries.THANOS,
        args=args,
        ports=(
            f"metrics_store_{n}_http_port",
            f"metrics_store_{n}_grpc_port",
            f"metrics_store_{n}_write_port",
            f"metrics_store_{n}_replication_port",
        ),
        ready_path="/-/ready",
        prepare=prepare,
    )


def _metric_query(layout: Layout) -> list[str]:
    s = layout.settings
    return [
        "query",
        f"--http-address={address(s, 'metrics_query_http_port')}",
        f"--grpc-address={address(s, 'metrics_query_grpc_port')}",
        *(f"--endpoint={address(s, f'metrics_store_{n}_grpc_port')}" for n in METRIC_STORES),
        *(f"--query.replica-label={label}" for label in scaled_render.REPLICA_LABELS),
    ]


# -- Prometheus pair and Alertmanager cluster -------------------------------------------------


def _prometheus(replica: str) -> Component:
    field = f"prometheus_{replica}_port"

    def args(layout: Layout) -> list[str]:
        s = layout.settings
        return [
            f"--config.file={layout.data / 'prometheus.yml'}",
            f"--storage.tsdb.path={layout.data / 'tsdb'}",
            f"--storage.tsdb.retention.time={s.prometheus_retention_time}",
            f"--web.listen-address={address(s, field)}",
            f"--web.external-url={s.url(port(s, field))}",
            "--web.enable-lifecycle",
            "--enable-feature=exemplar-storage",
        ]

    def prepare(layout: Layout) -> None:
        rules = layout.data / "rules"
        render.render_rules(layout.settings, rules)
        document = scaled_render.prometheus_document(layout.settings, replica, rules)
        scaled_render.write(layout.data / "prometheus.yml", document)

    return Component(
        name=f"prometheus-{replica}",
        summary=f"Prometheus {replica} of the HA pair: scrapes, rules, remote write, alerts",
        binary=binaries.PROMETHEUS,
        args=args,
        ports=(field,),
        ready_path="/-/ready",
        links={"ui": (field, "")},
        prepare=prepare,
    )


def _alertmanager(n: int) -> Component:
    field = f"alertmanager_{n}_port"

    def args(layout: Layout) -> list[str]:
        s = layout.settings
        peers = [
            f"--cluster.peer={address(s, f'alertmanager_{m}_cluster_port')}"
            for m in ALERTMANAGERS
            if m != n
        ]
        return [
            f"--config.file={layout.data / 'alertmanager.yml'}",
            f"--storage.path={layout.data / 'storage'}",
            f"--web.listen-address={address(s, field)}",
            f"--web.external-url={s.url(port(s, field))}",
            f"--cluster.listen-address={address(s, f'alertmanager_{n}_cluster_port')}",
            f"--cluster.peer-timeout={getattr(s, 'alertmanager_peer_timeout', '15s')}",
            *peers,
        ]

    single = _single("alertmanager")
    return Component(
        name=f"alertmanager-{n}",
        summary=f"Alertmanager {n} of the gossip cluster",
        binary=binaries.ALERTMANAGER,
        args=args,
        ports=(field, f"alertmanager_{n}_cluster_port"),
        ready_path="/-/ready",
        links={"ui": (field, "")},
        prepare=single.prepare,
    )


def _single(name: str) -> Component:
    (component,) = [c for c in COMPONENTS if c.name == name]
    return component


SCALED_COMPONENTS: tuple[Component, ...] = (
    *(_log_storage(n) for n in LOG_STORAGE),
    _log_front("insert"),
    _log_front("select"),
    _jaeger("store"),
    _jaeger("collector"),
    _jaeger("query"),
    *(_metric_store(n) for n in METRIC_STORES),
    Component(
        name="metrics-query",
        summary="Thanos Query over the stores: the dashboards' datasource",
        binary=binaries.THANOS,
        args=_metric_query,
        ports=("metrics_query_http_port", "metrics_query_grpc_port"),
        ready_path="/-/ready",
        links={"api": ("metrics_query_http_port", "/api/v1")},
    ),
    *(_processors(n) for n in PROCESSORS),
    *(_collector("gateway", n) for n in GATEWAYS),
    *(_collector("agent", n) for n in AGENTS),
    _single("telegram-test"),
    _single("alert-bridge"),
    *(_alertmanager(n) for n in ALERTMANAGERS),
    *(_prometheus(r) for r in PROMETHEUS),
    _single("node-exporter"),
)
