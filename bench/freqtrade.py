"""freqtrade's CPU and exchange requests per iteration: uninstrumented, and with tbmon.

Run: .venv/bin/python -m bench freqtrade   (short: python -m bench.freqtrade --seconds 60)
Targets: the freqtrade instrumentor costs at most 1 ms of CPU per iteration, and makes no
request to the exchange.

Three freqtrade dry runs side by side in one run, the example's config and strategy
(``examples/freqtrade``: three pairs, trades within a minute) with one iteration a second, each
against its own local exchange (``tbmon.standins.exchange_tool``, in this process: its CPU is
not the bot's), for the same wall time; twice, idle then trading (:data:`WORKLOADS`):

- ``plain``: ``freqtrade trade``, no OpenTelemetry at all;
- ``otel, no freqtrade hooks``: under ``opentelemetry-instrument`` with tbmon, the freqtrade
  instrumentor disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=freqtrade``): the ccxt, system
  and logging instrumentations and the export, one trace per ccxt call;
- ``tbmon``: the same with the freqtrade instrumentor: iteration spans, order spans, the state
  read after each iteration, the trading metrics;
- ``tbmon, spans every 5 s``: the same with ``OTEL_BSP_SCHEDULE_DELAY=5000``: an idle bot's
  cost is mostly the export of its one iteration span a second, one gRPC call each.

Telemetry goes to a real collector started here (otlp -> batch -> debug). Each bot runs in a
small launcher (:func:`worker`) that notes, per iteration, the CPU time of the iteration's
thread and of the whole process (export threads included) and the wall time; the figures are
taken over the iterations after a warm-up, per iteration: the thread's CPU inside
``FreqtradeBot.process``, the process's CPU, and the requests the exchange saw (REST calls and
stream subscriptions) between the first and last of them. The instrumentor's cost is ``tbmon``
minus ``otel, no freqtrade hooks``; a machine shared with other work makes each figure noisy
by some tenths of a millisecond, so the table gives the median over the iterations and the mean.
Each arm's process CPU is also broken down by thread (``/proc``, from the end of the warm-up to
the end: the bot's thread, the SDK's export threads, gRPC's native threads), which tells where an
arm's extra CPU goes.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import CHECKOUT
from bench.instrumentation import collector
from tbmon.standins.exchange_tool import ccxt_urls, running

EXAMPLE = CHECKOUT / "examples/freqtrade"
INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))
#: name -> (under opentelemetry-instrument, extra environment)
ARMS: dict[str, tuple[bool, dict[str, str]]] = {
    "plain": (False, {}),
    "otel, no freqtrade hooks": (True, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "freqtrade"}),
    "tbmon": (True, {}),
    # The same, its spans exported every 5 s (the SDK's default) instead of the distro's 1 s:
    # what an idle bot's iteration span costs in export (docs/performance.md).
    "tbmon, spans every 5 s": (True, {"OTEL_BSP_SCHEDULE_DELAY": "5000"}),
}


def worker(stats_file: str, arguments: list[str]) -> None:
    """freqtrade's own ``main``, each iteration noted: (wall time, thread CPU inside it, process
    CPU after it); the notes are written to ``stats_file`` at exit."""
    from freqtrade.freqtradebot import FreqtradeBot  # noqa: PLC0415 - the bot's process only
    from freqtrade.main import main as freqtrade_main  # noqa: PLC0415

    notes: list[tuple[float, float, float]] = []
    process = FreqtradeBot.process  # the instrumentor's wrapper, where it is on
    names = Path(f"{stats_file}.threads")

    def counted(bot: Any) -> None:
        started = time.thread_time()
        try:
            process(bot)
        finally:
            notes.append((time.time(), time.thread_time() - started, time.process_time()))
            if len(notes) % 20 == 1:  # the Python threads' names, for the launcher's breakdown
                found = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
                names.write_text(json.dumps(found))

    FreqtradeBot.process = counted
    atexit.register(lambda: Path(stats_file).write_text(json.dumps(notes)))
    freqtrade_main(arguments)


@dataclass
class Arm:
    name: str
    exchange: str
    stats: Path
    output: Path
    popen: subprocess.Popen[bytes] | None = None


def start(arm: Arm, folder: Path, sink: str, throttle: int, changes: dict[str, Any]) -> None:
    instrumented, extra = ARMS[arm.name]
    config = json.loads((EXAMPLE / "config.json").read_text()) | changes
    config["exchange"]["ccxt_config"]["urls"]["api"] = ccxt_urls(arm.exchange)
    config["internals"]["process_throttle_secs"] = throttle
    path = folder / f"{arm.stats.stem}.json"
    path.write_text(json.dumps(config))
    userdir = folder / f"{arm.stats.stem}-user"
    userdir.mkdir()
    command = [
        *((INSTRUMENT,) if instrumented else ()),
        *(sys.executable, "-m", "bench.freqtrade", "--worker", str(arm.stats), "--"),
        *("trade", "-c", str(path), "--userdir", str(userdir)),
        *("--strategy-path", str(EXAMPLE / "strategies"), "--strategy", "QuickTurns"),
        *("--db-url", f"sqlite:///{folder / arm.stats.stem}.sqlite"),
    ]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TBMON_"))},
        "OTEL_SERVICE_NAME": "bench-freqtrade",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
        **extra,
    }
    with arm.output.open("wb") as output:
        arm.popen = subprocess.Popen(
            command, env=env, cwd=CHECKOUT, stdout=output, stderr=subprocess.STDOUT
        )


def stop(arm: Arm) -> None:
    if arm.popen is not None and arm.popen.poll() is None:
        arm.popen.send_signal(signal.SIGINT)
        try:
            arm.popen.wait(60)
        except subprocess.TimeoutExpired:
            arm.popen.kill()
            arm.popen.wait()


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of ``pid`` so far, with its kernel name."""
    found: dict[int, tuple[str, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name, _, rest = stat.partition("(")[2].rpartition(")")
        fields = rest.split()
        found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def by_thread(
    arm: Arm, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds between two :func:`thread_cpu` readings by thread: Python threads by their
    name, the others (gRPC's core, OpenBLAS...) by their kernel name."""
    names_file = Path(f"{arm.stats}.threads")
    names = {int(k): v for k, v in json.loads(names_file.read_text()).items()}
    spent: dict[str, float] = {}
    for tid, (kernel_name, seconds) in after.items():
        name = names.get(tid) or f"{kernel_name} (native)"
        spent[name] = spent.get(name, 0.0) + seconds - before.get(tid, (kernel_name, 0.0))[1]
    return spent


@dataclass
class Figures:
    iterations: int
    thread_ms_median: float
    thread_ms_mean: float
    process_ms: float
    requests: Counter[str]
    #: Process CPU per iteration by thread over the measured window, ms.
    threads_ms: dict[str, float] | None = None


def figures(arm: Arm, warmup: float) -> Figures:
    notes = json.loads(arm.stats.read_text())
    first = notes[0][0] + warmup
    kept = [note for note in notes if note[0] >= first]
    if len(kept) < 3:
        raise RuntimeError(f"{arm.name}: {len(kept)} iterations after the warm-up ({arm.output})")
    thread_ms = [cpu * 1000 for _, cpu, _ in kept[1:]]
    process_ms = (kept[-1][2] - kept[0][2]) * 1000 / (len(kept) - 1)
    seen = httpx.get(f"{arm.exchange}/_control/requests", timeout=30).json()
    requests = Counter(
        f"{r['method']} {r['path']}" for r in seen if kept[0][0] < r["time"] <= kept[-1][0]
    )
    return Figures(
        iterations=len(kept) - 1,
        thread_ms_median=statistics.median(thread_ms),
        thread_ms_mean=statistics.fmean(thread_ms),
        process_ms=process_ms,
        requests=requests,
    )


#: The workloads, one after the other: freqtrade idle (``max_open_trades`` 0: every iteration
#: analyses and values, none trades, so the arms do the same work and make the same requests),
#: then trading (the example as it is: orders, fills and open positions, as they come).
WORKLOADS: dict[str, dict[str, Any]] = {"idle": {"max_open_trades": 0}, "trading": {}}


def run_workload(
    changes: dict[str, Any], options: argparse.Namespace, folder: Path
) -> dict[str, Figures]:
    """The three arms side by side for ``options.seconds``, each with its own exchange."""
    with ExitStack() as stack:
        sink = stack.enter_context(collector(folder))
        arms = [
            Arm(
                name,
                stack.enter_context(running()),
                folder / f"arm{index}.stats",
                folder / f"arm{index}.log",
            )
            for index, name in enumerate(ARMS)
        ]
        try:
            for arm in arms:
                start(arm, folder, sink.endpoint, options.throttle, changes)
            deadline = time.monotonic() + options.seconds  # the bots run side by side
            readings: dict[str, list[tuple[float, dict[int, tuple[str, float]]]]] = {}
            iterating: dict[str, float] = {}  # arm -> when its first iteration was seen
            while time.monotonic() < deadline:
                for arm in arms:
                    if arm.popen is None or arm.popen.poll() is not None:
                        raise RuntimeError(f"{arm.name} exited early: see {arm.output}")
                    # Each thread's CPU once the warm-up after its first iteration is over (as
                    # figures() counts), and at the end.
                    if arm.name not in iterating and Path(f"{arm.stats}.threads").exists():
                        iterating[arm.name] = time.monotonic()
                    taken = readings.setdefault(arm.name, [])
                    warm = time.monotonic() >= iterating.get(arm.name, deadline) + options.warmup
                    if not taken and warm:
                        taken.append((time.time(), thread_cpu(arm.popen.pid)))
                time.sleep(1)
            for arm in arms:
                if readings.get(arm.name) and arm.popen is not None:
                    readings[arm.name].append((time.time(), thread_cpu(arm.popen.pid)))
        finally:
            for arm in arms:
                stop(arm)
        results = {}
        for arm in arms:
            found = results[arm.name] = figures(arm, options.warmup)
            taken = readings.get(arm.name, [])
            if len(taken) >= 2:
                (start_at, before), (end_at, after) = taken[0], taken[-1]
                notes = json.loads(arm.stats.read_text())
                count = sum(1 for note in notes if start_at < note[0] <= end_at)
                found.threads_ms = {
                    name: seconds * 1000 / max(count, 1)
                    for name, seconds in by_thread(arm, before, after).items()
                }
        return results


def report(workload: str, results: dict[str, Figures]) -> None:
    print(f"\n### {workload}\n")
    print(
        "| arm | iterations | thread CPU per iteration, median / mean | process CPU per "
        "iteration | exchange requests per iteration |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, found in results.items():
        total = sum(found.requests.values())
        print(
            f"| {name} | {found.iterations} | {found.thread_ms_median:.2f} / "
            f"{found.thread_ms_mean:.2f} ms | {found.process_ms:.2f} ms | "
            f"{total / found.iterations:.3f} |"
        )
    base, hooked = results["otel, no freqtrade hooks"], results["tbmon"]
    print(
        f"\nthe freqtrade instrumentor: {hooked.thread_ms_median - base.thread_ms_median:+.2f} ms "
        f"median thread CPU, {hooked.process_ms - base.process_ms:+.2f} ms process CPU per "
        "iteration (target: at most 1 ms)"
    )
    print("\nprocess CPU per iteration by thread, ms (the busiest; gRPC's core is native):")
    for name, found in results.items():
        busiest = sorted((found.threads_ms or {}).items(), key=lambda item: -item[1])
        shown = ", ".join(f"{thread} {ms:.2f}" for thread, ms in busiest[:6] if ms >= 0.05)
        print(f"- {name}: {shown}")
    endpoints = sorted(set().union(*(found.requests for found in results.values())))
    print("\nrequests by endpoint, per iteration:" if endpoints else "\nno exchange requests")
    for endpoint in endpoints:
        row = ", ".join(
            f"{name} {found.requests[endpoint] / found.iterations:.3f}"
            for name, found in results.items()
        )
        print(f"- {endpoint}: {row}")


def in_process(changes: dict[str, Any], blocks: int, sink: str) -> dict[str, Any]:
    """One FreqtradeBot in this process, its iterations in blocks of ten, alternately without
    and with the instrumentor (spans exported over OTLP to ``sink``, metrics collected every
    block); then the instrumentor's own per-iteration work timed alone, and the exchange's
    request count across it."""
    import logging  # noqa: PLC0415 - the worker's imports: freqtrade only here

    from freqtrade.configuration import Configuration  # noqa: PLC0415
    from freqtrade.enums import RunMode, State  # noqa: PLC0415
    from freqtrade.freqtradebot import FreqtradeBot  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    from tbmon.instrumentation.freqtrade import FreqtradeInstrumentor  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-freqtrade-") as temp, running() as url:
        folder = Path(temp)
        config = json.loads((EXAMPLE / "config.json").read_text()) | changes
        config["exchange"]["ccxt_config"]["urls"]["api"] = ccxt_urls(url)
        (folder / "config.json").write_text(json.dumps(config))
        arguments = {
            "config": [str(folder / "config.json")],
            "user_data_dir": str(folder),
            "strategy": "QuickTurns",
            "strategy_path": str(EXAMPLE / "strategies"),
            "db_url": "sqlite://",
        }
        bot = FreqtradeBot(Configuration(arguments, RunMode.DRY_RUN).get_config())
        logging.disable(logging.INFO)  # the console is the same either way: left out
        bot.startup()
        bot.state = State.RUNNING
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=sink, insecure=True))
        )
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        instrumentor = FreqtradeInstrumentor()
        # Three kinds of block in turn: without, with, and without again (the two without
        # tell the noise floor of a difference).
        kinds = ("without", "with", "without again")
        thread: dict[str, list[float]] = {kind: [] for kind in kinds}
        process: dict[str, list[float]] = {kind: [] for kind in kinds}
        for block in range(blocks):
            kind = kinds[block % 3]
            on = kind == "with"
            if on:
                instrumentor.instrument(
                    tracer_provider=tracer_provider, meter_provider=meter_provider
                )
            started = time.process_time()
            for _ in range(10):
                before = time.thread_time()
                bot.process()
                thread[kind].append(time.thread_time() - before)
                time.sleep(0.2)
            if on:
                reader.get_metrics_data()  # a collection: every OTEL_METRIC_EXPORT_INTERVAL (2 s)
                tracer_provider.force_flush()
                instrumentor.uninstrument()
            process[kind].append((time.process_time() - started) / 10)
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        hooks = FreqtradeInstrumentor._hooks
        assert hooks is not None
        deadline = time.monotonic() + 90  # where the workload trades: with positions held
        while changes.get("max_open_trades") != 0 and time.monotonic() < deadline:
            if len(bot.wallets.get_all_balances()) > 1:
                break
            bot.process()
            time.sleep(0.5)
        requests = len(httpx.get(f"{url}/_control/requests", timeout=30).json())
        before = time.thread_time()
        for _ in range(1000):
            hooks.process(lambda: None, bot, (), {})  # the span and the state read, alone
        hook_us = (time.thread_time() - before) * 1000
        extra = len(httpx.get(f"{url}/_control/requests", timeout=30).json()) - requests
        before = time.thread_time()
        reader.get_metrics_data()
        collection_ms = (time.thread_time() - before) * 1000
        fill = {"type": "exit_fill", "pair": "BTC/USDT", "trade_id": 1, "order_rate": 64000.0}
        fill |= {"amount": 0.001, "is_final_exit": True, "profit_amount": 0.5}
        info = hooks.bot(bot)
        before = time.thread_time()
        for _ in range(1000):
            hooks.on_order_event(info, "exit_fill", fill)  # a fill: span, event, metrics
        fill_us = (time.thread_time() - before) * 1000
        open_trades = len(bot.wallets.get_all_balances()) - 1
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        bot.cleanup()
    return {
        "thread_ms": {kind: statistics.median(v) * 1000 for kind, v in thread.items()},
        "process_ms": {kind: statistics.median(v) * 1000 for kind, v in process.items()},
        "hook_us": hook_us,
        "extra_requests": extra,
        "collection_ms": collection_ms,
        "fill_us": fill_us,
        "held_currencies": open_trades,
    }


def report_in_process(workload: str, found: dict[str, Any]) -> None:
    thread, process = found["thread_ms"], found["process_ms"]
    print(
        f"\n### {workload}, in one process (blocks of 10 iterations in turn without, with and "
        "without again the instrumentor)\n"
    )
    print("| | without | with | difference | without again (noise floor) |")
    print("| --- | --- | --- | --- | --- |")
    for label, found_ms in (
        ("thread CPU per iteration (median)", thread),
        ("process CPU per iteration (median of blocks, export included)", process),
    ):
        off, on, again = found_ms["without"], found_ms["with"], found_ms["without again"]
        print(
            f"| {label} | {off:.2f} ms | {on:.2f} ms | {on - off:+.2f} ms | "
            f"{again:.2f} ms ({again - off:+.2f}) |"
        )
    print(
        f"\nthe instrumentor's own work per iteration, timed alone (iteration span, state read "
        f"with {found['held_currencies']} currencies held): {found['hook_us']:.1f} us of thread "
        f"CPU; exchange requests it made over 1000 of them: {found['extra_requests']}; one "
        f"metric collection (every 2 s): {found['collection_ms']:.2f} ms; one fill or closed "
        f"trade (its span, event and metrics): {found['fill_us']:.1f} us"
    )


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.freqtrade")
    parser.add_argument("--seconds", type=float, default=120.0, help="wall time of each bot")
    parser.add_argument("--warmup", type=float, default=30.0, help="iterations left out first")
    parser.add_argument("--throttle", type=int, default=1, help="process_throttle_secs")
    parser.add_argument("--blocks", type=int, default=24, help="in-process blocks of ten")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--in-process", help=argparse.SUPPRESS)
    options, rest = parser.parse_known_args(argv)
    if options.worker:
        worker(options.worker, [arg for arg in rest if arg != "--"])
        return
    if options.in_process:
        workload, sink = options.in_process.split(",")
        print(json.dumps(in_process(WORKLOADS[workload], options.blocks, sink)))
        return
    print(
        f"freqtrade dry runs, {options.seconds:g} s each, side by side, one iteration per "
        f"{options.throttle:g} s, the first {options.warmup:g} s left out"
    )
    for workload in WORKLOADS:
        with tempfile.TemporaryDirectory(prefix="bench-freqtrade-") as temp:
            with collector(Path(temp)) as sink:
                done = subprocess.run(
                    [
                        *(sys.executable, "-m", "bench.freqtrade", "--blocks"),
                        *(str(options.blocks), "--in-process", f"{workload},{sink.endpoint}"),
                    ],
                    cwd=CHECKOUT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
            report_in_process(workload, json.loads(done.stdout.splitlines()[-1]))
    for workload, changes in WORKLOADS.items():
        with tempfile.TemporaryDirectory(prefix="bench-freqtrade-") as temp:
            report(
                f"{workload}, three processes side by side",
                run_workload(changes, options, Path(temp)),
            )


if __name__ == "__main__":
    main(sys.argv[1:])
