"""`tbmon doctor` against the real local stack: a healthy stack passes, a stopped component is a
failure with its fix, the Telegram token is checked with getMe and never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from support import Backends, otlp_sdk, wait_until

from tbmon.alert_bridge.settings import DEMO_BOT_TOKEN
from tbmon.ports import free_ports
from tbmon.stack.doctor import Doctor, Finding, Status
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.resources import STACK_DATA
from tbmon.stack.supervisor import Supervisor
from tbmon.standins import silent_server

pytestmark = pytest.mark.stack


def _operations(**values: str) -> OperationsSettings:
    """No Grafana, Telegram or health service unless a test gives one (nothing read from .env)."""
    (closed,) = free_ports(1)
    defaults = {
        "grafana_url": f"http://127.0.0.1:{closed}",
        "health_url": f"http://127.0.0.1:{closed}",
        "telegram_api_url": f"http://127.0.0.1:{closed}",
    }
    # model_validate reads no environment and no .env: only what the test gives.
    return OperationsSettings.model_validate({**defaults, **values})


def _by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.check, []).append(finding)
    return grouped


def _status(findings: list[Finding], check: str) -> set[Status]:
    return {f.status for f in _by_check(findings)[check]}


def test_a_healthy_stack_passes(stack: Supervisor, backends: Backends) -> None:
    with otlp_sdk(backends.otlp_grpc, "doctor-probe") as sdk:
        sdk.meter_provider.get_meter("probe").create_counter("doctor_probe").add(1)
        with sdk.tracer_provider.get_tracer("probe").start_as_current_span("probe"):
            pass
    doctor = Doctor(stack.settings, _operations())

    def settled() -> list[Finding] | None:
        found = doctor.run()
        ready = {"Prometheus targets", "Collector receiving", "Alertmanager"}
        return found if all(_status(found, check) == {Status.OK} for check in ready) else None

    findings = wait_until(settled, "every target scraped and the probe's telemetry counted")
    for check in (
        "Prometheus",
        "Collector exporting",
        "Datasource Prometheus",
        "Datasource log store",
        "Datasource Jaeger",
        "Datasource Alertmanager",
        "Disk space for data",
    ):
        assert _status(findings, check) == {Status.OK}, _by_check(findings)[check]
    rules = list((STACK_DATA / "prometheus/rules").glob("*.yml"))
    assert _status(findings, "Alert rules") == {Status.OK if rules else Status.FAIL}
    # Not configured here: reported, with what to do, as warnings.
    assert _status(findings, "Telegram bot token") == {Status.WARN}
    assert _status(findings, "Health service") == {Status.WARN}
    assert all(f.fix for f in findings if f.status is not Status.OK)


def test_a_stopped_component_is_a_failure_with_its_fix(stack: Supervisor) -> None:
    stack.down(["alertmanager"])
    try:
        findings = _by_check(Doctor(stack.settings, _operations()).run())
    finally:
        stack.up(["alertmanager"])
    (alertmanager,) = findings["Alertmanager"]
    assert alertmanager.status is Status.FAIL
    assert "unreachable" in alertmanager.detail
    assert "tbmon stack up alertmanager" in alertmanager.fix
    assert "up -d alertmanager" in alertmanager.fix  # and the Compose command
    (datasource,) = findings["Datasource Alertmanager"]
    assert datasource.status is Status.FAIL


def test_with_prometheus_stopped_its_dependents_say_so(stack: Supervisor) -> None:
    stack.down(["prometheus"])
    try:
        findings = _by_check(Doctor(stack.settings, _operations()).run())
    finally:
        stack.up(["prometheus"])
    assert findings["Prometheus"][0].status is Status.FAIL
    assert "tbmon stack up prometheus" in findings["Prometheus"][0].fix
    for check in ("Prometheus targets", "Alert rules", "Collector receiving"):
        (finding,) = findings[check]
        assert finding.status is Status.FAIL
        assert "Prometheus did not answer" in finding.detail
        assert finding.fix == "fix Prometheus first (its own row)"


def test_telegram_token_is_checked_with_getme_and_never_shown(stack: Supervisor) -> None:
    # The stack runs the Telegram Bot API test server while no TELEGRAM_BOT_TOKEN is set.
    api = stack.settings.url(stack.settings.telegram_test_port)
    valid = Doctor(
        stack.settings, _operations(telegram_api_url=api, telegram_bot_token=DEMO_BOT_TOKEN)
    ).telegram_token()
    revoked_token = "1234567890:revoked-token-value"
    revoked = Doctor(
        stack.settings, _operations(telegram_api_url=api, telegram_bot_token=revoked_token)
    ).telegram_token()
    unreachable = Doctor(
        stack.settings, _operations(telegram_bot_token=revoked_token)
    ).telegram_token()
    assert valid == [Finding("Telegram bot token", Status.OK, "valid: @tbmon_test_bot")]
    (refused,) = revoked
    assert refused.status is Status.FAIL
    assert "401" in refused.detail
    assert "@BotFather" in refused.fix
    assert unreachable[0].status is Status.FAIL
    for finding in [*valid, *revoked, *unreachable]:
        assert revoked_token not in repr(finding)
        assert DEMO_BOT_TOKEN not in repr(finding)


def test_hanging_dependencies_fail_their_own_checks_within_the_timeout(stack: Supervisor) -> None:
    with silent_server() as port:
        hanging = f"http://127.0.0.1:{port}"
        operations = _operations(
            grafana_url=hanging,
            health_url=hanging,
            telegram_api_url=hanging,
            telegram_bot_token=DEMO_BOT_TOKEN,
            timeout="1",
        )
        started = time.monotonic()
        findings = _by_check(Doctor(stack.settings, operations).run())
        elapsed = time.monotonic() - started
    # Checks run concurrently: hanging dependencies cost one timeout, not one each.
    assert elapsed < 4
    assert findings["Telegram bot token"][0].status is Status.FAIL
    assert "ReadTimeout" in findings["Telegram bot token"][0].detail
    assert findings["Health service"][0].status is Status.WARN
    # A Grafana that hangs is a Grafana not reachable: the backends are checked directly.
    assert findings["Datasource Prometheus"][0].status is Status.OK
    assert findings["Prometheus"][0].status is Status.OK


def test_cli_prints_a_table_and_json_and_exits_1_on_failure(stack: Supervisor) -> None:
    env = {
        **os.environ,
        **stack.settings.environment(),
        "GRAFANA_URL": "http://127.0.0.1:1",
        "HEALTH_URL": "http://127.0.0.1:1",
        "TELEGRAM_BOT_TOKEN": "",
    }
    as_json = subprocess.run(
        [sys.executable, "-m", "tbmon", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=stack.settings.data_dir,
    )
    findings = json.loads(as_json.stdout)
    failed = [f for f in findings if f["status"] == "fail"]
    assert as_json.returncode == (1 if failed else 0)
    assert {f["check"] for f in findings} >= {"Prometheus", "Alertmanager", "Disk space for data"}
    table = subprocess.run(
        [sys.executable, "-m", "tbmon", "doctor"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        cwd=stack.settings.data_dir,
    )
    assert "Disk space for data" in table.stdout
    assert "fix" in table.stdout
