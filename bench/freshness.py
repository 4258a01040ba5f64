"""Freshness: what a trader waits for, end to end on the local stack under a steady load.

A probe bot (the OpenTelemetry SDK with the tbmon distro's batching: spans and logs leave every
1 s, metrics at the distro's export interval) runs beside a steady load of 100 spans/s and 100 log
records/s, on an isolated local stack. Measured, p50 and p99:

- **metric**: a gauge set in the bot until Prometheus's query API returns that value (the bot's
  metric export, the collector, Prometheus's scrape of it);
- **span**: a span ended until Jaeger's API returns it;
- **log**: a log record emitted until VictoriaLogs' LogsQL API returns it;
- **alert**: a bot's first dropped spans (``tbmon_telemetry_dropped_total`` appears) until its
  alert's message reaches the Telegram test server, beyond the rule's ``for`` (1 m) and the
  critical route's group wait (10 s), measured from two moments: the bot recording the drop,
  and Prometheus first seeing it (the timestamp of the first sample it scraped). Each of
  ALERT_PROBES probe bots, started a few seconds apart, has its own alert: a copy of
  BotTelemetryDropped (the same expression over the same recording rule, restricted to the
  probe's job, the same ``for``, labels and route) appended to the rendered pipeline group, so
  it is evaluated with that group's rules, in order, and makes its own Alertmanager group
  (BotTelemetryDropped's alerts all share one group, whose later alerts wait for the group
  interval). Each probe records its drop at a random moment of its export period, as a bot
  would;
- **the Alertmanager -> bridge -> Telegram leg** alone, beyond the group wait, for alerts posted
  to Alertmanager (each its own group), before the probe alerts fire;
- what the faster intervals cost: Prometheus's CPU (every thread) and its rule evaluation time
  a second over the probing, and the collector's CPU.

Two stacks side by side in one run, each with its own load and probes: "as configured" (the
stack's rendered config and the distro's metric export interval) and "before" (the intervals
of issue 13's first measurement, patched into the rendered config: metrics exported every 5 s,
the collector scraped every 5 s, the pipeline rules evaluated every 5 s and the others every
15 s).

Targets (issue 13): metric <= 10 s, span and log <= 5 s, alert <= 5 s beyond for + group wait.

Run: .venv/bin/python -m bench freshness
"""

from __future__ import annotations

import copy
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
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

from bench._process import cpu_seconds
from tbmon.alert_bridge.settings import DEMO_CRITICAL_CHAT_ID
from tbmon.instrumentation.distro import OTEL_DEFAULTS, SCHEDULE_DELAY_MILLIS
from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack.components import COMPONENTS
from tbmon.stack.supervisor import Supervisor
from tbmon.standins.telegram import TestServerClient

PROBES = 40
METRIC_PROBES = 60
PROBE_INTERVAL = 0.5
LOAD_PER_SECOND = 100
POLL = 0.2
RULE_FOR = 60.0  # BotTelemetryDropped's `for`
GROUP_WAIT = 10.0  # the critical route's group_wait (TBMON_ALERT_CRITICAL_GROUP_WAIT)
ALERTMANAGER_PROBES = 8
ALERT_PROBES = 10
#: Seconds between two probe bots' starts: their messages stay under the bridge's pace for a
#: group chat (Telegram's 20 a minute), with BotTelemetryDropped's own among them.
ALERT_PROBE_SPACING = 6.0
ALERT_RULE = "BotTelemetryDropped"


@dataclass(frozen=True)
class Arm:
    """A stack's timings: the probe bots' metric export interval and, when set, the intervals
    patched into its rendered Prometheus config (None: as rendered)."""

    name: str
    metric_export_millis: int
    collector_scrape_interval: str | None = None
    evaluation_interval: str | None = None
    group_intervals: dict[str, str] = field(default_factory=dict)


ARMS = (
    Arm("as configured", int(OTEL_DEFAULTS["OTEL_METRIC_EXPORT_INTERVAL"])),
    Arm(
        "before (5 s export, 5 s scrape, rules every 5 s / 15 s)",
        5000,
        collector_scrape_interval="5s",
        evaluation_interval="15s",
        group_intervals={"pipeline": "5s"},
    ),
)


@contextmanager
def providers(
    endpoint: str, service: str, metric_export_millis: int
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
        export_interval_millis=metric_export_millis,
    )
    meter = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        yield tracer, logger, meter
    finally:
        for provider in (tracer, logger, meter):
            provider.shutdown()


def steady_load(endpoint: str, stop: threading.Event) -> None:
    """100 spans/s and 100 log records/s from another service, until ``stop``."""
    with providers(endpoint, "bench-load", 60_000) as (tracer_provider, logger_provider, _):
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
    return f"{statistics.median(ordered):.2f} / {p99:.2f} s (n = {len(ordered)})"


def probe_signals(settings: StackSettings, arm: Arm) -> dict[str, list[float]]:
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
    export = arm.metric_export_millis
    with providers(endpoint, service, export) as (tracer_provider, logger_provider, meter_provider):
        tracer = tracer_provider.get_tracer("bench")
        logger = logger_provider.get_logger("bench")
        gauge = meter_provider.get_meter("bench").create_gauge("bench_freshness_probe")

        def metric_probes() -> None:
            # A gauge's value leaves the bot only if it is still the latest at an export: a new
            # value every second, for a minute, gives one sample an export.
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
        time.sleep(export / 1000 * 3)
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


# -- the alert path ---------------------------------------------------------------------------


def _prometheus_files(supervisor: Supervisor) -> tuple[Path, Path]:
    """The running Prometheus's rendered config and rules folder."""
    prometheus = next(c for c in COMPONENTS if c.name == "prometheus")
    data = supervisor.layout(prometheus).data
    return data / "prometheus.yml", data / "rules"


def _rule(document: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group, rule) of the alert ``name`` in a rules document."""
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return group, rule
    raise LookupError(name)


def prepare(supervisor: Supervisor, arm: Arm, probes: list[str]) -> None:
    """Patch the arm's intervals into the rendered config, add a copy of BotTelemetryDropped
    for each probe job to its group, and have Prometheus reload."""
    config_path, rules = _prometheus_files(supervisor)
    config = yaml.safe_load(config_path.read_text())
    if arm.evaluation_interval is not None:
        config["global"]["evaluation_interval"] = arm.evaluation_interval
    for job in config["scrape_configs"]:
        if job["job_name"] == "otel-collector" and arm.collector_scrape_interval is not None:
            job["scrape_interval"] = arm.collector_scrape_interval
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    for path in rules.glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            if arm.evaluation_interval is not None:
                group.pop("interval", None)
            if group["name"] in arm.group_intervals:
                group["interval"] = arm.group_intervals[group["name"]]
        try:
            group, rule = _rule(document, ALERT_RULE)
        except LookupError:
            pass
        else:
            for job in probes:
                probe = copy.deepcopy(rule)
                probe["alert"] = f"FreshnessProbe{job.rsplit('-', 1)[1]}"
                selector = f'tbmon_telemetry_dropped:increase5m{{job="{job}"}}'
                probe["expr"] = rule["expr"].replace("tbmon_telemetry_dropped:increase5m", selector)
                group["rules"].append(probe)
        path.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    settings = supervisor.settings
    httpx.post(settings.url(settings.prometheus_port, "/-/reload"), timeout=30).raise_for_status()


@dataclass
class AlertProbe:
    job: str
    recorded: float = 0.0
    first_sample: float | None = None
    delivered: float | None = None


def probe_alerts(settings: StackSettings, arm: Arm, probes: list[AlertProbe]) -> None:
    """Each probe bot, ALERT_PROBE_SPACING apart, records 3 dropped spans at a random moment of
    its export period; then wait for each probe alert's message, and read when Prometheus first
    scraped each drop."""
    endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    export = arm.metric_export_millis / 1000

    def one(probe: AlertProbe) -> None:
        with providers(endpoint, probe.job, arm.metric_export_millis) as (_, _, meter_provider):
            counter = meter_provider.get_meter("bench").create_counter("tbmon_telemetry_dropped")
            time.sleep(export + random.uniform(0, export))
            counter.add(3, {"signal": "spans", "reason": "queue_full"})
            probe.recorded = time.time()
            name = f"FreshnessProbe{probe.job.rsplit('-', 1)[1]}"
            deadline = time.monotonic() + RULE_FOR + GROUP_WAIT + 120
            while time.monotonic() < deadline and probe.delivered is None:
                for message in telegram.messages(DEMO_CRITICAL_CHAT_ID):
                    if name in message["text"]:
                        probe.delivered = time.time()
                time.sleep(POLL)

    threads = []
    for probe in probes:
        thread = threading.Thread(target=one, args=(probe,), daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(ALERT_PROBE_SPACING)
    for thread in threads:
        thread.join(timeout=RULE_FOR + GROUP_WAIT + 300)
    query = settings.url(settings.prometheus_port, "/api/v1/query")
    for probe in probes:
        selector = f'{{__name__=~"tbmon_telemetry_dropped(_total)?", job="{probe.job}"}}[10m]'
        result = httpx.get(query, params={"query": selector}, timeout=10).json()["data"]["result"]
        firsts = [float(s["values"][0][0]) for s in result if s["values"]]
        probe.first_sample = min(firsts) if firsts else None


def _beyond(probes: list[AlertProbe], since: Callable[[AlertProbe], float | None]) -> list[float]:
    return [
        p.delivered - start - RULE_FOR - GROUP_WAIT
        for p in probes
        if p.delivered is not None and (start := since(p)) is not None
    ]


# -- the arms ---------------------------------------------------------------------------------


@dataclass
class Result:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    leg: list[float] = field(default_factory=list)
    probes: list[AlertProbe] = field(default_factory=list)
    #: Share of a core over the probing: Prometheus, the collector; rule evaluation a second.
    prometheus_cpu: float = 0.0
    collector_cpu: float = 0.0
    rule_seconds: float = 0.0


def _process(supervisor: Supervisor, name: str) -> psutil.Process:
    pid = next(s.pid for s in supervisor.status([name]))
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    return psutil.Process(pid)


def _rule_seconds(settings: StackSettings) -> float:
    """Rule evaluation time a second: each group's last evaluation over its interval."""
    url = settings.url(settings.prometheus_port, "/api/v1/rules")
    groups = httpx.get(url, timeout=10).json()["data"]["groups"]
    return float(sum(g["evaluationTime"] / g["interval"] for g in groups if g["interval"]))


def run_arm(supervisor: Supervisor, arm: Arm, result: Result) -> None:
    settings = supervisor.settings
    result.probes = [AlertProbe(f"bench-alert-{uuid.uuid4().hex[:6]}") for _ in range(ALERT_PROBES)]
    prepare(supervisor, arm, [probe.job for probe in result.probes])
    # First the leg alone: its messages do not queue behind the probe alerts' in the bridge,
    # which keeps to Telegram's 20 messages a minute in a group chat.
    result.leg = probe_alertmanager_leg(settings)
    processes = {name: _process(supervisor, name) for name in ("prometheus", "collector")}
    before = {name: cpu_seconds(process) for name, process in processes.items()}
    started = time.monotonic()
    alerts = threading.Thread(target=probe_alerts, args=(settings, arm, result.probes), daemon=True)
    alerts.start()
    result.latencies = probe_signals(settings, arm)
    result.rule_seconds = _rule_seconds(settings)
    alerts.join(timeout=600)
    elapsed = time.monotonic() - started
    result.prometheus_cpu = (cpu_seconds(processes["prometheus"]) - before["prometheus"]) / elapsed
    result.collector_cpu = (cpu_seconds(processes["collector"]) - before["collector"]) / elapsed


def report(arm: Arm, result: Result) -> None:
    print(f"\n### {arm.name}\n")
    print("| what | p50 / p99 | target |")
    print("| --- | --- | --- |")
    latencies = result.latencies
    print(f"| metric recorded -> Prometheus | {_percentiles(latencies['metric'])} | <= 10 s |")
    print(f"| span ended -> Jaeger | {_percentiles(latencies['span'])} | <= 5 s |")
    print(f"| log record -> VictoriaLogs | {_percentiles(latencies['log'])} | <= 5 s |")
    from_bot = _beyond(result.probes, lambda p: p.recorded)
    from_scrape = _beyond(result.probes, lambda p: p.first_sample)
    lost = sum(p.delivered is None for p in result.probes)
    print(
        "| alert: drop recorded in the bot -> Telegram, beyond for + group wait | "
        f"{_percentiles(from_bot)} | <= 5 s |"
    )
    print(
        "| alert: Prometheus's first sample of it -> Telegram, beyond for + group wait | "
        f"{_percentiles(from_scrape)} | |"
    )
    leg = _percentiles(result.leg)
    print(f"| Alertmanager -> bridge -> Telegram, beyond group wait | {leg} | |")
    print(
        f"\nProbe alerts not delivered: {lost}. Over the probing: Prometheus "
        f"{result.prometheus_cpu * 100:.1f} % of a core (rule evaluation "
        f"{result.rule_seconds * 1000:.1f} ms a second), the collector "
        f"{result.collector_cpu * 100:.1f} %."
    )


def main() -> None:
    os.environ.pop("TELEGRAM_BOT_TOKEN", None)  # the stack's Telegram test server stands in
    results = {arm.name: Result() for arm in ARMS}
    with ExitStack() as stack:
        stop = threading.Event()
        supervisors = []
        try:
            for _ in ARMS:
                data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                supervisor = Supervisor(isolated_settings(data))
                supervisors.append(supervisor)
                supervisor.up()
                settings = supervisor.settings
                endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
                threading.Thread(target=steady_load, args=(endpoint, stop), daemon=True).start()
            time.sleep(10)  # the loads' steady state
            threads = [
                threading.Thread(target=run_arm, args=(sup, arm, results[arm.name]), daemon=True)
                for sup, arm in zip(supervisors, ARMS, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=900)
        finally:
            stop.set()
            for supervisor in supervisors:
                supervisor.down()
    print(
        f"Two stacks side by side, each under {LOAD_PER_SECOND} spans/s and {LOAD_PER_SECOND} "
        f"log records/s; {ALERT_PROBES} probe alerts each; p50 / p99:"
    )
    for arm in ARMS:
        report(arm, results[arm.name])


if __name__ == "__main__":
    main()
