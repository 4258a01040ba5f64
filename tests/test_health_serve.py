"""`tbmon health serve` as a process: against a real PostgreSQL, a real processors host and alert
bridge, against dependencies that hang, and with bad configuration."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from bridge_support import bridge_rig
from processors_support import otlp_sink, start_host, stop_host
from support import otlp_sdk, wait_until

from tbmon.health import Outcome, Status
from tbmon.health.collector import CollectorCheck
from tbmon.ports import free_ports
from tbmon.settings import StackSettings
from tbmon.stack.binaries import OTELCOL
from tbmon.stack.supervisor import stop
from tbmon.standins import silent_server

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "pg-Secret-7d1e"


def _health_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without any HEALTH_* or seed variable of the developer's, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HEALTH_") and key not in ("DATABASE_URL", "EXCHANGE_API_URL")
    }
    return {**env, **extra}


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tbmon", "health", "serve", *args],
        env=_health_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def serving(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`tbmon health serve` on a free port; yields its base URL; stopped even on failure."""
    with service(env, tmp_path) as (base, _, _):
        yield base


@contextmanager
def service(
    env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """:func:`serving`, yielding the base URL, the service's process and its log."""
    (port,) = free_ports(1)
    log = tmp_path / f"health-{port}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tbmon", "health", "serve", "--port", str(port)],
            env=_health_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and httpx.get(f"{base}/health/live").status_code == 200,
            f"the health service to start (log: {log.read_text()[-2000:]})",
            timeout=30,
        )
        yield base, process, log
    finally:
        stop(process)
        assert PASSWORD not in log.read_text()


def detailed(base: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{base}/health/detailed").json()
    return {c["name"]: c for c in answer["components"]}


def component_when(
    base: str,
    name: str,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 15,
) -> dict[str, Any]:
    """The component's answer once ``condition`` holds for it."""

    def probe() -> dict[str, Any] | None:
        found = detailed(base)[name]
        return found if condition(found) else None

    return wait_until(probe, what, timeout=timeout)


def check_process(service: subprocess.Popen[bytes]) -> psutil.Process:
    """The service's one child: the process its checks run in."""
    (child,) = psutil.Process(service.pid).children()
    return child


def connected_to(process: psutil.Process, port: int) -> bool:
    return any(c.raddr and c.raddr.port == port for c in process.net_connections("tcp"))


# -- a real PostgreSQL -----------------------------------------------------------------------------


@dataclass
class Postgres:
    """A private PostgreSQL 15 cluster (Debian's binaries) on a free port."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://tbmon:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        argv = [str(POSTGRES_BIN / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def init(self, max_connections: int) -> None:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            f"--pgdata={self.root / 'data'}",
            "--username=tbmon",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--no-sync",
            "--no-instructions",
        )
        with (self.root / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = {max_connections}\n"
                "superuser_reserved_connections = 1\n"
            )

    def start(self) -> None:
        data, log = self.root / "data", self.root / "postgres.log"
        self._run("pg_ctl", f"--pgdata={data}", f"--log={log}", "--wait", "start")

    def stop(self) -> None:
        self._run("pg_ctl", f"--pgdata={self.root / 'data'}", "--mode=fast", "--wait", "stop")


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp_path: the postgres user cannot enter root's 0700 folders.
    root = Path(tempfile.mkdtemp(prefix="tbmon-pg-"))
    server = Postgres(root, free_ports(1)[0])
    try:
        server.init(max_connections=12)
        server.start()
        yield server
    finally:
        if (root / "data" / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_stopped_database_is_unhealthy_ready_503_live_200_and_then_recovers(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": postgres.url,
        "HEALTH_CHECKS": "database,memory",
        "HEALTH_CRITICAL": "database",
        "HEALTH_INTERVAL": "0.3",
        "HEALTH_DATABASE_POOL_SIZE": "3",
    }
    with serving(env, tmp_path) as base:
        database = detailed(base)["database"]
        assert database["status"] == "healthy", database
        metadata = database["metadata"]
        assert metadata["url"] == f"postgresql://tbmon:***@127.0.0.1:{postgres.port}/postgres"
        assert metadata["server_version"].startswith("15.")
        assert metadata["database"] == "postgres"
        assert metadata["max_connections"] == 12
        assert metadata["open_connections"] >= 1
        assert metadata["active_connections"] >= 1  # the check's own query
        # The check's pool: at least one connection kept open, at most HEALTH_DATABASE_POOL_SIZE.
        assert 1 <= metadata["connection_pool_size"] <= metadata["connection_pool_max"] == 3
        assert httpx.get(f"{base}/health/ready").status_code == 200

        postgres.stop()
        database = component_when(
            base,
            "database",
            lambda found: found["status"] == "unhealthy",
            "the database to be reported unhealthy",
        )
        assert "connection" in database["metadata"]["error"]
        ready = httpx.get(f"{base}/health/ready")
        assert (ready.status_code, ready.json()["status"]) == (503, "unhealthy")
        assert httpx.get(f"{base}/health").status_code == 503
        live = httpx.get(f"{base}/health/live")
        assert (live.status_code, live.json()["status"]) == (200, "healthy")
        metrics = httpx.get(f"{base}/health/metrics").text
        assert 'health_component_status{component="database"} 0.0' in metrics

        postgres.start()
        wait_until(
            lambda: httpx.get(f"{base}/health/ready").status_code == 200,
            "ready to recover once the database is back",
            timeout=15,
        )
        # The pool reconnected: the figures come from a live connection again.
        metadata = detailed(base)["database"]["metadata"]
        assert 1 <= metadata["connection_pool_size"] <= 3
        assert metadata["open_connections"] >= 1
        for path in ("/health", "/health/detailed", "/health/component/database"):
            assert PASSWORD not in httpx.get(base + path).text


def test_the_checks_run_in_a_child_process_whose_results_the_service_serves(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": postgres.url, "HEALTH_CHECKS": "database", "HEALTH_INTERVAL": "0.3"}
    with service(env, tmp_path) as (base, process, _):
        assert detailed(base)["database"]["status"] == "healthy"
        child = check_process(process)
        # The check's connections to PostgreSQL are the child's; the server holds none.
        assert connected_to(child, postgres.port)
        assert not connected_to(psutil.Process(process.pid), postgres.port)
        # A change of result in the child reaches the answers.
        postgres.stop()
        component_when(
            base,
            "database",
            lambda found: found["status"] == "unhealthy",
            "the database to be reported unhealthy",
        )


def test_a_dead_check_process_fails_liveness_while_the_service_answers(tmp_path: Path) -> None:
    env = {"HEALTH_CHECKS": "cpu,memory", "HEALTH_INTERVAL": "0.3"}
    with service(env, tmp_path) as (base, process, log):
        check_process(process).kill()
        started = time.monotonic()
        wait_until(
            lambda: httpx.get(f"{base}/health/live").status_code == 503,
            "liveness to fail once the check process is gone",
            timeout=5,
            interval=0.05,
        )
        assert time.monotonic() - started < 2  # at once, not after the 10 s stall limit
        assert process.poll() is None
        assert httpx.get(f"{base}/health/ready").status_code == 200  # the last results
        assert "the health check process has stopped (exit code -9)" in log.read_text()


def test_stopping_the_service_stops_its_check_process(tmp_path: Path) -> None:
    env = {"HEALTH_CHECKS": "cpu,memory", "HEALTH_INTERVAL": "0.3"}
    with service(env, tmp_path) as (_, process, log):
        child = check_process(process)
        stop(process)  # SIGTERM, as an orchestrator stops it
        assert not child.is_running()  # ended and reaped before the service exited
        text = log.read_text()
        assert "Application shutdown complete" in text
        assert "did not stop in time" not in text
        assert "has stopped" not in text  # the server ended it: no false alarm


def test_a_check_process_whose_service_died_stops_by_itself(tmp_path: Path) -> None:
    env = {"HEALTH_CHECKS": "cpu,memory", "HEALTH_INTERVAL": "0.3"}
    with service(env, tmp_path) as (_, process, _):
        child = check_process(process)
        process.kill()
        process.wait(5)
        wait_until(
            lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
            "the orphaned check process to exit",
            timeout=5,
            interval=0.05,
        )


#: A server that starts its check process and exits without stopping it (a crash in its
#: shutdown, say); the child must still be stopped and the exit must not hang.
_EXITS_WITHOUT_STOP = """
import asyncio
import multiprocessing
from tbmon.health.check import Check, Outcome, Status
from tbmon.health.isolation import CheckProcess
from tbmon.health.redact import Redactor
from tbmon.health.registry import ScheduledCheck

class Fine(Check):
    async def check(self) -> Outcome:
        return Outcome(Status.HEALTHY, {})

SERVING = []  # held to the end, as an app's state holds it

async def main() -> None:
    checks = [ScheduledCheck(name="fine", check=Fine(), timeout=1.0, critical=False)]
    process = CheckProcess(checks, 0.3, Redactor())
    SERVING.append(process)
    await process.start()
    (child,) = multiprocessing.active_children()
    print(child.pid, flush=True)

asyncio.run(main())
"""


def test_a_server_that_exits_without_stopping_its_check_process_does_not_hang() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _EXITS_WITHOUT_STOP], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_database_near_max_connections_is_degraded(postgres: Postgres, tmp_path: Path) -> None:
    env = {"DATABASE_URL": postgres.url, "HEALTH_CHECKS": "database", "HEALTH_INTERVAL": "0.3"}
    # 12 allowed: our 10 plus the check's own is 11, above 90 %.
    held = [psycopg.connect(postgres.url) for _ in range(10)]
    try:
        with serving(env, tmp_path) as base:
            database = component_when(
                base,
                "database",
                lambda found: found["status"] == "degraded",
                "the database to be reported degraded",
            )
            assert database["metadata"]["connection_usage_percent"] >= 90
            assert "max_connections 12" in database["metadata"]["error"]
    finally:
        for connection in held:
            connection.close()


# -- services that report their own status ------------------------------------------------------


def test_a_processors_host_answering_200_degraded_is_degraded_and_says_why(
    tmp_path: Path,
) -> None:
    (hop_port,) = free_ports(1)  # nothing listens there yet: the host's next hop is down
    host = start_host(tmp_path, hop_port)
    try:
        env = {
            "HEALTH_CHECKS": "processors",
            "HEALTH_PROCESSORS_URL": f"http://127.0.0.1:{host.http_port}",
            "HEALTH_INTERVAL": "0.3",
        }
        with serving(env, tmp_path) as base:
            processors = component_when(
                base,
                "processors",
                lambda found: found["status"] == "degraded",
                "the processors host's degraded report to show",
            )
            metadata = processors["metadata"]
            assert metadata["status_code"] == 200  # 2xx alone would have read as healthy
            assert f"next hop 127.0.0.1:{hop_port} is " in metadata["error"]
            assert metadata["next_hop"]["status"] == "warn"
            assert metadata["grpc"]["status"] == "pass"

            with otlp_sink(hop_port):
                processors = component_when(
                    base,
                    "processors",
                    lambda found: found["status"] == "healthy",
                    "the processors host to be healthy once its next hop listens",
                    timeout=45,
                )
            assert "error" not in processors["metadata"]
            assert processors["metadata"]["next_hop"]["status"] == "pass"
    finally:
        stop_host(host)


def test_the_alert_bridge_check_reads_the_outbox_with_the_bridges_token(tmp_path: Path) -> None:
    with bridge_rig(tmp_path / "bridge") as rig:
        env = {
            "HEALTH_CHECKS": "alert_bridge",
            "HEALTH_ALERT_BRIDGE_URL": rig.url,
            "HEALTH_ALERT_BRIDGE_TOKEN": rig.token,
            "HEALTH_INTERVAL": "0.3",
        }
        with serving(env, tmp_path) as base:
            bridge = detailed(base)["alert_bridge"]
            assert bridge["status"] == "healthy", bridge
            assert bridge["metadata"]["url"] == f"{rig.url}/health/detailed"
            assert bridge["metadata"]["outbox_pending"] == 0
            assert rig.token not in httpx.get(f"{base}/health/detailed").text

        wrong = {**env, "HEALTH_ALERT_BRIDGE_TOKEN": "not-the-bridge-token"}
        with serving(wrong, tmp_path) as base:
            bridge = detailed(base)["alert_bridge"]
            assert bridge["status"] == "degraded", bridge
            assert "refuses HEALTH_ALERT_BRIDGE_TOKEN" in bridge["metadata"]["error"]


COLLECTOR_CONFIG = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:${env:OTLP_PORT}"}}}
exporters:
  otlp/down:
    endpoint: "127.0.0.1:${env:DOWN_PORT}"
    tls: {insecure: true}
    retry_on_failure: {enabled: false}
    sending_queue: {enabled: false}
extensions:
  health_check: {endpoint: "127.0.0.1:${env:HEALTH_PORT}"}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: "${env:TELEMETRY_PORT}"}}}
  pipelines:
    traces: {receivers: [otlp], exporters: [otlp/down]}
"""


def test_the_first_collector_reading_flags_an_exporter_that_never_delivered(
    tmp_path: Path,
) -> None:
    otlp, down, health, telemetry = free_ports(4)  # nothing listens on `down`
    config = tmp_path / "collector.yaml"
    config.write_text(COLLECTOR_CONFIG)
    ports = {"OTLP_PORT": otlp, "DOWN_PORT": down, "HEALTH_PORT": health}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "TELEMETRY_PORT": str(telemetry)}
    binary = OTELCOL.path(StackSettings().cache_dir)
    with (tmp_path / "collector.log").open("w") as log:
        collector = subprocess.Popen(
            [str(binary), "--config", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    metrics_url = f"http://127.0.0.1:{telemetry}/metrics"
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{health}/").is_success, "the collector")
        with otlp_sdk(f"127.0.0.1:{otlp}", "first-reading") as sdk:
            sdk.tracer_provider.get_tracer("test").start_span("lost").end()
            sdk.tracer_provider.force_flush(timeout_millis=2000)
            wait_until(
                lambda: "otelcol_exporter_send_failed_spans{" in httpx.get(metrics_url).text,
                "the collector to count the failed send",
            )
        check = CollectorCheck(f"http://127.0.0.1:{health}/", metrics_url, 80)
        outcome = asyncio.run(_once(check))  # a fresh check: no earlier reading
    finally:
        stop(collector)
    assert outcome.status is Status.DEGRADED, outcome
    assert "exporter otlp/down: " in outcome.metadata["error"]
    assert "none sent since the collector started" in outcome.metadata["error"]


async def _once(check: CollectorCheck) -> Outcome:
    try:
        return await check.check()
    finally:
        await check.aclose()


# -- dependencies that hang ------------------------------------------------------------------------


def test_dependencies_that_never_answer_time_out_within_their_budget(tmp_path: Path) -> None:
    with silent_server() as port:
        env = {
            "HEALTH_CHECKS": "alertmanager,database,jaeger",
            "HEALTH_CRITICAL": "database",
            "HEALTH_ALERTMANAGER_URL": f"http://127.0.0.1:{port}",
            "HEALTH_JAEGER_URL": f"http://127.0.0.1:{port}/status",
            "DATABASE_URL": f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/trading",
            "HEALTH_TIMEOUT": "0.5",
            "HEALTH_TIMEOUTS": "jaeger=1.5",
            "HEALTH_INTERVAL": "0.5",
        }
        with serving(env, tmp_path) as base:
            components = detailed(base)
            for name, budget in (("alertmanager", 0.5), ("database", 0.5), ("jaeger", 1.5)):
                found = components[name]
                assert found["status"] == "unhealthy", found
                assert found["metadata"]["error"] == f"timed out after {budget:g} s"
                assert budget * 1000 <= found["response_time_ms"] < budget * 1000 + 500
            # While checks keep hanging, answers come from the snapshot without waiting.
            for path in ("/health/live", "/health/ready", "/health/detailed"):
                started = time.perf_counter()
                response = httpx.get(base + path)
                assert time.perf_counter() - started < 0.25, path
                assert response.status_code == (200 if path == "/health/live" else 503)


# -- bad configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HEALTH_INTERVAL": "often"}, "HEALTH_INTERVAL: Input should be a valid number"),
        ({"HEALTH_TIMEOUT": "-1"}, "HEALTH_TIMEOUT: Input should be greater than 0"),
        ({"HEALTH_TIMEOUTS": "database"}, "HEALTH_TIMEOUTS: expected name=seconds"),
        ({"HEALTH_TIMEOUTS": "jaeger=0"}, "HEALTH_TIMEOUTS: timeouts must be positive seconds"),
        ({"HEALTH_TOKEN": "short-secret"}, "HEALTH_TOKEN: must be at least 16 characters"),
        ({"HEALTH_PROMETHEUS_URL": "prometheus:9090"}, "HEALTH_PROMETHEUS_URL: must be an http"),
        (
            {"DATABASE_URL": f"mysql://bot:{PASSWORD}@db/trading"},
            "DATABASE_URL: must be a postgresql://",
        ),
        ({"HEALTH_DISK_PATH": "/no/such/disk"}, "HEALTH_DISK_PATH: /no/such/disk does not exist"),
        ({"TBMON_HEALTH_PORT": "eighty"}, "TBMON_HEALTH_PORT: Input should be a valid integer"),
        (
            {"HEALTH_BOT_DEGRADED_AFTER": "600"},
            "HEALTH_BOT_DEGRADED_AFTER (600) must be below HEALTH_BOT_UNHEALTHY_AFTER (300)",
        ),
        ({"HEALTH_CHECKS": "database"}, "HEALTH_CHECKS enables database, but it is not "),
        ({"HEALTH_CHECKS": "cpu,grafana"}, "HEALTH_CHECKS names unknown check(s) grafana; "),
        ({"HEALTH_CRITICAL": "postgres"}, "HEALTH_CRITICAL names unknown check(s) postgres"),
    ],
)
def test_bad_configuration_stops_start_up_naming_the_setting(
    env: dict[str, str], expected: str
) -> None:
    result = run_serve(env)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert expected in message
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    assert "short-secret" not in result.stderr


def test_unknown_check_names_list_the_installed_ones() -> None:
    result = run_serve({"HEALTH_CHECKS": "grafana"})
    message = " ".join(result.stderr.split())
    assert "installed checks:" in message
    for name in ("database", "collector", "prometheus", "bot", "disk", "exchange_api"):
        assert name in message


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_serve({"HEALTH_CHECKS": "cpu"}, "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in " ".join(result.stderr.split())
