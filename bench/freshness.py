"""Freshness: what a trader waits for, end to end on the local stack under a steady load.

A probe bot (the OpenTelemetry SDK with the tbmon distro's batching: spans and logs leave every
1 s, metrics every 5 s) runs beside a steady load of 100 spans/s and 100 log records/s, on an
isolated local stack with its default settings. Measured, p50 and p99:

- **metric**: a gauge set in the bot until Prometheus's query API returns that value (the bot's
  5 s export, the collector, Prometheus's 5 s scrape of it);
- **span**: a span ended until Jaeger's API returns it;
- **log**: a log record emitted until VictoriaLogs' LogsQL API returns it;
- **alert**: a bot's first dropped span (``tbmon_telemetry_dropped_total`` appears) until its
  BotTelemetryDropped message reaches the Telegram test server, beyond the rule's ``for`` (1 m)
  and the critical route's group wait (10 s): one sample a run (later alerts of the same group
  wait for the group interval); and the Alertmanager -> bridge -> Telegram leg alone, beyond
  the group wait, for alerts posted to Alertmanager (each its own group).

Targets (issue 13): metric <= 10 s, span and log <= 5 s, alert <= 5 s beyond for + group wait.

Run: .venv/bin/python -m bench freshness
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

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

from tbmon.alert_bridge.settings import DEMO_CRITICAL_CHAT_ID
from tbmon.alert_bridge.telegram_test_server import TestServerClient
from tbmon.instrumentation.distro import SCHEDULE_DELAY_MILLIS
from tbmon.settings import StackSettings
from tbmon.stack.ports import isolated_settings
from tbmon.stack.supervisor import Supervisor

PROBES = 40
METRIC_PROBES = 60
PROBE_INTERVAL = 0.5
METRIC_EXPORT_MILLIS = 5000  # the distro's OTEL_METRIC_EXPORT_INTERVAL
LOAD_PER_SECOND = 100
POLL = 0.2
RULE_FOR = 60.0  # BotTelemetryDropped's `for`
GROUP_WAIT = 10.0  # the critical route's group_wait (TBMON_ALERT_CRITICAL_GROUP_WAIT)
ALERTMANAGER_PROBES = 8


@contextmanager
def providers(
    endpoint: str, service: str
) -> Iterator[tuple[TracerProvider, LoggerProvider, MeterProvider]]:
    resource = Resource.create({"service.name": service, "service.instance.id": service})
    tracer = TracerProvider(resource=resource)
    tracer.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            schedule_delay_millis=SCHEDULE_DELAY_MILLIS,
        )
    )
    logger = LoggerProvider(resource=resource)
    logger.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=endpoint, insecure=True),
            schedule_delay_millis=SCHEDULE_DELAY_MILLIS,
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True),
        export_interval_millis=METRIC_EXPORT_MILLIS,
    )
    meter = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        yield tracer, logger, meter
    finally:
        for provider in (tracer, logger, meter):
            provider.shutdown()


def steady_load(endpoint: str, stop: threading.Event) -> None:
    """100 spans/s and 100 log records/s from another service, until ``stop``."""
    with providers(endpoint, "bench-load") as (tracer_provider, logger_provider, _):
        tracer = tracer_provider.get_tracer("bench")
        logger = logger_provider.get_logger("bench")
        started, sent = time.monotonic(), 0
        while not stop.is_set():
            for _ in range(LOAD_PER_SECOND // 10):
                with tracer.start_as_current_span("load", attributes={"symbol": "BTC/USDT"}):
                    pass
                logger.emit(body=f"load {sent}", attributes={"n": sent})
                sent += 1
            pause = started + sent / LOAD_PER_SECOND - time.monotonic()
            if pause > 0:
                stop.wait(pause)


class Watcher:
    """Polls one query until every awaited key has been seen; notes when each one first was."""

    def __init__(self, found: Callable[[], set[str]]) -> None:
        self.found = found
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                keys = self.found()
            except (httpx.HTTPError, ValueError, KeyError):
                keys = set()
            now = time.time()
            for key in keys:
                self.seen.setdefault(key, now)
            self.stop.wait(POLL)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no sample"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.2f} s / {p99:.2f} s (n = {len(ordered)})"


def probe_signals(settings: StackSettings) -> dict[str, list[float]]:
    """Spans, logs and metric values, probed every PROBE_INTERVAL."""
    endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
    service = f"bench-fresh-{uuid.uuid4().hex[:6]}"
    jaeger = settings.url(settings.jaeger_query_port, "/api/traces")
    logs = settings.url(settings.victorialogs_port, "/select/logsql/query")
    prometheus = settings.url(settings.prometheus_port, "/api/v1/query")

    def spans_seen() -> set[str]:
        response = httpx.get(jaeger, params={"service": service, "limit": 1000}, timeout=5)
        return {span["spanID"] for trace in response.json()["data"] for span in trace["spans"]}

    def logs_seen() -> set[str]:
        response = httpx.post(logs, data={"query": f'"fresh {service}"'}, timeout=5)
        return {json.loads(line)["_msg"] for line in response.text.splitlines() if line.strip()}

    def metric_seen() -> set[str]:
        query = f'bench_freshness_probe{{job="{service}"}}'
        result = httpx.get(prometheus, params={"query": query}, timeout=5).json()["data"]["result"]
        return {str(int(float(sample["value"][1]))) for sample in result}

    watchers = {
        "span": Watcher(spans_seen),
        "log": Watcher(logs_seen),
        "metric": Watcher(metric_seen),
    }
    sent: dict[str, dict[str, float]] = {"span": {}, "log": {}, "metric": {}}
    with providers(endpoint, service) as (tracer_provider, logger_provider, meter_provider):
        tracer = tracer_provider.get_tracer("bench")
        logger = logger_provider.get_logger("bench")
        gauge = meter_provider.get_meter("bench").create_gauge("bench_freshness_probe")

        def metric_probes() -> None:
            # A gauge's value leaves the bot only if it is still the latest at an export (every
            # 5 s): a new value every second, for a minute, gives about a dozen samples.
            for number in range(1, METRIC_PROBES + 1):
                gauge.set(number)
                sent["metric"][str(number)] = time.time()
                time.sleep(1.0)

        metrics = threading.Thread(target=metric_probes, daemon=True)
        metrics.start()
        for number in range(1, PROBES + 1):
            with tracer.start_as_current_span("probe") as span:
                pass
            sent["span"][format(span.get_span_context().span_id, "016x")] = time.time()
            body = f"fresh {service} {number}"
            logger.emit(body=body)
            sent["log"][body] = time.time()
            time.sleep(PROBE_INTERVAL)
        metrics.join()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            not set(sent[kind]) <= set(watcher.seen)
            for kind, watcher in watchers.items()
            if kind != "metric"
        ):
            time.sleep(1)
        time.sleep(METRIC_EXPORT_MILLIS / 1000 * 3)
    for watcher in watchers.values():
        watcher.stop.set()
    latencies = {}
    for kind, watcher in watchers.items():
        latencies[kind] = [
            watcher.seen[key] - at for key, at in sent[kind].items() if key in watcher.seen
        ]
    return latencies


def probe_alertmanager_leg(settings: StackSettings) -> list[float]:
    """Alerts posted to Alertmanager, each its own group, until Telegram has them."""
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    url = settings.url(settings.alertmanager_port, "/api/v2/alerts")
    posted: dict[str, float] = {}
    for number in range(ALERTMANAGER_PROBES):
        name = f"FreshnessProbe{uuid.uuid4().hex[:6]}{number}"
        alert = {
            "labels": {"alertname": name, "severity": "critical", "component": "pipeline"},
            "annotations": {"summary": "freshness probe", "description": "bench", "action": "-"},
            "startsAt": datetime.now(UTC).isoformat(),
        }
        httpx.post(url, json=[alert], timeout=5).raise_for_status()
        posted[name] = time.time()
        time.sleep(1)
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + GROUP_WAIT + 60
    while time.monotonic() < deadline and len(arrived) < len(posted):
        for message in telegram.messages(DEMO_CRITICAL_CHAT_ID):
            for name in posted:
                if name in message["text"]:
                    arrived.setdefault(name, time.time())
        time.sleep(POLL)
    return [arrived[name] - at - GROUP_WAIT for name, at in posted.items() if name in arrived]


def probe_alert_end_to_end(settings: StackSettings) -> float | None:
    """A bot's first dropped span until BotTelemetryDropped reaches Telegram, beyond for and
    the group wait."""
    endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
    service = f"bench-alert-{uuid.uuid4().hex[:6]}"
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    with providers(endpoint, service) as (_, _, meter_provider):
        counter = meter_provider.get_meter("bench").create_counter("tbmon_telemetry_dropped")
        counter.add(3, {"signal": "spans", "reason": "queue_full"})
        recorded = time.time()
        deadline = time.monotonic() + RULE_FOR + GROUP_WAIT + 120
        while time.monotonic() < deadline:
            for message in telegram.messages(DEMO_CRITICAL_CHAT_ID):
                if "BotTelemetryDropped" in message["text"] and service in message["text"]:
                    return time.time() - recorded - RULE_FOR - GROUP_WAIT
            time.sleep(POLL)
    return None


def main() -> None:
    os.environ.pop("TELEGRAM_BOT_TOKEN", None)  # the stack's Telegram test server stands in
    with tempfile.TemporaryDirectory() as data:
        supervisor = Supervisor(isolated_settings(Path(data)))
        stop = threading.Event()
        try:
            supervisor.up()
            settings = supervisor.settings
            endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
            load = threading.Thread(target=steady_load, args=(endpoint, stop), daemon=True)
            load.start()
            time.sleep(10)  # the load's steady state
            results: dict[str, float | None] = {}
            end_to_end = threading.Thread(
                target=lambda: results.__setitem__("alert", probe_alert_end_to_end(settings)),
                daemon=True,
            )
            end_to_end.start()
            latencies = probe_signals(settings)
            leg = probe_alertmanager_leg(settings)
            end_to_end.join(timeout=300)
        finally:
            stop.set()
            supervisor.down()
    print(f"Under {LOAD_PER_SECOND} spans/s and {LOAD_PER_SECOND} log records/s; p50 / p99:\n")
    print("| what | p50 / p99 | target |")
    print("| --- | --- | --- |")
    print(f"| metric recorded -> Prometheus | {_percentiles(latencies['metric'])} | <= 10 s |")
    print(f"| span ended -> Jaeger | {_percentiles(latencies['span'])} | <= 5 s |")
    print(f"| log record -> VictoriaLogs | {_percentiles(latencies['log'])} | <= 5 s |")
    alert = results.get("alert")
    shown = "not delivered" if alert is None else f"{alert:.2f} s (n = 1)"
    print(f"| alert condition -> Telegram, beyond for + group wait | {shown} | <= 5 s |")
    print(f"| Alertmanager -> bridge -> Telegram, beyond group wait | {_percentiles(leg)} | |")


if __name__ == "__main__":
    main()
