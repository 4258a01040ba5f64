"""The local stack, end to end: real collector, Prometheus, Alertmanager, Jaeger and log store."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from processors_support import HostClient
from support import Backends, otlp_sdk, wait_until

from tbmon.ports import isolated_settings
from tbmon.processors import Signal, otlp
from tbmon.processors.testing import metrics_batch
from tbmon.processors.trading_analytics import MARKS_FILE, PORTFOLIO_METRIC
from tbmon.settings import StackSettings
from tbmon.stack import binaries
from tbmon.stack.binaries import BinaryMissingError
from tbmon.stack.components import COLLECTOR_FEATURE_GATES, COMPONENTS
from tbmon.stack.resources import COLLECTOR_CONFIG
from tbmon.stack.supervisor import StackError, Supervisor

pytestmark = pytest.mark.stack


def test_metrics_traces_and_logs_arrive_in_their_backends(backends: Backends) -> None:
    service = f"probe-{uuid.uuid4().hex[:8]}"
    with otlp_sdk(backends.otlp_grpc, service) as sdk:
        tracer = sdk.tracer_provider.get_tracer("probe")
        logger = logging.getLogger(service)
        logger.propagate = False
        logger.addHandler(LoggingHandler(logger_provider=sdk.logger_provider))
        logger.setLevel(logging.INFO)
        sdk.meter_provider.get_meter("probe").create_gauge("trading_portfolio_value_usd").set(
            12345.5
        )
        with tracer.start_as_current_span("order") as root:
            for step in ("signal", "risk_check", "place_order"):
                with tracer.start_as_current_span(step):
                    pass
            logger.info("order placed")
            trace_id = format(root.get_span_context().trace_id, "032x")

    samples = wait_until(
        lambda: backends.prometheus(f'trading_portfolio_value_usd{{job="{service}"}}'),
        "the gauge in Prometheus",
    )
    assert float(samples[0]["value"][1]) == 12345.5

    spans = wait_until(lambda: backends.jaeger_trace(trace_id), "the trace in Jaeger")
    assert sorted(span["operationName"] for span in spans) == [
        "order",
        "place_order",
        "risk_check",
        "signal",
    ]

    records = wait_until(
        lambda: backends.logs(f'service.name:="{service}" "order placed"'),
        "the log record in the log store",
    )
    assert records[0]["trace_id"] == trace_id


def test_spans_sent_while_jaeger_is_down_are_delivered_after_it_returns(
    stack: Supervisor, backends: Backends
) -> None:
    retries_before = _jaeger_export_retries(stack)
    stack.down(["jaeger"])
    try:
        with otlp_sdk(backends.otlp_grpc, "outage-probe") as sdk:
            tracer = sdk.tracer_provider.get_tracer("probe")
            trace_ids = []
            for index in range(20):
                with tracer.start_as_current_span(f"order-{index}") as span:
                    with tracer.start_as_current_span("place_order"):
                        pass
                    trace_ids.append(format(span.get_span_context().trace_id, "032x"))
        # Jaeger comes back only once the collector has tried it and failed: the spans wait in
        # the persistent queue and are retried, not merely late to an exporter that finds it up.
        wait_until(
            lambda: _jaeger_export_retries(stack) > retries_before,
            "the collector retrying its export to the stopped Jaeger",
        )
        assert not _answers(backends.settings.url(backends.settings.jaeger_query_port, "/"))
    finally:
        stack.up(["jaeger"])
    for trace_id in trace_ids:
        spans = wait_until(partial(backends.jaeger_trace, trace_id), f"trace {trace_id}")
        assert len(spans) == 2


def _jaeger_export_retries(stack: Supervisor) -> int:
    """Failed export attempts towards Jaeger that the collector will retry, from its own log.

    Its telemetry does not count these: ``send_failed`` moves only when a request is given up,
    which with retries that never give up (``max_elapsed_time: 0``) does not happen.
    """
    collector = next(c for c in COMPONENTS if c.name == "collector")
    log = stack.layout(collector).log.read_text(errors="replace")
    return sum(
        1
        for line in log.splitlines()
        if "Will retry the request" in line and '"otlp_grpc/jaeger"' in line
    )


def test_up_twice_keeps_the_same_processes(stack: Supervisor) -> None:
    before = {s.name: s.pid for s in stack.status()}
    after = {s.name: s.pid for s in stack.up()}
    assert before == after
    assert all(s.state == "ready" for s in stack.status())


def test_down_leaves_no_process_and_up_after_stale_pid_files_works(tmp_path: Path) -> None:
    supervisor = Supervisor(isolated_settings(tmp_path))
    try:
        statuses = supervisor.up()
        pids = [s.pid for s in statuses]
        assert all(pids)
        # A crash leaves a pid file behind; the pid may even be reused by a stranger.
        collector = next(c for c in COMPONENTS if c.name == "collector")
        pid_file = supervisor.layout(collector).pid
        collector_pid = next(s.pid for s in statuses if s.name == "collector")
        assert collector_pid is not None
        psutil.Process(collector_pid).kill()
        psutil.Process(collector_pid).wait(5)
        pid_file.write_text(json.dumps({"pid": os.getpid(), "started_after_boot": 1.0}))
        assert next(s for s in supervisor.status() if s.name == "collector").state == "dead"
        assert next(s for s in supervisor.up() if s.name == "collector").state == "ready"
        pids = [s.pid for s in supervisor.status()]
    finally:
        stopped = supervisor.down()
    assert len(stopped) == len(COMPONENTS)
    assert not [pid for pid in pids if pid and psutil.pid_exists(pid)]
    assert all(s.state == "stopped" for s in supervisor.status())


def test_the_processors_host_keeps_its_marks_under_the_stacks_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = isolated_settings(tmp_path)
    marks = settings.data_dir / "processors" / "state" / MARKS_FILE
    monkeypatch.delenv("PROCESSORS_ANALYTICS_STATE_DIR", raising=False)  # the stack's default
    monkeypatch.setenv("PROCESSORS_DERIVE_INTERVAL_SECONDS", "0.2")
    portfolio = otlp.Metric(name=PORTFOLIO_METRIC)
    portfolio.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=100.0)
    request = metrics_batch(portfolio, resource={"service.name": "stack-bot"}).raw
    supervisor = Supervisor(settings)
    try:
        supervisor.up(["processors"])
        host = HostClient(settings.processors_port, 0)
        with contextlib.suppress(grpc.RpcError):  # its next hop, the collector, is not running
            host.export(Signal.METRICS, request)
        wait_until(marks.exists, f"the processors host's marks in {marks}", timeout=30)
    finally:
        supervisor.down()
    assert json.loads(marks.read_text())["marks"][0]["peak"] == 100.0


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.prometheus_port))
        squatter.listen()
        supervisor = Supervisor(settings)
        try:
            with pytest.raises(StackError, match=rf"port {settings.prometheus_port}.*in use"):
                supervisor.up(["prometheus"])
        finally:
            supervisor.down()


def test_a_config_the_component_rejects_shows_its_own_message(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path).model_copy(
        update={"prometheus_retention_time": "not-a-duration"}
    )
    supervisor = Supervisor(settings)
    try:
        with pytest.raises(StackError) as failure:
            supervisor.up(["prometheus"])
    finally:
        supervisor.down()
    assert "prometheus exited before it was ready" in str(failure.value)
    assert "not-a-duration" in str(failure.value)


def test_missing_binaries_say_to_run_the_install(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "data").model_copy(
        update={"cache_dir": tmp_path / "empty-cache"}
    )
    with pytest.raises(
        BinaryMissingError, match=r"run `tbmon stack install` \(in a checkout: `make install`\)"
    ):
        Supervisor(settings).up(["collector"])


def test_cli_status_json_and_unknown_names(stack: Supervisor) -> None:
    env = {**os.environ, **stack.settings.environment()}
    status = subprocess.run(
        [sys.executable, "-m", "tbmon", "stack", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(status.stdout)
    assert [c["name"] for c in document["components"]] == [c.name for c in COMPONENTS]
    assert all(c["state"] == "ready" and c["pid"] for c in document["components"])
    assert document["memory_rss_bytes"] > 0
    collector = next(c for c in document["components"] if c["name"] == "collector")
    assert collector["urls"]["metrics"].endswith(f":{stack.settings.metrics_port}/metrics")

    unknown = subprocess.run(
        [sys.executable, "-m", "tbmon", "stack", "logs", "grafana"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2
    assert "valid names: logs, jaeger, processors, collector" in " ".join(unknown.stderr.split())


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TBMON_BIND_HOST", "0.0.0.0", "is not a loopback address"),
        ("TBMON_PROMETHEUS_PORT", "ninety", "valid integer"),
    ],
)
def test_a_bad_stack_setting_is_one_line_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tbmon", "stack", "up"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {variable}: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_collector_validates_its_own_config(tmp_path: Path) -> None:
    program = binaries.OTELCOL.path(StackSettings().cache_dir)
    config = COLLECTOR_CONFIG
    env = {**os.environ, "TBMON_COLLECTOR_STORAGE_DIR": str(tmp_path)}
    result = subprocess.run(
        [
            str(program),
            "validate",
            f"--config=file:{config}",
            f"--feature-gates={COLLECTOR_FEATURE_GATES}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_rendered_prometheus_config_passes_promtool(stack: Supervisor) -> None:
    prometheus = next(c for c in COMPONENTS if c.name == "prometheus")
    rendered = stack.layout(prometheus).data / "prometheus.yml"
    promtool = binaries.PROMTOOL.path(stack.settings.cache_dir)
    result = subprocess.run(
        [str(promtool), "check", "config", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = rendered.read_text()
    assert f"127.0.0.1:{stack.settings.metrics_port}" in text
    assert "cadvisor" not in text  # Compose-only targets are left out locally


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_every_component_listens_on_loopback_only(stack: Supervisor) -> None:
    listening = {
        status.name: [
            f"{c.laddr.ip}:{c.laddr.port}"
            for c in psutil.Process(status.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        for status in stack.status()
        if status.pid
    }
    assert all(listening.values()), listening
    # gRPC listens on a dual-stack socket: 127.0.0.1 shows as the IPv4-mapped ::ffff:127.0.0.1.
    loopback = ("127.0.0.1:", "::ffff:127.0.0.1:")
    exposed = {
        name: addrs
        for name, addrs in listening.items()
        if not all(addr.startswith(loopback) for addr in addrs)
    }
    assert not exposed
