"""The Prometheus alert rules: valid, complete, unit-tested by promtool, loaded by Prometheus."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from pydantic import ValidationError
from support import CHECKOUT, Backends, otlp_sdk, wait_until

from tbmon.settings import StackSettings
from tbmon.stack import binaries, dashboards, render
from tbmon.stack.resources import STACK_DATA
from tbmon.stack.supervisor import Supervisor

RULES = STACK_DATA / "prometheus/rules"
UNIT_TESTS = STACK_DATA / "prometheus/tests"
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
    ("ContainerRestarting", "warning"),  # cAdvisor
    ("ContainerOOMKilled", "warning"),
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


def _promtool(*args: str, cwd: Path = CHECKOUT) -> subprocess.CompletedProcess[str]:
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
    text = trading.read_text()
    assert text.count("  ) > 0.25\n") == 1
    trading.write_text(text.replace("  ) > 0.25\n", "  ) > 0.35\n"))
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


#: The components whose alerts concern one bot or the stack's hosts: "View in Grafana" opens
#: the dashboard of their rule's `dashboard` annotation.
WITH_DASHBOARD = {"trading", "risk", "system", "agent", "pipeline"}


def test_every_bot_alert_links_to_an_existing_dashboard_and_its_variables() -> None:
    variables = {}
    for build in dashboards.DASHBOARDS:
        document = build().to_json()
        variables[document["uid"]] = {v["name"] for v in document["templating"]["list"]}
    for rule in _rules():
        if rule["labels"]["component"] not in WITH_DASHBOARD:
            continue
        link = rule["annotations"].get("dashboard", "")
        match = re.fullmatch(r"/d/([\w-]+)(?:\?(.*))?", link)
        assert match, f"{rule['alert']}: dashboard annotation {link!r}"
        assert match[1] in variables, f"{rule['alert']}: no dashboard {match[1]}"
        for parameter in (match[2] or "").split("&") if match[2] else []:
            name, _, value = parameter.partition("=")
            assert name.removeprefix("var-") in variables[match[1]], parameter
            assert value == "{{ $labels.job | urlquery }}", parameter  # escaped into the URL
            assert "job" in rule["expr"], f"{rule['alert']}: links by job, so keeps it"


def test_rendering_the_default_thresholds_gives_the_rule_files_as_they_are() -> None:
    source = {path.name: yaml.safe_load(path.read_text()) for path in RULES.glob("*.yml")}
    assert render.rules_documents(StackSettings()) == source


def test_each_thresholded_rule_shows_the_threshold_it_compares_with() -> None:
    rules = {render.rule_key(rule): rule for rule in _rules()}
    assert set(render.RULE_THRESHOLDS) <= set(rules)
    for key, name in render.RULE_THRESHOLDS.items():
        rule = rules[key]
        default = render.threshold_default(name)
        assert render.rule_threshold(rule, default).value == default
        shown = re.findall(r"\{\{ \$threshold := ([^ ]+) \}\}", str(rule["annotations"]))
        assert shown, f"{key}: the message shows the threshold"
        assert {float(value) for value in shown} == {default}, key
        assert "$threshold" in rule["annotations"]["description"], key


def test_every_rendered_message_prints_the_threshold_the_operator_set() -> None:
    """Every threshold moved (by 10%, keeping warnings below their criticals): each rule
    compares with the operator's number, and its message prints that number, not the seed's."""
    moved = {
        f"threshold_{name}": round(render.threshold_default(name) * 0.9, 6)
        for name in set(render.RULE_THRESHOLDS.values())
    }
    settings = StackSettings.model_validate(moved)  # validated: warnings stay below criticals
    for key, name in render.RULE_THRESHOLDS.items():
        (rule,) = _rendered(settings, *key)
        value = moved[f"threshold_{name}"]
        assert render.rule_threshold(rule, value).value == value, key
        shown = re.findall(r"\{\{ \$threshold := ([^ ]+) \}\}", str(rule["annotations"]))
        assert shown, key
        assert {float(number) for number in shown} == {value}, key
        # No copy of the seed's number typed into the text beside the variable.
        default = render.threshold_default(name)
        for text in rule["annotations"].values():
            rest = re.sub(r"\{\{ \$threshold := [^ ]+ \}\}", "", str(text))
            for typed in (f"{default:g}", f"{default * 100:g}%"):
                assert not re.search(rf"(?<![\w.]){re.escape(typed)}(?![\w.])", rest), (key, text)


def test_the_drawdown_alert_its_panel_and_the_docs_mean_the_high_water_mark() -> None:
    """HighDrawdown compares the current drawdown, which the metric's description, the panel
    and the docs measure from the high-water mark, not the window's peak."""
    from tbmon.analytics import VALUE_GAUGES  # noqa: PLC0415

    for severity in ("critical", "warning"):
        (rule,) = _rendered(StackSettings(), "HighDrawdown", severity)
        assert "trading_current_drawdown" in rule["expr"]
        assert "trading_max_drawdown" not in rule["expr"]
    assert "high-water mark" in VALUE_GAUGES["trading_current_drawdown"]
    assert "window" in VALUE_GAUGES["trading_max_drawdown"]
    document = dashboards.trading_performance().to_json()
    (panel,) = [p for p in document["panels"] if p.get("title") == "Current drawdown"]
    assert "high-water mark" in panel["description"]
    alerting = (CHECKOUT / "docs/alerting.md").read_text()
    (row,) = [
        line for line in alerting.splitlines() if line.startswith("| HighDrawdown | critical")
    ]
    assert "high-water mark" in row


CHANGED = StackSettings(
    threshold_drawdown_critical=0.35,
    threshold_cpu_warning_percent=95,
    threshold_by_strategy={
        "hodl": {"concentration_warning": None},
        "levered": {"leverage_warning": 10},
        "fragile": {"drawdown_critical": 0.2},
    },
)


@pytest.mark.parametrize(("settings", "passes"), [(CHANGED, True), (StackSettings(), False)])
def test_a_changed_threshold_moves_the_rendered_rule(
    tmp_path: Path, settings: StackSettings, passes: bool
) -> None:
    """tests/promtool/changed_thresholds_test.yml passes on the rules rendered with its
    settings, and fails on the defaults (so it tests the change)."""
    written = render.render_rules(settings, tmp_path / "rules")
    assert {path.name for path in written} == {path.name for path in RULES.glob("*.yml")}
    shutil.copy(CHECKOUT / "tests/promtool/changed_thresholds_test.yml", tmp_path)
    check = _promtool("check", "rules", *map(str, written))
    assert check.returncode == 0, check.stdout + check.stderr
    result = _promtool("test", "rules", "changed_thresholds_test.yml", cwd=tmp_path)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr


def _rendered(settings: StackSettings, alert: str, severity: str) -> list[dict[str, Any]]:
    return [
        rule
        for rule in render.rendered_rules(settings)
        if render.rule_key(rule) == (alert, severity)
    ]


def test_a_strategy_override_leaves_the_others_on_the_deployment_threshold() -> None:
    # "hodl" is off: the deployment's rule leaves it out and no rule of its own brings it back.
    (deployment,) = _rendered(CHANGED, "HighPositionConcentration", "warning")
    assert (
        'unless on (strategy)\n  (label_replace(vector(1), "strategy", "hodl"' in deployment["expr"]
    )
    critical = _rendered(CHANGED, "HighDrawdown", "critical")
    assert [rule["labels"].get("strategy") for rule in critical] == [None, "fragile"]
    assert render.rule_threshold(critical[0], 0.35).op == ">"
    assert render.rule_threshold(critical[1], 0.2).op == ">"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"TBMON_THRESHOLD_DRAWDOWN_WARNING": "0.3"},
            "TBMON_THRESHOLD_DRAWDOWN_WARNING (0.3) must be below TBMON_THRESHOLD_DRAWDOWN_CRIT",
        ),
        ({"TBMON_THRESHOLD_VAR_CRITICAL": "10"}, "threshold_var_critical"),
        ({"TBMON_THRESHOLD_BY_STRATEGY": '{"hodl": {"leverage_warning": 5'}, "not JSON"),
        (
            {"TBMON_THRESHOLD_BY_STRATEGY": '{"hodl": {"cpu_warning_percent": 99}}'},
            "'cpu_warning_percent' cannot be set per strategy",
        ),
        (
            {"TBMON_THRESHOLD_BY_STRATEGY": '{"a\\"b": {"leverage_warning": 5}}'},
            "a strategy name is",
        ),
    ],
)
def test_a_bad_threshold_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        StackSettings()


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
