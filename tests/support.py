"""Helpers the tests share: free ports, polling, and clients for the real backends' query APIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tbmon.settings import StackSettings
from tbmon.stack import dashboards
from tbmon.stack.supervisor import Supervisor, stop

#: The checkout the tests run from (docs/, examples/, tests/tools/, constraints.txt).
CHECKOUT = Path(__file__).resolve().parent.parent

T = TypeVar("T")

#: ``opentelemetry-instrument`` of this virtual environment, as a user runs their bot with it.
INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))

#: The seed's "Key Metrics Tracked", spelled as Prometheus must show them.
SEED_METRICS = frozenset(
    {
        "trading_portfolio_value_usd",
        "trading_total_return",
        "trading_sharpe_ratio",
        "trading_max_drawdown",
        "trading_win_rate",
        "trading_open_positions",
        "risk_var_95_percent",
        "risk_var_99_percent",
        "risk_position_concentration",
        "risk_leverage_ratio",
        "risk_correlation_score",
        "system_cpu_usage_percent",
        "system_memory_usage_percent",
        "system_disk_usage_percent",
        "system_network_latency_ms",
        "api_request_duration_seconds",
        "agent_prediction_accuracy",
        "agent_cumulative_reward",
        "ensemble_consensus_score",
        "model_inference_duration_seconds",
    }
)


def wait_until(
    probe: Callable[[], T | None],
    what: str | Callable[[], str],
    timeout: float = 60.0,
    interval: float = 0.25,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``
    (a callable ``what`` is called then, so the message can show the last values seen)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (httpx.HTTPError, KeyError, ValueError) as error:
            last_error, result = error, None
        if result:
            return result
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {described} (last error: {last_error})"
    )


def run_instrumented(script: str, env: Mapping[str, str | None]) -> tuple[dict[str, Any], str]:
    """``opentelemetry-instrument python -c script`` with no collector, in an environment
    without the caller's OTEL_*/TBMON_* settings plus ``env`` (None: unset); returns the
    script's last line as JSON, and its stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TBMON_"))}
    # Nothing listens here: exports fail fast and quietly, which these tests do not look at.
    clean |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    merged: dict[str, str | None] = {**clean, **env}
    done = subprocess.run(
        [INSTRUMENT, sys.executable, "-c", script],
        env={k: v for k, v in merged.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@contextmanager
def running_stack(settings: StackSettings) -> Iterator[Supervisor]:
    """The whole local stack on ``settings``, stopped on exit even when a test fails."""
    supervisor = Supervisor(settings)
    try:
        supervisor.up()
        yield supervisor
    finally:
        supervisor.down()


@contextmanager
def demo_bot(
    settings: StackSettings, service: str, log: Path, scenario: str = "normal"
) -> Iterator[subprocess.Popen[bytes]]:
    """``tbmon demo`` (the bot under opentelemetry-instrument) as ``service``, sending to the
    stack on ``settings``; its output goes to ``log``. Stopped on exit, even on failure."""
    # The stack's settings, not an OTLP endpoint: the distro finds the collector, as for a user.
    env = {**os.environ, **settings.environment(), "OTEL_SERVICE_NAME": service}
    command = [sys.executable, "-m", "tbmon", "demo", "--scenario", scenario]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            stop(process, grace=30)


@dataclass(frozen=True)
class Backends:
    """The query APIs of a running stack."""

    settings: StackSettings

    @property
    def otlp_grpc(self) -> str:
        return f"{self.settings.bind_host}:{self.settings.otlp_grpc_port}"

    def prometheus(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector."""
        response = httpx.get(
            self.settings.url(self.settings.prometheus_port, "/api/v1/query"),
            params={"query": expr},
            timeout=10,
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def jaeger_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans of one trace (empty while Jaeger does not know it)."""
        response = httpx.get(
            self.settings.url(self.settings.jaeger_query_port, f"/api/traces/{trace_id}"),
            timeout=10,
        )
        if response.status_code == 404:
            return []
        response.raise_for_status()
        data = response.json()["data"]
        return data[0]["spans"] if data else []

    def logs(self, logsql: str) -> list[dict[str, Any]]:
        """Log records matching a LogsQL query in the local log store (VictoriaLogs)."""
        response = httpx.post(
            self.settings.url(self.settings.victorialogs_port, "/select/logsql/query"),
            data={"query": logsql},
            timeout=10,
        )
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


@dataclass
class Telemetry:
    """OpenTelemetry SDK providers exporting over OTLP/gRPC, as a bot would have them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider


@contextmanager
def otlp_sdk(endpoint: str, service_name: str) -> Iterator[Telemetry]:
    """SDK providers for ``service_name``; shut down (flushed) on exit."""
    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=1000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    with ExitStack() as stack:
        stack.callback(logger_provider.shutdown)
        stack.callback(meter_provider.shutdown)
        stack.callback(tracer_provider.shutdown)
        yield Telemetry(tracer_provider, meter_provider, logger_provider)


#: Grafana's built-in variables, as Grafana would interpolate them for a one-hour view.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def dashboard_queries() -> list[tuple[str, str]]:
    """Every PromQL target of the dashboards, with Grafana's variables filled in as Grafana
    would for a one-hour view: (dashboard / panel title, expression)."""
    found = []
    for build in dashboards.DASHBOARDS:
        document = build().to_json()
        values = {f"${v['name']}": v["allValue"] for v in document["templating"]["list"]}
        for panel in document["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["uid"] != dashboards.PROMETHEUS.uid:
                    continue
                expr = target["expr"]
                for name, value in {**GRAFANA_VARIABLES, **values}.items():
                    expr = expr.replace(name, value)
                found.append((f"{document['title']} / {panel['title']}", expr))
    return found
