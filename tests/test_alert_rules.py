"""The Prometheus alert rules: valid, complete, unit-tested by promtool, loaded by Prometheus."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from support import Backends, otlp_sdk, wait_until

from tbmon.settings import PROJECT_ROOT
from tbmon.stack import binaries
from tbmon.stack.supervisor import Supervisor

RULES = PROJECT_ROOT / "stack/prometheus/rules"
UNIT_TESTS = PROJECT_ROOT / "stack/prometheus/tests"
COMPONENTS = {"trading", "risk", "system", "agent", "pipeline", "infrastructure"}

#: The seed's critical and warning alerts, and the issue's additions, as (name, severity).
REQUIRED = {
    ("HighDrawdown", "critical"),  # portfolio drawdown > 25%
    ("HighDrawdown", "warning"),  # portfolio drawdown > 15%
    ("HighVaR", "critical"),  # VaR 95% > 10%
    ("HighVaR", "warning"),  # risk limit approaching
    ("SystemHealthFailure", "critical"),
    ("TradingExecutionFailures", "critical"),
    ("LowModelAccuracy", "critical"),  # < 50%
    ("LowModelAccuracy", "warning"),
    ("HighCPUUsage", "warning"),
    ("HighMemoryUsage", "warning"),
    ("SlowAPIResponses", "warning"),
    ("BotStoppedReporting", "critical"),
    ("CollectorExportFailing", "critical"),
    # Issue 13: every loss raises an alert, the first one included.
    ("BotTelemetryDropped", "critical"),
    ("ProcessorsDroppedItems", "critical"),
    ("CollectorQueueFilling", "warning"),
    ("BackendDown", "critical"),
}


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _unit_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in sorted(UNIT_TESTS.glob("*.yml"))
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def _promtool(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    program = str(binaries.PROMTOOL.path(Path()))
    return subprocess.run([program, *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", *map(str, sorted(RULES.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", *map(str, sorted(UNIT_TESTS.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    shutil.copytree(UNIT_TESTS, tmp_path / "tests")
    trading = tmp_path / "rules" / "trading.yml"
    trading.write_text(trading.read_text().replace("drawdown > 0.25", "drawdown > 0.35"))
    result = _promtool("test", "rules", "tests/trading_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "HighDrawdown" in result.stdout + result.stderr


def test_every_alert_has_its_labels_and_annotations() -> None:
    for rule in _rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["labels"]["component"] in COMPONENTS, name
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "action"}, name
        assert "$value" in annotations["description"], f"{name}: the description shows the value"


def test_the_seed_alerts_and_the_additions_exist() -> None:
    present = {(rule["alert"], rule["labels"]["severity"]) for rule in _rules()}
    assert present >= REQUIRED


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    cases = _unit_cases()
    fired = {
        (case["alertname"], expected["exp_labels"]["severity"])
        for case in cases
        for expected in case.get("exp_alerts") or []
    }
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    for rule in _rules():
        key = (rule["alert"], rule["labels"]["severity"])
        assert key in fired, f"no unit test sees {key} fire"
        assert rule["alert"] in silent, f"no unit test checks that {rule['alert']} stays silent"


@pytest.mark.stack
def test_prometheus_loads_and_evaluates_every_rule(stack: Supervisor) -> None:
    # Spans, metric points and log records through the collector: its per-signal counters then
    # exist side by side, as in production (rules that mix them up fail to evaluate).
    backends = Backends(stack.settings)
    with otlp_sdk(backends.otlp_grpc, "rules-probe") as sdk:
        sdk.meter_provider.get_meter("probe").create_counter("probe_events").add(1)
        with sdk.tracer_provider.get_tracer("probe").start_as_current_span("probe"):
            logger = logging.getLogger("rules-probe")
            logger.propagate = False
            logger.addHandler(LoggingHandler(logger_provider=sdk.logger_provider))
            logger.warning("probe")
    sent = 'otelcol_exporter_sent_log_records{exporter="otlp_grpc/processors"}'
    wait_until(lambda: backends.prometheus(sent), "the collector's counters in Prometheus")
    url = stack.settings.url(stack.settings.prometheus_port, "/api/v1/rules")

    def evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(url, timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        never = [r for r in rules if r["lastEvaluation"].startswith("0001-")]
        return None if never else rules

    # Two evaluations after the collector's own metrics are scraped, so every signal is there.
    first = wait_until(evaluated, "every rule evaluated once", timeout=60)
    stamp = max(rule["lastEvaluation"] for rule in first)
    rules = wait_until(
        lambda: (r := evaluated()) and min(x["lastEvaluation"] for x in r) > stamp and r,
        "every rule evaluated again",
        timeout=60,
    )
    alerts = sorted(r["name"] for r in rules if r["type"] == "alerting")
    assert alerts == sorted(r["alert"] for r in _rules())
    errors = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert errors == {}
