"""Health service latency at a constant request rate, with every dependency answering and with one
that accepts connections and never answers, each row beside the machine's floor.

    python -m bench.health [--rate 500] [--duration 20] [--repeat 1]

Four separate processes: the health service (`tbmon health serve`), the load generator (vegeta,
constant rate, installed from the Go module proxy into <cache>/tools on first use), the stand-in
dependencies (`python -m http.server` answering every health path with 200) and the floor server
(bench/floor: a Go net/http server answering every path with a fixed 20-byte JSON, built with
`go build` into <cache>/tools on first use). The hanging dependency is a socket in this process
that accepts and never says a word. Checks run every second (five times the default) so their
work overlaps the measurement as much as it can.

On a small shared VM the tail of any HTTP server moves with the machine (scheduling, the
hypervisor stealing CPU), so each service row is preceded by a floor row with the same path,
rate and duration: "added p99" is what the service costs above what this machine costs anyway,
and "steal" is the share of the CPUs' time the hypervisor took during the floor and the service
row (Linux /proc/stat). `--repeat N` runs the whole measurement N times and prints one table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._process import cpu_seconds, until_ready
from tbmon.ports import free_ports
from tbmon.settings import StackSettings
from tbmon.stack.supervisor import stop
from tbmon.standins import silent_server

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
TOKEN = "bench-token-0123456789abcdef"
#: p99 targets of the issue, in milliseconds.
TARGETS_MS = {"/health/live": 5.0, "/health/detailed": 10.0}
#: Health paths the stand-in dependency serves (as files of a folder).
STAND_IN_PATHS = ("-/ready", "status", "health")
#: Jaeger's stand-in answers in the first, never answers in the second.
SCENARIOS = ("all answer", "jaeger hangs")
#: Go source of the floor server (stdlib only).
FLOOR_SOURCE = Path(__file__).with_name("floor")
WARM_UP_S = 2.0


@dataclass
class Latency:
    """One vegeta attack's report, in milliseconds."""

    success: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_report(cls, report: dict[str, object]) -> Latency:
        latencies = report["latencies"]
        assert isinstance(latencies, dict)
        return cls(
            success=float(str(report["success"])),
            p50_ms=latencies["50th"] / 1e6,
            p99_ms=latencies["99th"] / 1e6,
            max_ms=latencies["max"] / 1e6,
        )


@dataclass
class Window:
    """An attack with what the machine did meanwhile: steal share and the server's CPU."""

    latency: Latency
    steal_percent: float
    server_cpu_percent: float


@dataclass
class Result:
    run: int
    scenario: str
    path: str
    floor: Window
    service: Window

    @property
    def added_p99_ms(self) -> float:
        return self.service.latency.p99_ms - self.floor.latency.p99_ms

    @property
    def verdict(self) -> str:
        target = TARGETS_MS[self.path]
        service = self.service.latency
        if service.success < 1:
            return f"MISSED ({service.success:.2%} answered 200)"
        if service.p99_ms <= target:
            return "ok"
        if self.floor.latency.p99_ms > target:
            return "MISSED (machine floor above target)"
        return "MISSED"


def vegeta() -> Path:
    """The vegeta binary, installed with `go install` on first use."""
    folder = StackSettings().cache_dir / "tools" / f"vegeta-{VEGETA_VERSION}"
    program = folder / "vegeta"
    if not program.is_file():
        if shutil.which("go") is None:
            sys.exit("the load generator vegeta needs Go to install: install Go 1.24+ first")
        print(f"installing vegeta {VEGETA_VERSION} into {folder} ...", flush=True)
        subprocess.run(
            ["go", "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
            env={**os.environ, "GOBIN": str(folder), "GOTOOLCHAIN": "local"},
            check=True,
        )
    return program


@cache
def floor_program() -> Path:
    """The floor server, built with `go build` on first use; named by a hash of its source so an
    edit of bench/floor builds a new one instead of measuring a stale binary."""
    digest = hashlib.sha256()
    for source in sorted(path for path in FLOOR_SOURCE.iterdir() if path.is_file()):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    program = StackSettings().cache_dir / "tools" / f"healthfloor-{digest.hexdigest()[:16]}"
    if not program.is_file():
        if shutil.which("go") is None:
            sys.exit("the floor server needs Go to build: install Go 1.24+ first")
        print(f"building the floor server into {program} ...", flush=True)
        program.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-trimpath", "-o", str(program), "."],
            cwd=FLOOR_SOURCE,
            env={**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"},
            check=True,
        )
    return program


@contextmanager
def process(argv: list[str], env: dict[str, str], ready_url: str) -> Iterator[psutil.Process]:
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            until_ready(child, ready_url, argv[0], timeout=30)
            yield psutil.Process(child.pid)
        finally:
            stop(child)


@contextmanager
def stand_in_dependency() -> Iterator[str]:
    """A separate HTTP server answering 200 on every health path; yields its base URL."""
    with tempfile.TemporaryDirectory() as root:
        for path in STAND_IN_PATHS:
            (Path(root) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(root) / path).write_text("OK")
        port = free_ports(1)[0]
        argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root]
        base = f"http://127.0.0.1:{port}"
        with process([*argv, str(port)], dict(os.environ), f"{base}/health"):
            yield base


@contextmanager
def silent_dependency() -> Iterator[str]:
    """A port that accepts connections and never answers; yields its base URL."""
    with silent_server() as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def floor_server() -> Iterator[tuple[str, psutil.Process]]:
    """The floor server on a free port; yields its base URL and process."""
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    with process([str(floor_program()), str(port)], dict(os.environ), f"{base}/") as server:
        yield base, server


def health_env(dependency: str, jaeger: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEALTH_")},
        "HEALTH_TOKEN": TOKEN,
        "HEALTH_INTERVAL": "1",
        "HEALTH_TIMEOUT": "0.5",
        "HEALTH_CHECKS": "prometheus,alertmanager,jaeger,log_store,alert_bridge,cpu,memory,disk",
        "HEALTH_CRITICAL": "prometheus",
        "HEALTH_PROMETHEUS_URL": dependency,
        "HEALTH_ALERTMANAGER_URL": dependency,
        "HEALTH_JAEGER_URL": f"{jaeger}/status",
        "HEALTH_LOG_STORE_URL": f"{dependency}/health",
        "HEALTH_ALERT_BRIDGE_URL": dependency,
    }


def steal_ticks() -> int | None:
    """CPU time the hypervisor gave to others, all CPUs, in USER_HZ ticks (None off Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else None


def attack(base: str, path: str, rate: int, duration: float) -> dict[str, Any]:
    """vegeta at a constant ``rate`` for ``duration`` seconds; its JSON report."""
    targets = f"GET {base}{path}\nAuthorization: Bearer {TOKEN}\n"
    return vegeta_report(targets, [f"-rate={rate}/1s", f"-duration={duration:g}s", "-timeout=5s"])


def vegeta_report(targets: str, flags: Sequence[str]) -> dict[str, Any]:
    """``vegeta attack`` with ``flags`` on ``targets`` (vegeta's HTTP format); its JSON report."""
    program = str(vegeta())
    results = subprocess.run(
        [program, "attack", *flags], input=targets.encode(), capture_output=True, check=True
    ).stdout
    report = subprocess.run(
        [program, "report", "-type=json"], input=results, capture_output=True, check=True
    )
    parsed: dict[str, Any] = json.loads(report.stdout)
    return parsed


def window(base: str, path: str, server: psutil.Process, rate: int, duration: float) -> Window:
    """A warm-up (connections, caches), then the measured attack with the machine's steal and the
    server's CPU over exactly that attack."""
    attack(base, path, rate, WARM_UP_S)
    cpu_before = cpu_seconds(server)
    steal_before = steal_ticks()
    started = time.monotonic()
    report = attack(base, path, rate, duration)
    elapsed = time.monotonic() - started
    steal_after = steal_ticks()
    cpu = cpu_seconds(server) - cpu_before
    steal = math.nan
    if steal_before is not None and steal_after is not None:
        cpus_ticks = elapsed * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        steal = (steal_after - steal_before) / cpus_ticks * 100
    return Window(Latency.from_report(report), steal, cpu / elapsed * 100)


def run(rate: int, duration: float, repetition: int = 1) -> list[Result]:
    vegeta()
    floor_program()
    results = []
    with ExitStack() as stack:
        dependency = stack.enter_context(stand_in_dependency())
        silent = stack.enter_context(silent_dependency())
        floor_base, floor = stack.enter_context(floor_server())
        for scenario, jaeger in zip(SCENARIOS, (dependency, silent), strict=True):
            port = free_ports(1)[0]
            base = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "tbmon", "health", "serve", "--port", str(port)]
            env = health_env(dependency, jaeger)
            with process(argv, env, f"{base}/health/live") as server:
                jaeger_status = httpx.get(
                    f"{base}/health/component/jaeger",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ).json()
                print(
                    f"run {repetition}, {scenario}: jaeger is {jaeger_status['status']}",
                    flush=True,
                )
                for path in TARGETS_MS:
                    # The floor right before the service: both under the same machine conditions.
                    floor_window = window(floor_base, path, floor, rate, duration)
                    service_window = window(base, path, server, rate, duration)
                    results.append(Result(repetition, scenario, path, floor_window, service_window))
    return results


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} %"


def loads(averages: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in averages)


def print_table(results: list[Result]) -> None:
    print(
        "| scenario | endpoint | run | floor p50 / p99 ms | p50 ms | p99 ms | max ms | added p99 "
        "| steal, floor / service row | server CPU | target p99 ms | verdict |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    paths = list(TARGETS_MS)
    for r in sorted(
        results, key=lambda r: (SCENARIOS.index(r.scenario), paths.index(r.path), r.run)
    ):
        floor, service = r.floor.latency, r.service.latency
        steal = f"{percent(r.floor.steal_percent)} / {percent(r.service.steal_percent)}"
        print(
            f"| {r.scenario} | `{r.path}` | {r.run} | {floor.p50_ms:.2f} / {floor.p99_ms:.2f} | "
            f"{service.p50_ms:.2f} | {service.p99_ms:.2f} | {service.max_ms:.1f} | "
            f"{r.added_p99_ms:+.2f} | {steal} | "
            f"{percent(r.service.server_cpu_percent)} | <= {TARGETS_MS[r.path]:g} | {r.verdict} |"
        )


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.health", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument("--rate", type=int, default=500, help="requests per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=1, help="whole measurements, one table")
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    load_start = os.getloadavg()
    results = []
    for repetition in range(1, options.repeat + 1):
        results += run(options.rate, options.duration, repetition)
    load_end = os.getloadavg()
    print(
        f"\nhealth service at {options.rate} req/s, {options.duration:g} s per row after "
        f"{WARM_UP_S:g} s of warm-up, each row right after a floor row of the same shape "
        f"(vegeta {VEGETA_VERSION}, {os.cpu_count()} CPUs, {options.repeat} run(s))\n"
    )
    print_table(results)
    failures = [
        f"{r.scenario} {r.path} run {r.run} ({name}: {measured.latency.success:.2%})"
        for r in results
        for name, measured in (("floor", r.floor), ("service", r.service))
        if measured.latency.success < 1
    ]
    print(
        "\nrequests answered 200: "
        + ("all, in every row" if not failures else "not all in " + "; ".join(failures))
    )
    print(
        "floor: a Go net/http server answering a fixed 20-byte JSON (bench/floor); added p99: "
        "service p99 minus floor p99; steal: the hypervisor's share of the CPUs' time during "
        "the floor and the service row; server CPU: the health process, share of one core"
    )
    print(f"load average (1, 5, 15 min): {loads(load_start)} at start, {loads(load_end)} at end")


if __name__ == "__main__":
    main(sys.argv[1:])
