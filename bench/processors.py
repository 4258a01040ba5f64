"""The processors host: spans per second per core through the built-in chain, and the latency it
adds, side by side in one run with the collector passing the same load without the Python hop.

Run: .venv/bin/python -m bench processors   (target: >= 50,000 spans/s per core; the added
latency is reported, not a target: issue 13 replaced the former 5 ms p99 with the freshness
targets a trader feels, measured by `python -m bench freshness`: a metric in Prometheus within
10 s, a span in Jaeger and a log record in the log store within 5 s, an alert in Telegram within
5 s beyond its rule's `for` and its route's group wait; figures in docs/performance.md)

1. The hop alone: pre-encoded batches of SDK spans (ccxt-like spans with ten attributes, one
   in eight an order placement, one in eight carrying an exchange API key header, so every
   batch is parsed, masked and re-encoded by redaction) sent straight to the collector's
   otlp/processed receiver, and through the host to it, interleaved one request at a time
   (latency and the host's CPU a request, 128-, 256- and 512-span batches), once through the
   built-in chain and once through a host with no plugin (what gRPC in Python costs by itself);
   then 512-span batches (the collector's ingest batch size) from four senders in parallel (the
   collector's num_consumers) for throughput and the host's CPU time.
2. End to end, driven by telemetrygen (built from Go modules into ~/.cache/tbmon/tools) and by
   the Python SDK: load -> collector -> [host ->] collector -> a trace sink that notes when each
   span arrived. A tee collector in front copies every request, in order, to three arms: two
   "collector alone" (the collector points at its own otlp/processed receiver, no Python hop)
   and "with host" (through `tbmon processors serve`). All arms get the same spans at the same
   moments and their exporters' batchers cut the same batches, so the host's added latency is
   measured per span: its arrival through the host minus its arrival through the first
   collector-alone arm. The same difference between the two collector-alone arms is the
   measure's floor: what two identical pipelines differ by on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import psutil
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bench._process import cpu_seconds, until_ready
from tbmon import attributes as attr
from tbmon.ports import free_ports, isolated_settings
from tbmon.processors.api import Signal
from tbmon.processors.testing import record
from tbmon.settings import StackSettings
from tbmon.stack.components import COMPONENTS, Layout
from tbmon.stack.supervisor import Supervisor, stop

TELEMETRYGEN_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen"
#: The newest version our Go module proxy serves (v0.162.0 is listed but refused).
TELEMETRYGEN_VERSION = "v0.161.0"
BATCH_SPANS = 512  # about the ingest batches' min_size (tbmon/collector/config.yaml: 192 KiB)
HOP_SIZES = (128, 256, 512)
LATENCY_REQUESTS = 200
THROUGHPUT_SECONDS = 15.0
SENDERS = 4
E2E_SECONDS = 20
E2E_RATE = 4_000  # spans per second, copied to every arm
#: The exporters' batch flush timeout end to end: longer than the run, so that all arms cut their
#: batches by size only, at the same spans (a timeout fires at a different moment in each).
BATCH_TIMEOUT = f"{E2E_SECONDS + 5}s"
WARM_UP = "bench-warm-up"
#: A Binance-style API key, as a bot that records its request headers sends it (one span in 8).
API_KEY_HEADER = "http.request.header.x-mbx-apikey"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def telemetrygen(settings: StackSettings) -> Path:
    """telemetrygen, built with `go install` into the cache on first use."""
    folder = settings.cache_dir / "tools" / f"telemetrygen-{TELEMETRYGEN_VERSION}"
    program = folder / "telemetrygen"
    if not program.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"building telemetrygen {TELEMETRYGEN_VERSION} into {folder} ...", flush=True)
        subprocess.run(
            ["go", "install", f"{TELEMETRYGEN_MODULE}@{TELEMETRYGEN_VERSION}"],
            env={**os.environ, "GOBIN": str(folder)},
            check=True,
            cwd=folder,
        )
    return program


# -- the trace sink -----------------------------------------------------------------------------


@dataclass
class Sink:
    """Stands where Jaeger would: when each span arrived, by its identity."""

    port: int
    #: (arrival time in ns since the epoch, request) as they came, decoded only when read: a
    #: handler that decoded would hold the GIL that the other arms' sinks, in this process,
    #: need to note their own arrivals, and so would delay them by milliseconds.
    arrivals: deque[tuple[int, bytes]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (trace id + span id) -> (end time, arrival time), in ns since the epoch. A span that
    #: arrives twice (a retried batch) counts once.
    _received: dict[bytes, tuple[int, int]] = field(default_factory=dict)

    def export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.arrivals.append((time.time_ns(), request))
        return b""

    @property
    def received(self) -> dict[bytes, tuple[int, int]]:
        """Every span that arrived so far (a copy: the sink's server may still add to it)."""
        with self.lock:
            self._decode_arrivals()
            return dict(self._received)

    @property
    def spans(self) -> int:
        with self.lock:
            self._decode_arrivals()
            return len(self._received)

    def _decode_arrivals(self) -> None:
        while self.arrivals:
            arrived, request = self.arrivals.popleft()
            message = ExportTraceServiceRequest.FromString(request)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        if span.name != WARM_UP:
                            self._received.setdefault(
                                span.trace_id + span.span_id, (span.end_time_unix_nano, arrived)
                            )

    def steady(self, margin_seconds: float = 2.0) -> dict[bytes, tuple[int, int]]:
        """The spans that ended after the first and before the last seconds of the run: the
        pipeline's steady state, without start-up and the final partial batches (which wait
        for the batch flush timeout)."""
        received = self.received
        if not received:
            return {}
        ends = [end for end, _ in received.values()]
        first, last, margin = min(ends), max(ends), margin_seconds * 1e9
        return {k: v for k, v in received.items() if first + margin <= v[0] <= last - margin}

    def steady_delays(self) -> list[float]:
        """Steady-state delays (ms) from each span's end to its arrival here."""
        return [(arrived - end) / 1e6 for end, arrived in self.steady().values()]

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self._received = {}


def added_delays(reference: Sink, other: Sink) -> list[float]:
    """For every steady-state span that reached both sinks: how much later (ms) it arrived at
    ``other`` than at ``reference``."""
    first = reference.steady()
    return [
        (arrived - first[identity][1]) / 1e6
        for identity, (_, arrived) in other.steady().items()
        if identity in first
    ]


@contextmanager
def sink() -> Iterator[Sink]:
    recording = Sink(free_ports(1)[0])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 2**20)],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                Signal.SPANS.service,
                {"Export": grpc.unary_unary_rpc_method_handler(recording.export)},
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{recording.port}")
    server.start()
    try:
        yield recording
    finally:
        server.stop(0)


# -- processes ------------------------------------------------------------------------------------


@contextmanager
def process(
    settings: StackSettings, name: str, env: dict[str, str], ready_url: str
) -> Iterator[psutil.Process]:
    """One stack component (collector or processors), started with extra environment."""
    component = next(c for c in COMPONENTS if c.name == name)
    layout = Layout(settings, name)
    layout.data.mkdir(parents=True, exist_ok=True)
    layout.log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(component.binary.path(settings.cache_dir)), *component.args(layout)]
    with layout.log.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            env={**Supervisor(settings).environment(), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=layout.data,
        )
    try:
        until_ready(popen, ready_url, f"{name} (log: {layout.log})")
        yield psutil.Process(popen.pid)
    finally:
        stop(popen, grace=20)


#: A collector that copies each request to every arm (``{exporters}``), in order: one consumer
#: per arm, no batching, so all arms get the same spans in the same requests.
TEE_CONFIG = """
extensions:
  health_check:
    endpoint: 127.0.0.1:{health_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
exporters:
{exporters}
service:
  extensions: [health_check]
  telemetry:
    logs: {{level: warn}}
    metrics: {{level: none}}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [{names}]
"""


@contextmanager
def tee(settings: StackSettings, folder: Path, targets: list[str]) -> Iterator[str]:
    """The tee collector in front of the arms; yields its OTLP/gRPC endpoint."""
    port, health_port = free_ports(2)
    names = [f"otlp_grpc/arm{index}" for index in range(len(targets))]
    exporters = "".join(
        f"  {name}:\n    endpoint: {target}\n    tls: {{insecure: true}}\n"
        "    compression: none\n"
        "    sending_queue: {enabled: true, num_consumers: 1, queue_size: 100000}\n"
        for name, target in zip(names, targets, strict=True)
    )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tee.yaml"
    config.write_text(
        TEE_CONFIG.format(
            health_port=health_port, port=port, exporters=exporters, names=", ".join(names)
        )
    )
    binary = next(c for c in COMPONENTS if c.name == "collector").binary
    with (folder / "tee.log").open("ab") as log:
        popen = subprocess.Popen(
            [str(binary.path(settings.cache_dir)), "--config", f"file:{config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        until_ready(popen, f"http://127.0.0.1:{health_port}/", f"the tee (log: {folder})")
        yield f"127.0.0.1:{port}"
    finally:
        stop(popen, grace=20)


@dataclass
class Pipeline:
    """A collector whose traces go to ``sink``; its ingest pipelines export to ``processors``."""

    settings: StackSettings
    collector: psutil.Process
    host: psutil.Process | None


@contextmanager
def pipeline(
    root: Path,
    trace_sink: Sink,
    with_host: bool,
    batch_timeout: str = "1s",
    host_env: dict[str, str] | None = None,
) -> Iterator[Pipeline]:
    settings = isolated_settings(root)
    s = settings
    processed = f"{s.bind_host}:{s.processed_port}"
    env = {
        "TBMON_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{trace_sink.port}",
        "TBMON_PROCESSORS_ENDPOINT": (
            f"{s.bind_host}:{s.processors_port}" if with_host else processed
        ),
        "TBMON_COLLECTOR_LOG_LEVEL": "warn",
        "TBMON_COLLECTOR_BATCH_TIMEOUT": batch_timeout,
    }
    with ExitStack() as stack:
        host = None
        if with_host:
            host = stack.enter_context(
                process(
                    settings, "processors", host_env or {}, s.url(s.processors_http_port, "/health")
                )
            )
        collector = stack.enter_context(
            process(settings, "collector", env, s.url(s.collector_health_port, "/"))
        )
        # Both arms get one warm-up span, so their batchers start from the same count
        # (and the host has connected to the collector, which started after it).
        _warm_up(f"{s.bind_host}:{s.processors_port}" if with_host else processed)
        yield Pipeline(settings, collector, host)


def _warm_up(endpoint: str) -> None:
    """Send one span through a pipeline's first hop, retrying until it is accepted."""
    send = _client(endpoint)
    one_span = _one_span()
    deadline = time.monotonic() + 30
    while True:
        try:
            send(one_span, timeout=5, wait_for_ready=True)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _one_span() -> bytes:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name=WARM_UP, end_time_unix_nano=1
    )
    return request.SerializeToString()


# -- load -----------------------------------------------------------------------------------------


def sdk_batch(count: int) -> bytes:
    """``count`` spans as a ccxt-instrumented bot's SDK sends them (ten attributes each; one in
    eight also carries an API key header for redaction to mask)."""
    with record({"service.name": "bench-bot", "service.instance.id": "bench-1"}) as sdk:
        for index in range(count):
            kind = index % 8
            attributes: dict[str, str | float | int] = {
                attr.EXCHANGE: "binance",
                attr.SYMBOL: "BTC/USDT",
                attr.STRATEGY: "momentum",
                "net.peer.name": "api.binance.com",
                "http.url": "https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT",
                "http.status_code": 200,
            }
            if kind == 0:
                name = "create_order"
                attributes.update(
                    {
                        attr.SIDE: "buy",
                        attr.ORDER_TYPE: "limit",
                        attr.ORDER_PRICE: 42000.0,
                        attr.ORDER_AVERAGE_PRICE: 42010.5,
                    }
                )
            else:
                name = ("fetch_ticker", "fetch_order_book", "fetch_balance")[kind % 3]
                attributes.update(
                    {"retries": 0, "cache.hit": "false", "rate_limit.remaining": 1190}
                )
                if kind == 4:
                    attributes[API_KEY_HEADER] = API_KEY
            with sdk.tracer.start_as_current_span(name, attributes=attributes):
                pass
        return sdk.spans().raw


def _client(endpoint: str) -> grpc.UnaryUnaryMultiCallable:
    channel = grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 2**26)])
    return channel.unary_unary(Signal.SPANS.method)


@dataclass
class Hop:
    """One batch size, one request at a time, the two routes interleaved."""

    spans: int
    direct_ms: list[float]
    host_ms: list[float]
    #: The host's CPU time (user + system, every thread) per request it forwarded.
    host_cpu_ms: float


def hop_latency(direct: str, via_host: str, payload: bytes, host: psutil.Process) -> Hop:
    """Per-request round trips (ms), one request at a time, the two routes interleaved."""
    send_direct, send_host = _client(direct), _client(via_host)
    for send in (send_direct, send_host):  # connect and warm up
        for _ in range(5):
            send(payload, timeout=30)
    direct_ms: list[float] = []
    host_ms: list[float] = []
    cpu_before = cpu_seconds(host)
    for _ in range(LATENCY_REQUESTS):
        for send, timings in ((send_direct, direct_ms), (send_host, host_ms)):
            started = time.perf_counter()
            send(payload, timeout=30)
            timings.append((time.perf_counter() - started) * 1e3)
    cpu_ms = (cpu_seconds(host) - cpu_before) / LATENCY_REQUESTS * 1e3
    return Hop(Signal.SPANS.count(payload), direct_ms, host_ms, cpu_ms)


def hop_throughput(via_host: str, payload: bytes, host: psutil.Process) -> tuple[float, float]:
    """(spans per second of wall time, spans per CPU-second of the host) with SENDERS senders."""
    sent = [0] * SENDERS
    stop = time.monotonic() + THROUGHPUT_SECONDS

    def sender(slot: int) -> None:
        send = _client(via_host)
        while time.monotonic() < stop:
            send(payload, timeout=30)
            sent[slot] += BATCH_SPANS

    cpu_before, started = cpu_seconds(host), time.monotonic()
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.monotonic() - started, cpu_seconds(host) - cpu_before
    return sum(sent) / elapsed, sum(sent) / cpu


@dataclass
class Arm:
    name: str
    offered: int
    delivered: int
    delays: list[float]
    collector_cpu: float
    host_cpu: float | None


#: The arms of an end-to-end run: (name, through the host). The second collector-alone arm is
#: the measure's own floor: two identical arms differ per span only by this machine's noise.
ARMS = (("collector alone", False), ("collector alone, twin", False), ("with host", True))


@dataclass
class EndToEnd:
    arms: list[Arm]
    #: Per span, how much later (ms) it arrived through the host than through the first
    #: collector-alone arm.
    added: list[float]
    #: The same between the two collector-alone arms: what the measure reads with no host.
    floor: list[float]


def end_to_end(root: Path, driver: str) -> EndToEnd:
    """The arms side by side, fed the very same spans at the same moments through a tee, each
    with its own pipeline and sink."""
    with ExitStack() as stack:
        arms = []
        for index, (_, with_host) in enumerate(ARMS):
            trace_sink = stack.enter_context(sink())
            pipe = stack.enter_context(
                pipeline(root / f"{driver}-{index}", trace_sink, with_host, BATCH_TIMEOUT)
            )
            arms.append((pipe, trace_sink))
        entry = stack.enter_context(
            tee(
                arms[0][0].settings,
                root / f"{driver}-tee",
                [f"{p.settings.bind_host}:{p.settings.otlp_grpc_port}" for p, _ in arms],
            )
        )
        for _, trace_sink in arms:
            trace_sink.reset()
        before = [
            (cpu_seconds(p.collector), cpu_seconds(p.host) if p.host else 0.0) for p, _ in arms
        ]
        _drive(driver, entry, arms[0][0].settings)
        deadline = time.monotonic() + 120
        while True:
            offered = [_accepted_spans(p.settings) for p, _ in arms]
            delivered = all(s.spans >= count for (_, s), count in zip(arms, offered, strict=True))
            if (delivered and len(set(offered)) == 1) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        results = [
            Arm(
                name=name,
                offered=count,
                delivered=trace_sink.spans,
                delays=trace_sink.steady_delays(),
                collector_cpu=cpu_seconds(pipe.collector) - collector_before,
                host_cpu=cpu_seconds(pipe.host) - host_before if pipe.host else None,
            )
            for (name, _), (pipe, trace_sink), count, (collector_before, host_before) in zip(
                ARMS, arms, offered, before, strict=True
            )
        ]
        (_, alone), (_, twin), (_, hosted) = arms
        return EndToEnd(results, added_delays(alone, hosted), added_delays(alone, twin))


def _drive(driver: str, endpoint: str, settings: StackSettings) -> None:
    """Offer E2E_RATE spans a second for E2E_SECONDS to ``endpoint``."""
    if driver == "telemetrygen":
        subprocess.run(
            [
                str(telemetrygen(settings)),
                "traces",
                "--otlp-insecure",
                "--otlp-endpoint",
                endpoint,
                "--rate",
                str(E2E_RATE),
                "--duration",
                f"{E2E_SECONDS}s",
                "--child-spans",
                "4",
            ],
            check=True,
            capture_output=True,
        )
    else:
        subprocess.run(
            [sys.executable, "-c", f"import bench.processors as b; b.sdk_load({endpoint!r})"],
            check=True,
            capture_output=True,
        )


def _accepted_spans(settings: StackSettings) -> int:
    """Spans the collector's ingest receiver accepted (its own telemetry)."""
    text = httpx.get(settings.url(settings.collector_telemetry_port, "/metrics"), timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_receiver_accepted_spans") and 'receiver="otlp"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def sdk_load(endpoint: str) -> None:
    """E2E_RATE spans a second for E2E_SECONDS from the Python SDK (BatchSpanProcessor, OTLP/gRPC
    exporter), as a bot makes them, one in eight with an API key header. Run in its own
    process: the SDK's cost is the bot's."""
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-sdk"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            max_queue_size=65536,
            max_export_batch_size=512,
            schedule_delay_millis=100,
        )
    )
    tracer = provider.get_tracer("bench")
    started = time.monotonic()
    plain = {"exchange": "binance", "symbol": "BTC/USDT"}
    with_key = {**plain, API_KEY_HEADER: API_KEY}
    for index in range(E2E_RATE * E2E_SECONDS):
        attributes = with_key if index % 8 == 4 else plain
        with tracer.start_as_current_span("fetch_ticker", attributes=attributes):
            pass
        ahead = started + (index + 1) / E2E_RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    provider.shutdown()


# -- report ---------------------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


#: The hosts of the hop-alone part: the built-in chain, and no plugin at all (what receiving
#: and forwarding over gRPC in Python costs by itself on this machine).
HOP_HOSTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("built-in chain", {}),
    ("no plugin", {"PROCESSORS_PLUGINS": ""}),
)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        hops: list[tuple[str, Hop]] = []
        for index, (label, host_env) in enumerate(HOP_HOSTS):
            with (
                sink() as trace_sink,
                pipeline(root / f"hop-{index}", trace_sink, True, host_env=host_env) as pipe,
            ):
                s = pipe.settings
                assert pipe.host is not None
                direct, via_host = (
                    f"{s.bind_host}:{s.processed_port}",
                    f"{s.bind_host}:{s.processors_port}",
                )
                for size in HOP_SIZES:
                    hops.append((label, hop_latency(direct, via_host, sdk_batch(size), pipe.host)))
                if index == 0:  # throughput through the built-in chain only
                    payload = sdk_batch(BATCH_SPANS)
                    wall, per_core = hop_throughput(via_host, payload, pipe.host)
                    masked = _redactions(s)
        print("### The hop alone (SDK batches, one request at a time)\n")
        print(
            "| host | batch | straight to the collector p50 / p99 | through the host p50 / p99 "
            "| added p50 / p99 | host CPU a request | spans per CPU-second |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, hop in hops:
            d50, d99, h50, h99 = (
                _p(hop.direct_ms, 0.5),
                _p(hop.direct_ms, 0.99),
                _p(hop.host_ms, 0.5),
                _p(hop.host_ms, 0.99),
            )
            print(
                f"| {label} | {hop.spans} spans | {d50:.2f} / {d99:.2f} ms "
                f"| {h50:.2f} / {h99:.2f} ms | {h50 - d50:+.2f} / {h99 - d99:+.2f} ms "
                f"| {hop.host_cpu_ms:.2f} ms | {hop.spans / hop.host_cpu_ms * 1e3:,.0f} |"
            )
        print(
            f"\nThroughput, {BATCH_SPANS}-span batches from {SENDERS} senders: {wall:,.0f} spans/s "
            f"wall, **{per_core:,.0f} spans per CPU-second of the host** "
            f"({BATCH_SPANS / per_core * 1e3:.1f} ms of CPU per batch); redaction masked "
            f"{masked:,.0f} values (one span in eight)\n"
        )
        print(
            f"### End to end, the three arms fed the same spans ({E2E_RATE:,} spans/s for "
            f"{E2E_SECONDS} s)\n"
        )
        print(
            "| driver | arm | offered | delivered | p50 / p99 delay (steady state) "
            "| collector spans/CPU-s | host spans/CPU-s |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for driver in ("telemetrygen", "sdk"):
            run = end_to_end(root, driver)
            for arm in run.arms:
                print(_row(driver, arm))
            alone, twin, hosted = run.arms
            for what, delays, arm in (
                ("added by the host, per span", run.added, hosted),
                ("the twin arms' difference, per span (the floor)", run.floor, twin),
            ):
                of_p99s = _p(arm.delays, 0.99) - _p(alone.delays, 0.99)
                print(
                    f"| {driver} | {what} ({len(delays):,} spans in both) | | "
                    f"| p50 {_p(delays, 0.5):+.1f} / p99 {_p(delays, 0.99):+.1f} ms "
                    f"(difference of the p99s {of_p99s:+.1f}) | | |"
                )


def _redactions(settings: StackSettings) -> float:
    """Values the host's redaction masked (its /metrics): proof the benchmark made it work."""
    text = httpx.get(settings.url(settings.processors_http_port, "/metrics"), timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tbmon_processors_redactions_total{")
    )


def _row(driver: str, arm: Arm) -> str:
    host = f"{arm.delivered / arm.host_cpu:,.0f}" if arm.host_cpu else ""
    return (
        f"| {driver} | {arm.name} | {arm.offered:,} | {arm.delivered:,} "
        f"| {_p(arm.delays, 0.5):.1f} / {_p(arm.delays, 0.99):.1f} ms "
        f"| {arm.delivered / arm.collector_cpu:,.0f} | {host} |"
    )


if __name__ == "__main__":
    main()
