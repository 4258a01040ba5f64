"""`tbmon doctor` and `tbmon backup` on a real local stack: how long an operator waits.

Doctor is measured on a healthy stack and with Grafana, Telegram and the health service hanging
(accepting connections, never answering), side by side in one run: its checks run concurrently,
so hanging dependencies cost one timeout, not one each. Backup is measured after a bot has
traded for a while (config, TSDB snapshot copied out, manifest with checksums).

Run: .venv/bin/python -m bench operations   (targets: doctor <= 2 s healthy, <= timeout + 2 s
with hanging dependencies; backup <= 10 s)
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tbmon.ports import free_ports, isolated_settings
from tbmon.stack.backup import Backup
from tbmon.stack.doctor import Doctor
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.supervisor import Supervisor

RUNS = 5
TIMEOUT = 2.0
TRADING_SECONDS = 30


def _timed(action: Callable[[], object]) -> list[float]:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def _row(what: str, timings: list[float], target: str) -> str:
    return f"| {what} | {statistics.median(timings):.2f} s | {max(timings):.2f} s | {target} |"


def main() -> None:
    (closed,) = free_ports(1)
    healthy = OperationsSettings.model_validate(
        {
            "grafana_url": f"http://127.0.0.1:{closed}",
            "health_url": f"http://127.0.0.1:{closed}",
            "timeout": TIMEOUT,
        }
    )
    with tempfile.TemporaryDirectory() as data, socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(64)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        stalled = OperationsSettings.model_validate(
            {
                "grafana_url": url,
                "health_url": url,
                "telegram_api_url": url,
                "telegram_bot_token": "1:benchmark-token-value-000000",
                "timeout": TIMEOUT,
            }
        )
        stack = isolated_settings(Path(data) / "stack")
        supervisor = Supervisor(stack)
        try:
            supervisor.up()
            subprocess.run(  # the demo bot trades, so that the backup has data to save
                [sys.executable, "-m", "tbmon", "demo", "--duration", str(TRADING_SECONDS)],
                env={
                    **os.environ,
                    "OTEL_SERVICE_NAME": "bench-bot",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": stack.url(stack.otlp_grpc_port),
                },
                capture_output=True,
                check=True,
            )
            doctor_ok = _timed(lambda: Doctor(stack, healthy).run())
            doctor_hanging = _timed(lambda: Doctor(stack, stalled).run())
            output = Path(data) / "backups"
            backups = _timed(lambda: Backup(stack, healthy).run(output))
            size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file()) / RUNS
        finally:
            supervisor.down()
    print("| measure | median | max | target |")
    print("| --- | --- | --- | --- |")
    print(_row("`tbmon doctor`, healthy stack", doctor_ok, "<= 2 s"))
    print(
        _row(
            f"`tbmon doctor`, Grafana, Telegram and health hanging (timeout {TIMEOUT:g} s)",
            doctor_hanging,
            f"<= {TIMEOUT + 2:g} s",
        )
    )
    print(_row(f"`tbmon backup` ({size / 2**20:.1f} MiB each)", backups, "<= 10 s"))


if __name__ == "__main__":
    main()
