"""The collector's ingest stage: what its pre-queue transforms cost (issue 13).

Two collectors side by side, on the real ``tbmon/collector/config.yaml``: one as it is, one with
the ingest pipelines' ``transform/limits`` and ``transform/redact`` left out. Both bypass the
processors host (their ingest stage exports to their own ``otlp/processed``) and send traces to
a sink. Each gets the same pre-encoded SDK batches (512 ccxt-like spans with ten attributes,
one span in eight carrying an exchange API key header), alternately, at a fixed rate; their CPU
time (every thread) over the run gives microseconds of collector CPU a span.
``BENCH_INGEST_BASELINE=FILE`` adds a third collector, on that config (say the file as it was
before a change:
``git show main:otel-collector/src/tbmon/collector/config.yaml > /tmp/before.yaml``).

Run: .venv/bin/python -m bench ingest
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import psutil

from bench._process import cpu_seconds, until_ready
from bench.processors import sdk_batch, sink
from tbmon.ports import isolated_settings
from tbmon.processors import Signal
from tbmon.settings import StackSettings
from tbmon.stack.binaries import OTELCOL
from tbmon.stack.components import COLLECTOR_FEATURE_GATES
from tbmon.stack.resources import COLLECTOR_CONFIG
from tbmon.stack.supervisor import Supervisor, stop

BATCH = 512
REQUESTS_PER_SECOND = 6  # to each collector: 3,072 spans/s
SECONDS = 20
RUNS = 3


def without_transforms(config: str) -> str:
    return re.sub(r", transform/limits, transform/redact\]", "]", config)


@contextmanager
def collector(
    root: Path, config: str, trace_sink: int
) -> Iterator[tuple[StackSettings, psutil.Process]]:
    settings = isolated_settings(root)
    s = settings
    root.mkdir(parents=True)
    path = root / "config.yaml"
    path.write_text(config)
    env = {
        **Supervisor(settings).environment(),
        "TBMON_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{trace_sink}",
        "TBMON_PROCESSORS_ENDPOINT": f"{s.bind_host}:{s.processed_port}",
        "TBMON_COLLECTOR_LOG_LEVEL": "warn",
        "TBMON_COLLECTOR_STORAGE_DIR": str(root / "queue"),
    }
    argv = [
        str(OTELCOL.path(settings.cache_dir)),
        f"--config=file:{path}",
        f"--feature-gates={COLLECTOR_FEATURE_GATES}",
    ]
    with (root / "collector.log").open("ab") as log:
        popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        until_ready(popen, s.url(s.collector_health_port, "/"), f"collector ({root})")
        yield settings, psutil.Process(popen.pid)
    finally:
        stop(popen, grace=20)


def arms() -> dict[str, str]:
    """The configs compared: as configured, without the ingest transforms, and the baseline
    file when BENCH_INGEST_BASELINE names one."""
    config = (COLLECTOR_CONFIG).read_text()
    chosen = {"as configured": config, "without the ingest transforms": without_transforms(config)}
    if baseline := os.environ.get("BENCH_INGEST_BASELINE"):
        chosen[f"baseline ({Path(baseline).name})"] = Path(baseline).read_text()
    return chosen


def run_once(payload: bytes) -> dict[str, float]:
    configs = arms()
    with tempfile.TemporaryDirectory() as folder, sink() as trace_sink, ExitStack() as stack:
        running = {
            name: stack.enter_context(collector(Path(folder) / str(i), config, trace_sink.port))
            for i, (name, config) in enumerate(configs.items())
        }
        sends = {
            name: grpc.insecure_channel(
                f"{settings.bind_host}:{settings.otlp_grpc_port}",
                options=[("grpc.max_send_message_length", 2**26)],
            ).unary_unary(Signal.SPANS.method)
            for name, (settings, _) in running.items()
        }
        for send in sends.values():
            send(payload, timeout=10, wait_for_ready=True)  # warm up
        before = {name: cpu_seconds(process) for name, (_, process) in running.items()}
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < SECONDS:
            for send in sends.values():
                send(payload, timeout=10)
            count += 1
            pause = started + count / REQUESTS_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        time.sleep(2)  # the last batches leave
        spans = count * BATCH
        return {
            name: (cpu_seconds(process) - before[name]) / spans * 1e6
            for name, (_, process) in running.items()
        }


def main() -> None:
    payload = sdk_batch(BATCH)
    runs = [run_once(payload) for _ in range(RUNS)]
    print(
        f"{REQUESTS_PER_SECOND * BATCH:,} spans/s to each collector for {SECONDS} s, "
        f"{BATCH}-span SDK batches; collector CPU a span (run 1 / 2 / 3):\n"
    )
    print("| collector | CPU a span |")
    print("| --- | --- |")
    for name in runs[0]:
        print(f"| {name} | {' / '.join(f'{run[name]:.1f} us' for run in runs)} |")


if __name__ == "__main__":
    main()
