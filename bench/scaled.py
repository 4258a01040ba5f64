"""The scaled topology's throughput and per-tier cost: one gateway against two, in one run.

Both arms share the backends (Jaeger's three roles, VictoriaLogs' insert, select and two
storage nodes) and the two agents; the first sends through gateway-1 and processors-1 only
(``gateway_replicas=1``), the second spreads over both pairs. The fleet
(tbmon/stack/fleet.py) offers
a fixed rate of requests, each of 25 whole traces of 4 spans, one log record per span and
one metric point, for STEP_SECONDS, built before the clock starts. A step is *kept up with at zero
loss* when every span reached the trace store and every log record the log store, and the
backlog drained within DRAIN_LIMIT seconds of the fleet stopping. Each process's CPU time over
the step, summed by tier, is reported per thousand spans (with the log records and points that
came with them). Two cores cannot show two gateways going faster than one: the per-instance cost
is the figure to project from (docs/sizing.md).

Run: .venv/bin/python -m bench scaled
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench._process import cpu_seconds
from tbmon.ports import isolated_settings
from tbmon.stack.fleet import Fleet
from tbmon.stack.scaled import SCALED_COMPONENTS, ScaledBase, ScaledSettings, address, port
from tbmon.stack.supervisor import Supervisor

#: Offered spans per second, step by step (requests of 100 spans, spread over both agents).
RATES = (4_000, 8_000, 16_000, 24_000)
STEP_SECONDS = 20.0
DRAIN_LIMIT = 10.0
TRACES_PER_REQUEST = 25
SPANS_PER_TRACE = 4
SPANS_PER_REQUEST = TRACES_PER_REQUEST * SPANS_PER_TRACE

BACKENDS = [
    "logs-storage-1",
    "logs-storage-2",
    "logs-insert",
    "logs-select",
    "traces-store",
    "traces-collector",
    "traces-query",
]
AGENTS = ["agent-1", "agent-2"]
TIERS = {
    "agents": ("agent-",),
    "gateways": ("gateway-",),
    "processors": ("processors-",),
    "traces": ("traces-",),
    "logs": ("logs-",),
}


@dataclass
class Step:
    replicas: int
    offered: int
    spans: int
    logs: int
    points: int
    seconds: float
    drained_after: float | None
    cpu: dict[str, float]

    @property
    def achieved(self) -> float:
        return self.spans / self.seconds

    @property
    def kept_up(self) -> bool:
        """The offered rate went through (the fleet itself kept pace) and drained in time."""
        drained = self.drained_after is not None and self.drained_after <= DRAIN_LIMIT
        return drained and self.achieved >= 0.95 * self.offered


def _stored_spans(settings: ScaledBase) -> int:
    text = httpx.get(
        settings.url(port(settings, "traces_store_telemetry_port"), "/metrics"), timeout=10
    ).text
    match = re.search(
        r'^otelcol_exporter_sent_spans_total\{exporter="jaeger_storage_exporter"[^}]*\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return int(float(match.group(1))) if match else 0


def _stored_logs(settings: ScaledBase, run: str) -> int:
    response = httpx.post(
        settings.url(port(settings, "logs_select_port"), "/select/logsql/query"),
        data={"query": f'"service.name":~"^{run}-" | stats count() as n'},
        timeout=30,
    )
    response.raise_for_status()
    return int(response.json()["n"]) if response.text.strip() else 0


def _processes(supervisor: Supervisor) -> dict[str, psutil.Process]:
    found = {}
    for status in supervisor.status():
        if status.pid is not None:
            found[status.name] = psutil.Process(status.pid)
    return found


def _step(supervisor: Supervisor, replicas: int, offered: int) -> Step:
    settings = supervisor.settings
    assert isinstance(settings, ScaledBase)
    run = f"bench-{uuid.uuid4().hex[:6]}"
    agents = [address(settings, f"agent_{n}_otlp_grpc_port") for n in (1, 2)]
    rate = offered / SPANS_PER_REQUEST / len(agents)
    fleet = Fleet(
        agents, run=run, bots=8, rate=rate, traces=TRACES_PER_REQUEST, spans=SPANS_PER_TRACE
    )
    processes = _processes(supervisor)
    stored_before = _stored_spans(settings)
    prebuild = int(rate * STEP_SECONDS) + 1
    fleet_cpu = psutil.Process()
    before = {name: cpu_seconds(p) for name, p in processes.items()}
    before["fleet"] = cpu_seconds(fleet_cpu)
    fleet.start(duration=STEP_SECONDS, prebuild=prebuild)
    started = time.monotonic()
    sent = fleet.wait()
    seconds = time.monotonic() - started
    stopped = time.monotonic()
    drained: float | None = None
    while time.monotonic() - stopped < 60:
        if (
            _stored_spans(settings) - stored_before >= sent.spans
            and _stored_logs(settings, run) >= sent.logs
        ):
            drained = time.monotonic() - stopped
            break
        time.sleep(0.5)
    cpu: dict[str, float] = {}
    for name, process in processes.items():
        tier = next((t for t, prefixes in TIERS.items() if name.startswith(prefixes)), None)
        if tier is not None:
            cpu[tier] = cpu.get(tier, 0.0) + cpu_seconds(process) - before[name]
    cpu["fleet (load generator)"] = cpu_seconds(fleet_cpu) - before["fleet"]
    return Step(replicas, offered, sent.spans, sent.logs, sent.points, seconds, drained, cpu)


IDLE_SECONDS = 10.0


def _tier_cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    cpu: dict[str, float] = {}
    for name, process in processes.items():
        tier = next((t for t, prefixes in TIERS.items() if name.startswith(prefixes)), None)
        if tier is not None:
            cpu[tier] = cpu.get(tier, 0.0) + cpu_seconds(process)
    return cpu


def _idle(supervisor: Supervisor) -> dict[str, float]:
    """Each tier's CPU with no load (per second): host metrics, telemetry, timers."""
    processes = _processes(supervisor)
    before = _tier_cpu(processes)
    time.sleep(IDLE_SECONDS)
    after = _tier_cpu(processes)
    return {tier: (after[tier] - before[tier]) / IDLE_SECONDS for tier in after}


def _arm(supervisor: Supervisor, replicas: int) -> list[Step]:
    idle = _idle(supervisor)
    costs = ", ".join(f"{tier} {value * 1000:.0f} ms/s" for tier, value in idle.items())
    print(f"| {replicas} | 0 (idle {IDLE_SECONDS:g} s) | | | | | | {costs} |", flush=True)
    steps = []
    for offered in RATES:
        step = _step(supervisor, replicas, offered)
        steps.append(step)
        print(_row(step), flush=True)
        if not step.kept_up:
            break
        time.sleep(5)  # let queues settle between steps
    return steps


def _row(step: Step) -> str:
    per_k = {tier: 1000 * cpu / max(step.spans, 1) for tier, cpu in step.cpu.items()}
    costs = ", ".join(f"{tier} {value * 1000:.0f} ms" for tier, value in per_k.items())
    drained = f"{step.drained_after:.1f} s" if step.drained_after is not None else "> 60 s"
    return (
        f"| {step.replicas} | {step.offered:,} | {step.achieved:,.0f} "
        f"| {step.logs / step.seconds:,.0f} | {step.points / step.seconds:,.0f} | {drained} "
        f"| {'yes' if step.kept_up else 'no'} | {costs} |"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        base = isolated_settings(Path(data), ScaledSettings)
        print(
            "| gateways | offered spans/s | spans/s | log records/s | metric points/s "
            "| drained after stop | kept up, zero loss | CPU per 1,000 spans by tier |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        backends = Supervisor(base, SCALED_COMPONENTS)
        try:
            backends.up(BACKENDS)
            for replicas in (1, 2):
                settings = base.model_copy(update={"gateway_replicas": replicas})
                supervisor = Supervisor(settings, SCALED_COMPONENTS)
                pipeline = [
                    *(f"processors-{n}" for n in range(1, replicas + 1)),
                    *(f"gateway-{n}" for n in range(1, replicas + 1)),
                    *AGENTS,
                ]
                try:
                    supervisor.up([*BACKENDS, *pipeline])
                    _arm(supervisor, replicas)
                finally:
                    supervisor.down(pipeline)
        finally:
            backends.down()


if __name__ == "__main__":
    main()
