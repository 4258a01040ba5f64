"""The local stack's components: what each one runs, what it binds, and how it says it is ready.

The table here is the only place that knows a component's command line. Everything else (the
supervisor, `tbmon stack status`, the tests) works from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tbmon.alert_bridge.settings import telegram_configured
from tbmon.settings import StackSettings
from tbmon.stack import binaries, render
from tbmon.stack.resources import COLLECTOR_CONFIG, STACK_DATA


@dataclass(frozen=True)
class Layout:
    """The folders one component uses under the stack's data directory."""

    settings: StackSettings
    name: str

    @property
    def data(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log(self) -> Path:
        return self.settings.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid(self) -> Path:
        return self.settings.data_dir / "run" / f"{self.name}.pid"


#: Environment variables holding secrets. Each component is given only those it reads, so a
#: crash dump or a ``/proc/PID/environ`` of Prometheus or the collector holds none of them.
SECRET_VARIABLES = frozenset(
    {
        "ALERT_BRIDGE_TOKEN",
        "ALERT_BRIDGE_WEBHOOK_SECRET",
        "DATABASE_URL",
        "GRAFANA_ADMIN_PASSWORD",
        "HEALTH_ALERT_BRIDGE_TOKEN",
        "HEALTH_TOKEN",
        "SMTP_PASSWORD",
        "TELEGRAM_BOT_TOKEN",
    }
)


@dataclass(frozen=True)
class Component:
    """One process of the local stack."""

    name: str
    summary: str
    binary: binaries.Binary
    #: The argument list after the program's path.
    args: Callable[[Layout], list[str]]
    #: StackSettings port fields this component binds; the first one answers readiness.
    ports: tuple[str, ...]
    #: Path that answers 2xx on the first port once the component is ready.
    ready_path: str
    #: Links for people and tools (name -> path on a port field), shown by `status`.
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Writes the component's rendered config files before it starts.
    prepare: Callable[[Layout], None] | None = None
    #: Whether `up` starts it; when not, ``disabled_reason`` says why.
    enabled: Callable[[], bool] = lambda: True
    disabled_reason: str = ""
    #: The SECRET_VARIABLES this component reads; the others are withheld from its environment.
    secrets: frozenset[str] = frozenset()
    #: Defaults of its own, computed when it starts (after ``prepare``); a variable the user set
    #: (environment or ``.env``) wins.
    environment: Callable[[Layout], dict[str, str]] = lambda layout: {}

    def ready_url(self, settings: StackSettings) -> str:
        return settings.url(getattr(settings, self.ports[0]), self.ready_path)

    def urls(self, settings: StackSettings) -> dict[str, str]:
        return {
            label: settings.url(getattr(settings, port), path)
            for label, (port, path) in self.links.items()
        }


#: The collector's feature gates: its ingest transforms use OTTL lambdas (Any, MapEach, When).
COLLECTOR_FEATURE_GATES = "ottl.functions.enableLambda"


def _collector_args(layout: Layout) -> list[str]:
    return [
        "--config",
        f"file:{COLLECTOR_CONFIG}",
        f"--feature-gates={COLLECTOR_FEATURE_GATES}",
    ]


def processors_command(host: str, port: int, http_port: int, forward: str) -> list[str]:
    """``python -m tbmon processors serve`` on these ports, forwarding to ``forward``."""
    return [
        "-m",
        "tbmon",
        "processors",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--forward",
        forward,
    ]


def _processors_args(layout: Layout) -> list[str]:
    s = layout.settings
    return processors_command(
        s.bind_host, s.processors_port, s.processors_http_port, f"{s.bind_host}:{s.processed_port}"
    )


def _processors_environment(layout: Layout) -> dict[str, str]:
    """The trading-analytics processor keeps its high-water marks under the stack's data
    directory, so a restart of the host keeps every bot's drawdown."""
    return {"PROCESSORS_ANALYTICS_STATE_DIR": str(layout.data / "state")}


def _prometheus_args(layout: Layout) -> list[str]:
    s = layout.settings
    return [
        f"--config.file={layout.data / 'prometheus.yml'}",
        f"--storage.tsdb.path={layout.data / 'tsdb'}",
        f"--storage.tsdb.retention.time={s.prometheus_retention_time}",
        f"--storage.tsdb.retention.size={s.prometheus_retention_size}",
        f"--web.listen-address={s.bind_host}:{s.prometheus_port}",
        f"--web.external-url={s.url(s.prometheus_port)}",
        "--web.enable-lifecycle",
        "--web.enable-admin-api",
        "--enable-feature=exemplar-storage",
    ]


def _alertmanager_args(layout: Layout) -> list[str]:
    s = layout.settings
    return [
        f"--config.file={layout.data / 'alertmanager.yml'}",
        f"--storage.path={layout.data / 'storage'}",
        f"--web.listen-address={s.bind_host}:{s.alertmanager_port}",
        f"--web.external-url={s.url(s.alertmanager_port)}",
        "--cluster.listen-address=",
    ]


def _node_exporter_args(layout: Layout) -> list[str]:
    s = layout.settings
    return [f"--web.listen-address={s.bind_host}:{s.node_exporter_port}"]


def _jaeger_args(layout: Layout) -> list[str]:
    return ["--config", f"file:{STACK_DATA / 'jaeger' / 'config.yaml'}"]


#: VictoriaLogs keeps fresh rows in memory (1 s in its row buffers, then in in-memory parts until
#: this interval passes) and has no write-ahead log: a kill -9 loses what it acknowledged in that
#: window. 1 s is its minimum (default 5 s); the window measured on kill -9 is in README.md.
VICTORIA_LOGS_FLUSH_INTERVAL = "1s"
#: The largest OTLP request it takes: as every hop after the collector's receivers (64 MiB).
VICTORIA_LOGS_MAX_REQUEST = "64MiB"


def victoria_logs_storage(settings: StackSettings) -> Path:
    """VictoriaLogs' data, in a folder of its own (not among the components' log files)."""
    return settings.data_dir / "victoria-logs"


def _victoria_logs_args(layout: Layout) -> list[str]:
    s = layout.settings
    return [
        f"-httpListenAddr={s.bind_host}:{s.victorialogs_port}",
        f"-storageDataPath={victoria_logs_storage(s)}",
        f"-retentionPeriod={s.log_retention}",
        f"-inmemoryDataFlushInterval={VICTORIA_LOGS_FLUSH_INTERVAL}",
        f"-opentelemetry.maxRequestSize={VICTORIA_LOGS_MAX_REQUEST}",
    ]


def _telegram_test_args(layout: Layout) -> list[str]:
    s = layout.settings
    return [
        "-m",
        "tbmon",
        "bridge",
        "telegram-test-server",
        "--host",
        s.bind_host,
        "--port",
        str(s.telegram_test_port),
    ]


def _bridge_args(layout: Layout) -> list[str]:
    s = layout.settings
    args = ["-m", "tbmon", "bridge", "serve", "--host", s.bind_host, "--port", str(s.bridge_port)]
    args += ["--token-file", str(render.bridge_token_file(s))]
    if not telegram_configured():
        args += ["--demo-telegram", s.url(s.telegram_test_port)]
    return args


def _health_environment(layout: Layout) -> dict[str, str]:
    """The bridge's token, generated by the stack when ALERT_BRIDGE_TOKEN is unset, so the health
    check can read the bridge's outbox backlog."""
    token_file = render.bridge_token_file(layout.settings)
    if not token_file.is_file():
        return {}
    return {"HEALTH_ALERT_BRIDGE_TOKEN": token_file.read_text().strip()}


def _health_args(layout: Layout) -> list[str]:
    s = layout.settings
    return ["-m", "tbmon", "health", "serve", "--host", s.bind_host, "--port", str(s.health_port)]


COMPONENTS: tuple[Component, ...] = (
    Component(
        name="logs",
        summary="VictoriaLogs, the local log store (OTLP logs in, LogsQL out)",
        binary=binaries.VICTORIA_LOGS,
        args=_victoria_logs_args,
        ports=("victorialogs_port",),
        ready_path="/health",
        links={"ui": ("victorialogs_port", "/select/vmui/"), "api": ("victorialogs_port", "")},
    ),
    Component(
        name="jaeger",
        summary="Jaeger v2, trace storage and query (Badger on disk)",
        binary=binaries.JAEGER,
        args=_jaeger_args,
        ports=(
            "jaeger_health_port",
            "jaeger_otlp_grpc_port",
            "jaeger_query_port",
            "jaeger_query_grpc_port",
            "jaeger_telemetry_port",
        ),
        ready_path="/status",
        links={"api": ("jaeger_query_port", "/api"), "otlp": ("jaeger_otlp_grpc_port", "")},
    ),
    Component(
        name="processors",
        summary="tbmon processors host: Python plugins between the collector's two stages",
        binary=binaries.PYTHON,
        args=_processors_args,
        ports=("processors_http_port", "processors_port"),
        ready_path="/health",
        links={
            "health": ("processors_http_port", "/health"),
            "metrics": ("processors_http_port", "/metrics"),
            "otlp_grpc": ("processors_port", ""),
        },
        environment=_processors_environment,
    ),
    Component(
        name="collector",
        summary="OpenTelemetry Collector: OTLP in, fan-out to Prometheus, Jaeger and logs",
        binary=binaries.OTELCOL,
        args=_collector_args,
        ports=(
            "collector_health_port",
            "otlp_grpc_port",
            "otlp_http_port",
            "metrics_port",
            "collector_telemetry_port",
            "collector_zpages_port",
            "processed_port",
        ),
        ready_path="/",
        links={
            "otlp_grpc": ("otlp_grpc_port", ""),
            "otlp_http": ("otlp_http_port", ""),
            "metrics": ("metrics_port", "/metrics"),
            "telemetry": ("collector_telemetry_port", "/metrics"),
            "zpages": ("collector_zpages_port", "/debug/pipelinez"),
        },
    ),
    Component(
        name="telegram-test",
        summary="Telegram Bot API test server, standing in for Telegram (no TELEGRAM_BOT_TOKEN)",
        binary=binaries.PYTHON,
        args=_telegram_test_args,
        ports=("telegram_test_port",),
        ready_path="/_control/health",
        links={"control": ("telegram_test_port", "/_control/docs")},
        enabled=lambda: not telegram_configured(),
        disabled_reason="TELEGRAM_BOT_TOKEN is set, so the bridge talks to Telegram itself",
    ),
    Component(
        name="alert-bridge",
        summary="Telegram alert bridge: Alertmanager webhook in, Telegram messages out",
        binary=binaries.PYTHON,
        args=_bridge_args,
        ports=("bridge_port",),
        ready_path="/health",
        links={"api": ("bridge_port", "/docs"), "metrics": ("bridge_port", "/metrics")},
        prepare=render.bridge_token,
        secrets=frozenset(
            {"ALERT_BRIDGE_TOKEN", "ALERT_BRIDGE_WEBHOOK_SECRET", "TELEGRAM_BOT_TOKEN"}
        ),
    ),
    Component(
        name="alertmanager",
        summary="Alertmanager, routing alerts to the Telegram bridge",
        binary=binaries.ALERTMANAGER,
        args=_alertmanager_args,
        ports=("alertmanager_port",),
        ready_path="/-/ready",
        links={"ui": ("alertmanager_port", "")},
        prepare=render.alertmanager_config,
    ),
    Component(
        name="prometheus",
        summary="Prometheus, scraping the collector and evaluating the alert rules",
        binary=binaries.PROMETHEUS,
        args=_prometheus_args,
        ports=("prometheus_port",),
        ready_path="/-/ready",
        links={"ui": ("prometheus_port", "")},
        prepare=render.prometheus_config,
    ),
    Component(
        name="node-exporter",
        summary="node exporter, the host's metrics",
        binary=binaries.NODE_EXPORTER,
        args=_node_exporter_args,
        ports=("node_exporter_port",),
        ready_path="/metrics",
        links={"metrics": ("node_exporter_port", "/metrics")},
    ),
    Component(
        name="health",
        summary="tbmon health service: every component's health (HEALTH_* settings)",
        binary=binaries.PYTHON,
        args=_health_args,
        ports=("health_port",),
        ready_path="/health/live",
        links={
            "detailed": ("health_port", "/health/detailed"),
            "metrics": ("health_port", "/health/metrics"),
        },
        secrets=frozenset(
            {"ALERT_BRIDGE_TOKEN", "DATABASE_URL", "HEALTH_ALERT_BRIDGE_TOKEN", "HEALTH_TOKEN"}
        ),
        environment=_health_environment,
    ),
)


def component_names(table: Sequence[Component] = COMPONENTS) -> list[str]:
    return [component.name for component in table]


def select(names: list[str] | None, table: Sequence[Component] = COMPONENTS) -> list[Component]:
    """The named components of ``table`` in start order (all of them when no name is given)."""
    if not names:
        return list(table)
    valid = component_names(table)
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UnknownComponentError(unknown, valid)
    return [component for component in table if component.name in names]


def startable(names: list[str] | None, table: Sequence[Component] = COMPONENTS) -> list[Component]:
    """The named (or all) components of ``table`` that `up` starts: the enabled ones."""
    chosen = select(names, table)
    if names:
        disabled = [c for c in chosen if not c.enabled()]
        if disabled:
            raise DisabledComponentError(disabled[0])
    return [c for c in chosen if c.enabled()]


class UnknownComponentError(ValueError):
    def __init__(self, unknown: list[str], valid: list[str] | None = None) -> None:
        valid = component_names() if valid is None else valid
        super().__init__(f"unknown component {', '.join(unknown)}; valid names: {', '.join(valid)}")


class DisabledComponentError(UnknownComponentError):
    """A component was named that this configuration does not run."""

    def __init__(self, component: Component) -> None:
        ValueError.__init__(self, f"{component.name} is not started: {component.disabled_reason}")
