"""Health service latency at a constant request rate, with every dependency answering and with one
that accepts connections and never answers.

    python -m bench.health [--rate 500] [--duration 20]

Three separate processes: the health service (`tbmon health serve`), the load generator (vegeta,
constant rate, installed from the Go module proxy into <cache>/tools on first use) and the
stand-in dependencies (`python -m http.server` answering every health path with 200). The
hanging dependency is a socket in this process that accepts and never says a word. Checks run
every second (five times the default) so their work overlaps the measurement as much as it can.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tbmon.settings import StackSettings
from tbmon.stack.ports import free_ports
from tbmon.stack.supervisor import stop
from tbmon.standin import silent_server

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
TOKEN = "bench-token-0123456789abcdef"
#: p99 targets of the issue, in milliseconds.
TARGETS_MS = {"/health/live": 5.0, "/health/detailed": 10.0}
#: Health paths the stand-in dependency serves (as files of a folder).
STAND_IN_PATHS = ("-/ready", "status", "health")


@dataclass
class Result:
    scenario: str
    path: str
    requests: int
    success: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_percent: float

    @property
    def verdict(self) -> str:
        return "ok" if self.p99_ms <= TARGETS_MS[self.path] and self.success == 1 else "MISSED"


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


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer within {timeout:g} s")


@contextmanager
def process(argv: list[str], env: dict[str, str], ready_url: str) -> Iterator[psutil.Process]:
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(ready_url, child)
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


def attack(base: str, path: str, rate: int, duration: float) -> dict[str, object]:
    """vegeta at a constant ``rate`` for ``duration`` seconds; its JSON report."""
    targets = f"GET {base}{path}\nAuthorization: Bearer {TOKEN}\n"
    program = str(vegeta())
    rate_flags = [f"-rate={rate}/1s", f"-duration={duration:g}s", "-timeout=5s"]
    results = subprocess.run(
        [program, "attack", *rate_flags],
        input=targets.encode(),
        capture_output=True,
        check=True,
    ).stdout
    report = subprocess.run(
        [program, "report", "-type=json"], input=results, capture_output=True, check=True
    )
    parsed: dict[str, object] = json.loads(report.stdout)
    return parsed


def measure(
    scenario: str, base: str, server: psutil.Process, rate: int, duration: float
) -> list[Result]:
    results = []
    for path in TARGETS_MS:
        attack(base, path, rate, 2)  # warm-up: connections, caches
        before = server.cpu_times()
        started = time.monotonic()
        report = attack(base, path, rate, duration)
        elapsed = time.monotonic() - started
        after = server.cpu_times()
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
        latencies = report["latencies"]
        assert isinstance(latencies, dict)
        results.append(
            Result(
                scenario=scenario,
                path=path,
                requests=int(str(report["requests"])),
                success=float(str(report["success"])),
                p50_ms=latencies["50th"] / 1e6,
                p99_ms=latencies["99th"] / 1e6,
                max_ms=latencies["max"] / 1e6,
                server_cpu_percent=cpu,
            )
        )
    return results


def run(rate: int, duration: float) -> list[Result]:
    vegeta()
    results = []
    with ExitStack() as stack:
        dependency = stack.enter_context(stand_in_dependency())
        silent = stack.enter_context(silent_dependency())
        for scenario, jaeger in (("all answer", dependency), ("jaeger hangs", silent)):
            port = free_ports(1)[0]
            base = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "tbmon", "health", "serve", "--port", str(port)]
            env = health_env(dependency, jaeger)
            with process(argv, env, f"{base}/health/live") as server:
                jaeger_status = httpx.get(
                    f"{base}/health/component/jaeger",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ).json()
                print(f"{scenario}: jaeger is {jaeger_status['status']}", flush=True)
                results += measure(scenario, base, server, rate, duration)
    return results


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.health", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument("--rate", type=int, default=500, help="requests per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds per measurement")
    options = parser.parse_args(argv)
    results = run(options.rate, options.duration)
    print(
        f"\nhealth service at {options.rate} req/s, {options.duration:g} s per row "
        f"(vegeta {VEGETA_VERSION}, {os.cpu_count()} CPUs)\n"
    )
    print("| scenario | endpoint | requests | p50 ms | p99 ms | max ms | target p99 | server CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.scenario} | `{r.path}` | {r.requests} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.max_ms:.1f} | <= {TARGETS_MS[r.path]:g} ({r.verdict}) | "
            f"{r.server_cpu_percent:.0f} % |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
