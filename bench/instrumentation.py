"""Bot-side CPU per order cycle: with tbmon, with the stock distro and un-instrumented.

Side by side in one run: the CPU a bot pays per instrumented order cycle with tbmon's set-up,
with the stock ``opentelemetry-distro`` defaults and with no SDK; and the highest rate of order
cycles each exporting mode sends without losing a span.

Run: .venv/bin/python -m bench instrumentation   (short: python -m bench.instrumentation --quick)
Target: tbmon's telemetry costs at most half the stock distro's CPU per order cycle.

An order cycle is the same code in every mode (:func:`order_cycle`): a root span
``trade BTC/USDT`` with four children (``create_order`` a CLIENT span with eight attributes),
``TradingMetrics.record_order`` (a counter add), an ``api_request_duration_seconds`` and a
``model_inference_duration_seconds`` record, a portfolio value and one log record with extra
fields inside the root span. The bot logs to the console in every mode (``logging.basicConfig``,
as bots do), so the floor pays for the console line too.

Modes, each run in a fresh subprocess so that providers and import state do not leak:

- ``none``: no SDK, the API's no-op providers: the floor;
- ``stock``: what ``opentelemetry-instrument`` does with ``opentelemetry-distro`` installed. That
  package is not installed: its distro only ``setdefault``\\ s OTLP exporters for the three signals
  over gRPC, reproduced by :class:`StockDistro`, and its configurator is the SDK's
  ``_OTelSDKConfigurator`` unchanged;
- ``tbmon``: ``TbmonDistro`` and ``TbmonConfigurator`` (tbmon's exporters for spans and logs).

Both exporting modes then load the logging instrumentation through their distro, as
``opentelemetry-instrument`` does (tbmon's distro gives its handler a leaner emit), and export to
a real collector started here (otlp receiver -> batch -> debug exporter), whose own counters tell
what arrived. Only the bot's CPU is measured, not the collector's.

1. CPU: the worker's CPU time (all its threads: the batch processors' export threads and gRPC's
   too) over N cycles run flat out, from after a warm-up and a flush to after the final flush of
   spans and logs, so their encoding and export are counted; split into the bot's own thread
   during the loop (creating spans, metric and log records) and the rest (the export threads
   and the final flush: encoding and sending). Each repeat is a fresh process, the modes
   interleaved so that the machine's drift falls on all alike; the median run is reported.
   Both exporting modes get a span and a log queue that hold the whole run: with the defaults a
   mode that falls behind drops telemetry and looks cheaper than it is.
2. Rate: the cycles paced at each rate for a few seconds, each mode with its default queues;
   spans sent (warm-up included) against those the collector accepted.
3. ccxt: a real ccxt bot's iteration (:func:`ccxt_iteration`: fetch_balance, fetch_tickers,
   fetch_ohlcv, fetch_order_book and a market create_order) against the local exchange, run in
   its own process so that only the bot's CPU is measured, in three modes, interleaved as above:
   ``none`` (no SDK, no instrumentation), ``spans`` (tbmon's set-up and the ccxt instrumentation
   with ``derive=False``: spans and durations only, as before it read trading facts from the
   answers) and ``facts`` (the instrumentation as ``opentelemetry-instrument`` loads it: order
   outcomes, portfolio value, positions and prices from the answers too); and the requests the
   exchange received, which must be the same in every mode.
4. Metric export interval (``--export-interval`` runs only this): tbmon's set-up at a steady
   10 order cycles a second for 20 s, with ``OTEL_METRIC_EXPORT_INTERVAL`` at 5000, 2000 and
   1000 ms, interleaved: the bot's CPU over the run (cycles, span and log exports, and the
   periodic metric exports, which only the interval changes), and what one export costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import operator
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.version import __version__ as instrumentation_version
from opentelemetry.metrics import Histogram, get_meter_provider
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.trace import SpanKind, Tracer

from bench import CHECKOUT
from bench._process import until_ready
from tbmon import attributes as attr
from tbmon.instrumentation import instruments
from tbmon.instrumentation.configurator import TbmonConfigurator
from tbmon.instrumentation.distro import TbmonDistro
from tbmon.instrumentation.trading import TradingMetrics, trading_metrics
from tbmon.ports import free_ports
from tbmon.settings import StackSettings
from tbmon.stack.binaries import OTELCOL
from tbmon.standins.exchange import ExchangeServerClient

SPANS_PER_CYCLE = 5
#: ``opentelemetry-distro``'s OpenTelemetryDistro._configure, every line of it.
STOCK_DISTRO_DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
}
TARGET_RATIO = 0.5  # tbmon's telemetry CPU over the stock distro's


@dataclass(frozen=True)
class Plan:
    repeats: int
    cycles: int  # per CPU repeat
    warm_up: int  # cycles before every measurement
    rates: tuple[int, ...]  # cycles a second
    seconds: float  # per rate


FULL = Plan(
    repeats=5, cycles=5_000, warm_up=500, rates=(250, 500, 750, 1000, 1500, 2000, 4000), seconds=5
)
QUICK = Plan(repeats=3, cycles=1_000, warm_up=200, rates=(500, 2000), seconds=2)


# -- the modes ----------------------------------------------------------------------------------


class StockDistro(BaseDistro):  # type: ignore[misc]
    """``opentelemetry-distro``'s distro, reproduced: that package is not installed here."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in STOCK_DISTRO_DEFAULTS.items():
            os.environ.setdefault(name, value)


@dataclass(frozen=True)
class Setup:
    """What ``opentelemetry-instrument`` loads at start-up, in its order."""

    distro: type[BaseDistro]
    configurator: type[_OTelSDKConfigurator]

    def apply(self) -> None:
        distro = self.distro()
        distro.configure()
        self.configurator().configure(  # type: ignore[no-untyped-call]
            auto_instrumentation_version=instrumentation_version
        )
        (logging_instrumentor,) = entry_points(group="opentelemetry_instrumentor", name="logging")
        distro.load_instrumentor(logging_instrumentor, skip_dep_check=True)


#: Each mode's SDK set-up (``none``: the API's no-op providers).
MODES: dict[str, Setup | None] = {
    "none": None,
    "stock": Setup(StockDistro, _OTelSDKConfigurator),
    "tbmon": Setup(TbmonDistro, TbmonConfigurator),
}
EXPORTING = tuple(mode for mode, setup in MODES.items() if setup is not None)


# -- the bot (runs in the worker) ---------------------------------------------------------------


@dataclass(frozen=True)
class Bot:
    """What a bot holds, made after the SDK is (or is not) set up, as under the instrument tool."""

    tracer: Tracer
    metrics: TradingMetrics
    api_requests: Histogram
    log: logging.Logger

    @classmethod
    def start(cls) -> Bot:
        logging.basicConfig(level=logging.INFO)
        return cls(
            trace.get_tracer("bench.bot"),
            trading_metrics(),
            instruments.api_request_duration(),
            logging.getLogger("bench.bot"),
        )


def order_cycle(bot: Bot, index: int) -> None:
    """One order, as a bot traces, measures and logs it."""
    price = 42_000.0 + index % 100
    order_id = f"bench-{index:09d}"
    with bot.tracer.start_as_current_span(
        "trade BTC/USDT", attributes={"strategy": "momentum", "symbol": "BTC/USDT"}
    ):
        with (
            bot.tracer.start_as_current_span(
                "signal", attributes={"signal.direction": "long", "signal.strength": 0.73}
            ),
            bot.metrics.inference("momentum-v1"),
        ):
            pass
        with bot.tracer.start_as_current_span(
            "risk_check", attributes={"risk.approved": True, "risk.exposure_usd": 420.0}
        ):
            pass
        with bot.tracer.start_as_current_span(
            "create_order",
            kind=SpanKind.CLIENT,
            attributes={
                attr.EXCHANGE: "binance",
                attr.SYMBOL: "BTC/USDT",
                attr.SIDE: "buy",
                attr.ORDER_TYPE: "limit",
                attr.ORDER_AMOUNT: 0.01,
                attr.ORDER_PRICE: price,
                attr.ORDER_ID: order_id,
                attr.ORDER_STATUS: "filled",
            },
        ):
            bot.api_requests.record(  # the exchange call's duration (there is no exchange)
                0.042, {attr.EXCHANGE: "binance", "endpoint": "create_order", "status": "ok"}
            )
        with bot.tracer.start_as_current_span(
            "fill", attributes={"fill.price": price, "fill.amount": 0.01}
        ):
            bot.metrics.record_order(
                symbol="BTC/USDT", side="buy", status="filled", exchange="binance"
            )
        bot.metrics.record_portfolio_value(100_000.0 + index % 1_000)
        bot.log.info(
            "order filled",
            extra={
                attr.ORDER_ID: order_id,
                attr.SYMBOL: "BTC/USDT",
                attr.SIDE: "buy",
                "price": price,
            },
        )


def run_cycles(bot: Bot, indexes: range, rate: float | None) -> None:
    """The cycles flat out, or paced at ``rate`` a second (late ones are not made up for)."""
    started = time.monotonic()
    for done, index in enumerate(indexes, 1):
        order_cycle(bot, index)
        if rate is not None:
            ahead = started + done / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


@runtime_checkable
class _Flushable(Protocol):
    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...


def flush(*providers: object) -> bool:
    """Exports what the SDK's providers hold; True when all of it went (trivially without one)."""
    return all(p.force_flush() for p in providers if isinstance(p, _Flushable))


@dataclass(frozen=True)
class Job:
    mode: str
    cycles: int
    warm_up: int
    rate: float | None  # cycles a second; None: flat out


@dataclass(frozen=True)
class Sample:
    """What a worker measured over a job's cycles (the warm-up left out)."""

    cpu_seconds: float  # cycles and the final flush of spans and logs, every thread
    bot_thread_seconds: float  # the cycles' own CPU: the bot's thread during the loop
    loop_seconds: float  # wall time of the cycles alone
    flushed: bool


def worker(job_json: str) -> None:
    """Runs one job in this fresh process and prints its :class:`Sample` as JSON."""
    job = Job(**json.loads(job_json))
    setup = MODES[job.mode]
    if setup is not None:
        setup.apply()
    bot = Bot.start()
    exporting = (trace.get_tracer_provider(), get_logger_provider())
    run_cycles(bot, range(job.warm_up), None)
    flush(*exporting)  # the warm-up's export out of the measurement, the channel connected
    cpu, thread, started = time.process_time(), time.thread_time(), time.monotonic()
    run_cycles(bot, range(job.warm_up, job.warm_up + job.cycles), job.rate)
    thread, loop_seconds = time.thread_time() - thread, time.monotonic() - started
    flushed = flush(*exporting)
    cpu = time.process_time() - cpu
    flush(get_meter_provider())  # for the collector's count only
    print(json.dumps(asdict(Sample(cpu, thread, loop_seconds, flushed))))


# -- the collector ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Telemetry items by signal (named as the collector's own telemetry names them)."""

    spans: int = 0
    log_records: int = 0
    metric_points: int = 0

    def __add__(self, other: Counts) -> Counts:
        return self._combine(other, operator.add)

    def __sub__(self, other: Counts) -> Counts:
        return self._combine(other, operator.sub)

    def _combine(self, other: Counts, op: Callable[[int, int], int]) -> Counts:
        return Counts(*(op(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))


@dataclass(frozen=True)
class Collector:
    endpoint: str  # OTLP/gRPC, as OTEL_EXPORTER_OTLP_ENDPOINT
    metrics_url: str  # its own telemetry

    def accepted(self) -> Counts:
        text = httpx.get(self.metrics_url, timeout=5).text
        totals = dict.fromkeys((f.name for f in fields(Counts)), 0)
        for line in text.splitlines():
            for signal in totals:
                if line.startswith(f"otelcol_receiver_accepted_{signal}"):
                    totals[signal] += int(float(line.rsplit(" ", 1)[1]))
        return Counts(**totals)


def collector_config(grpc_port: int, health_port: int, telemetry_port: int) -> dict[str, Any]:
    """Every signal from the otlp receiver through batch to ``debug``: the cheapest real sink.
    (JSON is YAML: the collector reads this dumped as it is.)"""
    pipeline = {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}
    prometheus = {"host": "127.0.0.1", "port": telemetry_port}
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}}},
        "processors": {"batch": {}},
        "exporters": {"debug": {"verbosity": "basic"}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {
                "logs": {"level": "warn"},
                "metrics": {"readers": [{"pull": {"exporter": {"prometheus": prometheus}}}]},
            },
            "pipelines": {signal: pipeline for signal in ("traces", "metrics", "logs")},
        },
    }


@contextmanager
def collector(folder: Path, timeout: float = 60) -> Iterator[Collector]:
    """The project's collector binary on free ports, ready; stopped on the way out."""
    grpc_port, health_port, telemetry_port = free_ports(3)
    config = folder / "collector.yaml"
    config.write_text(json.dumps(collector_config(grpc_port, health_port, telemetry_port)))
    program = OTELCOL.path(StackSettings().cache_dir)
    log = folder / "collector.log"
    with log.open("wb") as output:
        popen = subprocess.Popen(
            [str(program), "--config", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    sink = Collector(f"http://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{telemetry_port}/metrics")
    try:
        ready = (f"http://127.0.0.1:{health_port}/", sink.metrics_url)
        deadline = time.monotonic() + timeout
        while not _answer(ready):
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield sink
    finally:
        popen.terminate()
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def _answer(urls: Iterable[str]) -> bool:
    try:
        return all(httpx.get(url, timeout=1).is_success for url in urls)
    except httpx.HTTPError:
        return False


# -- the runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    job: Job
    sample: Sample
    accepted: Counts

    @property
    def us_per_cycle(self) -> float:
        return self.sample.cpu_seconds / self.job.cycles * 1e6

    @property
    def bot_thread_us_per_cycle(self) -> float:
        return self.sample.bot_thread_seconds / self.job.cycles * 1e6

    @property
    def achieved_rate(self) -> float:
        return self.job.cycles / self.sample.loop_seconds

    @property
    def sent(self) -> Counts:
        """What the bot made, warm-up included (nothing leaves without an SDK)."""
        cycles = self.job.cycles + self.job.warm_up if MODES[self.job.mode] is not None else 0
        return Counts(spans=SPANS_PER_CYCLE * cycles, log_records=cycles)

    @property
    def lost(self) -> Counts:
        return self.sent - self.accepted


def worker_env(collector_endpoint: str, extra: dict[str, str]) -> dict[str, str]:
    """This environment without OTEL_* and TBMON_* (each mode's defaults apply), aimed at the
    benchmark's collector under one service name."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TBMON_"))}
    return {
        **inherited,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector_endpoint,
        "OTEL_SERVICE_NAME": "bench-bot",
        **extra,
    }


def run(sink: Collector, job: Job, extra_env: dict[str, str]) -> Run:
    """``job`` in a fresh worker process, with what the collector accepted meanwhile."""
    before = sink.accepted()
    code = f"from bench.instrumentation import worker; worker({json.dumps(asdict(job))!r})"
    with tempfile.TemporaryFile() as stderr:  # the bot's console log, and any traceback
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=worker_env(sink.endpoint, extra_env),
            cwd=CHECKOUT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=False,
        )
        if done.returncode != 0:
            stderr.seek(0)
            tail = stderr.read()[-3000:].decode(errors="replace")
            raise RuntimeError(f"{job} exited with {done.returncode}:\n{tail}")
    sample = Sample(**json.loads(done.stdout.splitlines()[-1]))
    if not sample.flushed:
        raise RuntimeError(f"{job}: the final flush timed out, so its CPU time means nothing")
    return Run(job, sample, sink.accepted() - before)


def whole_run_queues(plan: Plan) -> dict[str, str]:
    """Span and log queues that hold a whole CPU run, so that no mode drops any of it."""
    cycles = plan.cycles + plan.warm_up
    return {
        "OTEL_BSP_MAX_QUEUE_SIZE": str(SPANS_PER_CYCLE * cycles),
        "OTEL_BLRP_MAX_QUEUE_SIZE": str(cycles),
    }


def measure(plan: Plan) -> tuple[dict[str, list[Run]], list[Run]]:
    """The CPU runs by mode (repeats interleaved) and the rate runs."""
    with tempfile.TemporaryDirectory() as folder, collector(Path(folder)) as sink:
        cpu: dict[str, list[Run]] = {mode: [] for mode in MODES}
        queues = whole_run_queues(plan)
        for repeat in range(plan.repeats):
            for mode in MODES:
                print(f"cpu: {mode}, repeat {repeat + 1}/{plan.repeats}", file=sys.stderr)
                cpu[mode].append(run(sink, Job(mode, plan.cycles, plan.warm_up, None), queues))
        rates = []
        for rate in plan.rates:
            for mode in EXPORTING:
                print(f"rate: {mode}, {rate:,} cycles/s", file=sys.stderr)
                job = Job(mode, round(rate * plan.seconds), plan.warm_up, rate)
                rates.append(run(sink, job, {}))
        return cpu, rates


# -- the metric export interval -----------------------------------------------------------------

#: Metric export intervals compared, in ms (OTEL_METRIC_EXPORT_INTERVAL).
EXPORT_INTERVALS = ("5000", "2000", "1000")
EXPORT_RATE = 10  # order cycles a second: a bot trading steadily
EXPORT_SECONDS = 20


def measure_export_intervals(plan: Plan) -> dict[str, list[Run]]:
    """tbmon's set-up paced at EXPORT_RATE, by metric export interval (repeats interleaved)."""
    with tempfile.TemporaryDirectory() as folder, collector(Path(folder)) as sink:
        runs: dict[str, list[Run]] = {interval: [] for interval in EXPORT_INTERVALS}
        for repeat in range(plan.repeats):
            for interval in EXPORT_INTERVALS:
                print(f"export interval: {interval} ms, repeat {repeat + 1}", file=sys.stderr)
                job = Job("tbmon", EXPORT_RATE * EXPORT_SECONDS, plan.warm_up, EXPORT_RATE)
                runs[interval].append(run(sink, job, {"OTEL_METRIC_EXPORT_INTERVAL": interval}))
        return runs


def export_interval_table(runs: dict[str, list[Run]]) -> None:
    print(
        f"\n{EXPORT_RATE} order cycles a second for {EXPORT_SECONDS} s (tbmon's set-up), by "
        "metric export interval; the median run by CPU:\n"
    )
    print("| metric export interval | bot CPU (% of a core) | metric points exported a second |")
    print("| --- | --- | --- |")
    medians = {interval: _median(samples) for interval, samples in runs.items()}
    share = {i: r.sample.cpu_seconds / r.sample.loop_seconds for i, r in medians.items()}
    for interval, median in medians.items():
        points = median.accepted.metric_points / median.sample.loop_seconds
        print(f"| {int(interval) / 1000:g} s | {share[interval] * 100:.2f} % | {points:.0f} |")
    slow, fast = EXPORT_INTERVALS[0], EXPORT_INTERVALS[-1]
    exports = 1000 / int(fast) - 1000 / int(slow)
    per_export = (share[fast] - share[slow]) / exports * 1e3
    print(f"\nOne metric export: {per_export:.2f} ms of the bot's CPU ({fast} against {slow} ms).")


# -- a ccxt bot ---------------------------------------------------------------------------------

CCXT_MODES = ("none", "spans", "facts")
CCXT_SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
CALLS_PER_ITERATION = 5


def ccxt_iteration(exchange: Any, index: int) -> None:
    """One iteration of a plain ccxt bot: its market data, its balance, one order."""
    exchange.fetch_balance()
    exchange.fetch_tickers(CCXT_SYMBOLS)
    exchange.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    exchange.fetch_order_book("ETH/USDT", 5)
    exchange.create_order("SOL/USDT", "market", "buy" if index % 2 == 0 else "sell", 0.1)


@dataclass(frozen=True)
class CcxtJob:
    mode: str
    iterations: int
    warm_up: int
    url: str  # the local exchange


def ccxt_worker(job_json: str) -> None:
    """Runs one :class:`CcxtJob` in this fresh process and prints its :class:`Sample` as JSON."""
    from tbmon.instrumentation.ccxt import CcxtInstrumentor  # noqa: PLC0415 (ccxt modes only)
    from tbmon.standins.exchange import binance_client  # noqa: PLC0415

    job = CcxtJob(**json.loads(job_json))
    if job.mode != "none":
        MODES["tbmon"].apply()  # type: ignore[union-attr]
        CcxtInstrumentor().instrument(derive=job.mode == "facts")
    logging.basicConfig(level=logging.INFO)
    exchange = binance_client(job.url, timeout=30_000)
    exchange.load_markets()
    exporting = (trace.get_tracer_provider(), get_logger_provider())
    for index in range(job.warm_up):
        ccxt_iteration(exchange, index)
    flush(*exporting)
    cpu, thread, started = time.process_time(), time.thread_time(), time.monotonic()
    for index in range(job.warm_up, job.warm_up + job.iterations):
        ccxt_iteration(exchange, index)
    thread, loop_seconds = time.thread_time() - thread, time.monotonic() - started
    flushed = flush(*exporting)
    cpu = time.process_time() - cpu
    flush(get_meter_provider())
    print(json.dumps(asdict(Sample(cpu, thread, loop_seconds, flushed))))


@dataclass(frozen=True)
class CcxtRun:
    job: CcxtJob
    sample: Sample
    requests: int  # that the exchange received, load_markets and warm-up included

    def us_per(self, seconds: float) -> float:
        return seconds / self.job.iterations * 1e6


@contextmanager
def exchange_server(timeout: float = 60) -> Iterator[str]:
    """The local exchange in a process of its own (its CPU is not the bot's); its base URL."""
    (port,) = free_ports(1)
    code = f"from tbmon.standins.exchange import serve; serve('127.0.0.1', {port})"
    popen = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until_ready(popen, f"{url}/api/v3/ping", "the exchange test server", timeout)
        yield url
    finally:
        popen.terminate()
        popen.wait(10)


def run_ccxt(sink: Collector, job: CcxtJob, control: ExchangeServerClient) -> CcxtRun:
    control.reset()
    code = (
        f"from bench.instrumentation import ccxt_worker; ccxt_worker({json.dumps(asdict(job))!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=worker_env(sink.endpoint, {}),
        cwd=CHECKOUT,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{job} exited with {done.returncode}:\n{done.stderr[-3000:].decode()}")
    sample = Sample(**json.loads(done.stdout.splitlines()[-1]))
    if not sample.flushed:
        raise RuntimeError(f"{job}: the final flush timed out, so its CPU time means nothing")
    return CcxtRun(job, sample, len(control.requests()))


def measure_ccxt(plan: Plan) -> dict[str, list[CcxtRun]]:
    """The ccxt runs by mode, repeats interleaved."""
    iterations, warm_up = plan.cycles // 25, plan.warm_up // 25
    with (
        tempfile.TemporaryDirectory() as folder,
        collector(Path(folder)) as sink,
        exchange_server() as url,
    ):
        control = ExchangeServerClient(url)
        runs: dict[str, list[CcxtRun]] = {mode: [] for mode in CCXT_MODES}
        try:
            for repeat in range(plan.repeats):
                for mode in CCXT_MODES:
                    print(f"ccxt: {mode}, repeat {repeat + 1}/{plan.repeats}", file=sys.stderr)
                    job = CcxtJob(mode, iterations, warm_up, url)
                    runs[mode].append(run_ccxt(sink, job, control))
        finally:
            control.close()
        return runs


# -- the report ---------------------------------------------------------------------------------


def _median(runs: list[Run]) -> Run:
    """The run of median CPU per cycle (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r.us_per_cycle)[len(runs) // 2]


def _sent_accepted(sent: int, accepted: int) -> str:
    """``sent / accepted``, and the difference: lost, or more (the SDK's own warnings, logged
    through the same handler)."""
    if accepted < sent:
        return f"{sent:,} / {accepted:,} (**{sent - accepted:,} lost**)"
    if accepted > sent:
        return f"{sent:,} / {accepted:,} (+{accepted - sent:,} from the SDK's own warnings)"
    return f"{sent:,} / {accepted:,}"


def cpu_table(plan: Plan, runs: dict[str, list[Run]]) -> None:
    median = {mode: _median(mode_runs) for mode, mode_runs in runs.items()}
    floor, stock = median["none"].us_per_cycle, median["stock"].us_per_cycle
    print(
        f"### CPU per order cycle ({plan.repeats} fresh processes a mode x {plan.cycles:,} "
        f"cycles flat out after {plan.warm_up:,} warm-up cycles; the median run)\n"
    )
    print(
        "| mode | CPU per cycle | each run (µs) | in the bot's thread | in export threads and "
        "the final flush | minus none: the telemetry's | telemetry's / stock's "
        "| spans sent / accepted | log records sent / accepted | metric points accepted |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, mode_runs in runs.items():
        middle = median[mode]
        each = ", ".join(f"{r.us_per_cycle:.0f}" for r in mode_runs)
        row = (
            f"| {mode} | **{middle.us_per_cycle:.0f} µs** | {each} "
            f"| {middle.bot_thread_us_per_cycle:.0f} µs "
            f"| {middle.us_per_cycle - middle.bot_thread_us_per_cycle:.0f} µs "
        )
        if MODES[mode] is None:
            print(row + "| | | no SDK | no SDK | no SDK |")
            continue
        own = middle.us_per_cycle - floor
        sent = sum((r.sent for r in mode_runs), Counts())
        accepted = sum((r.accepted for r in mode_runs), Counts())
        print(
            row + f"| {own:.0f} µs | {own / (stock - floor):.2f} "
            f"| {_sent_accepted(sent.spans, accepted.spans)} "
            f"| {_sent_accepted(sent.log_records, accepted.log_records)} "
            f"| {accepted.metric_points:,} |"
        )
    tbmon = median["tbmon"].us_per_cycle
    ratio = (tbmon - floor) / (stock - floor)
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"\ntbmon's telemetry costs **{ratio:.2f}** of the stock distro's CPU per cycle "
        f"(target <= {TARGET_RATIO:g}: {verdict}); the whole cycle, console log and no-op API "
        f"calls included, {tbmon / stock:.2f}.\n"
    )


def rate_table(plan: Plan, runs: list[Run]) -> None:
    print(
        f"### Paced order cycles, {plan.seconds:g} s a rate, each mode's default queues "
        f"({SPANS_PER_CYCLE} spans a cycle; sent includes {plan.warm_up:,} warm-up cycles)\n"
    )
    print(
        "| mode | target cycles/s | achieved cycles/s | CPU per cycle | spans sent / accepted "
        "| log records sent / accepted |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(
            f"| {r.job.mode} | {r.job.rate:,.0f} | {r.achieved_rate:,.0f} "
            f"| {r.us_per_cycle:.0f} µs | {_sent_accepted(r.sent.spans, r.accepted.spans)} "
            f"| {_sent_accepted(r.sent.log_records, r.accepted.log_records)} |"
        )
    print()
    for mode in EXPORTING:
        print(f"- highest rate with zero lost spans, {mode}: **{_lossless_rate(runs, mode)}**")
    print(
        "\n(there and at every lower rate; where achieved falls short of target, the bot is "
        "CPU-bound and its losses come and go from run to run)"
    )


def _lossless_rate(runs: list[Run], mode: str) -> str:
    """The achieved rate of the fastest run of ``mode`` below which no run lost a span."""
    best = "none of the rates"
    for r in sorted((r for r in runs if r.job.mode == mode), key=lambda r: r.job.rate or 0):
        if r.lost.spans > 0:
            break
        best = f"{r.achieved_rate:,.0f} cycles/s"
    return best


def ccxt_table(plan: Plan, runs: dict[str, list[CcxtRun]]) -> None:
    def median(mode: str) -> CcxtRun:
        return sorted(runs[mode], key=lambda r: r.sample.cpu_seconds)[len(runs[mode]) // 2]

    first = runs["none"][0].job
    print(
        f"### A ccxt bot's iteration ({CALLS_PER_ITERATION} exchange calls; {plan.repeats} fresh "
        f"processes a mode x {first.iterations:,} iterations after {first.warm_up:,} warm-up "
        "ones; the median run)\n"
    )
    print(
        "| mode | CPU per iteration | each run (µs) | in the bot's thread | minus none "
        "| requests the exchange received per run |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    floor = median("none").us_per(median("none").sample.cpu_seconds)
    for mode in CCXT_MODES:
        middle = median(mode)
        cost = middle.us_per(middle.sample.cpu_seconds)
        each = ", ".join(f"{r.us_per(r.sample.cpu_seconds):.0f}" for r in runs[mode])
        requests = sorted({r.requests for r in runs[mode]})
        print(
            f"| {mode} | **{cost:.0f} µs** | {each} "
            f"| {middle.us_per(middle.sample.bot_thread_seconds):.0f} µs "
            f"| {cost - floor:.0f} µs | {', '.join(map(str, requests))} |"
        )
    spans, facts = (median(m).us_per(median(m).sample.cpu_seconds) for m in ("spans", "facts"))
    same = len({r.requests for mode_runs in runs.values() for r in mode_runs}) == 1
    print(
        f"\nThe trading facts add **{facts - spans:.0f} µs** per iteration "
        f"({(facts - spans) / CALLS_PER_ITERATION:.0f} µs a call) to the spans-only "
        f"instrumentation; requests to the exchange: "
        f"{'the same in every mode' if same else '**NOT the same in every mode**'}.\n"
    )


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instrumentation", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer cycles, rates and seconds")
    parser.add_argument(
        "--export-interval", action="store_true", help="only the metric export interval's cost"
    )
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    if arguments.export_interval:
        export_interval_table(measure_export_intervals(plan))
        return
    cpu, rates = measure(plan)
    ccxt_runs = measure_ccxt(plan)
    print(f"bot process: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    cpu_table(plan, cpu)
    rate_table(plan, rates)
    ccxt_table(plan, ccxt_runs)
    export_interval_table(measure_export_intervals(plan))


if __name__ == "__main__":
    main(sys.argv[1:])
