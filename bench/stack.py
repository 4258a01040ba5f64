"""Provisioning and start-up: `make install` with warm caches, `tbmon stack up` to all-ready,
and the whole stack's idle memory as `tbmon stack status` reports it.

Run: .venv/bin/python -m bench stack   (targets: install <= 30 s, up <= 15 s)
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import CHECKOUT
from tbmon.ports import isolated_settings
from tbmon.stack.resources import INSTALL_SCRIPT
from tbmon.stack.supervisor import Supervisor

RUNS = 5
IDLE_SECONDS = 30


def warm_install_seconds() -> list[float]:
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "--checkout", str(CHECKOUT)],
            check=True,
            capture_output=True,
        )
        timings.append(time.perf_counter() - started)
    return timings


def up_seconds_and_idle_memory() -> tuple[list[float], int, dict[str, int]]:
    timings = []
    memory: dict[str, int] = {}
    for run in range(RUNS):
        with tempfile.TemporaryDirectory() as data:
            supervisor = Supervisor(isolated_settings(Path(data)))
            try:
                started = time.perf_counter()
                supervisor.up()
                timings.append(time.perf_counter() - started)
                if run == RUNS - 1:
                    time.sleep(IDLE_SECONDS)  # let every component settle before measuring
                    memory = {s.name: s.memory_rss_bytes or 0 for s in supervisor.status()}
            finally:
                supervisor.down()
    return timings, sum(memory.values()), memory


def main() -> None:
    install = warm_install_seconds()
    up, total, memory = up_seconds_and_idle_memory()
    print("| measure | median | max | target |")
    print("| --- | --- | --- | --- |")
    print(
        f"| `make install`, warm caches | {statistics.median(install):.1f} s "
        f"| {max(install):.1f} s | <= 30 s |"
    )
    print(
        f"| `tbmon stack up` to all-ready ({RUNS} cold starts) | {statistics.median(up):.2f} s "
        f"| {max(up):.2f} s | <= 15 s |"
    )
    parts = ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in memory.items())
    print(
        f"| stack idle memory (RSS) after {IDLE_SECONDS} s | {total / 2**20:.0f} MiB "
        f"| | ({parts} MiB) |"
    )


if __name__ == "__main__":
    main()
