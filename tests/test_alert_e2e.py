"""End to end on a real stack: the demo's drawdown scenario (``tbmon demo``) goes through the
collector into Prometheus, the real rules fire, the real Alertmanager routes, the bridge sends,
and the Telegram test server receives the critical message, which the demo notes as arrived; the
portfolio recovering resolves the alert and sends the reply; the silence button silences.

The rules are the production ones (HighDrawdown critical waits its full ``for: 1m`` on the
current drawdown, and resolves when the portfolio makes a new peak); only Alertmanager's
group_wait/group_interval are shortened, through the stack's settings. The bot's analytics
window is shortened to 30 periods (30 s on the demo's clock), so the crash's peak has left the
window long before the alert's minute is up: the alert fires, and stays firing, because the
drawdown is measured from the high-water mark, not from the window's highest value.

The other trading and risk alerts are caused the same way, by demo bots whose exchange turns
volatile (HighVaR) or rejects half of the orders (TradingExecutionFailures), with thresholds an
operator set through the stack's TBMON_THRESHOLD_* settings (rendered into the rules), so the
messages must print those, not the seed's defaults. Their ``for`` is the production rules' (2m
each): the settings move thresholds, not durations, so the test takes as long as the rules wait.
HighPositionConcentration (``for: 10m``), HighLeverage, SlowAPIResponses and LowModelAccuracy
(5m) are left to the promtool tests (and the demo's scenarios).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from bridge_support import CRITICAL_CHAT
from support import demo_bot, running_stack, wait_until

from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack.supervisor import Supervisor
from tbmon.standins.telegram import TestServerClient

pytestmark = pytest.mark.stack


#: Thresholds as an operator sets them (TBMON_THRESHOLD_*); the drawdown ones stay the seed's.
OPERATOR_THRESHOLDS = {
    "threshold_var_warning": 0.09,
    "threshold_var_critical": 0.12,
    "threshold_execution_failures_critical": 0.3,
}
#: The bot's analytics window in the drawdown test: 30 one-second periods.
SHORT_WINDOW = 30


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    settings = isolated_settings(tmp_path_factory.mktemp("e2e")).model_copy(
        update={
            "alert_critical_group_wait": "1s",
            "alert_critical_group_interval": "2s",
            "alert_warning_group_wait": "1s",
            "alert_warning_group_interval": "2s",
            **OPERATOR_THRESHOLDS,
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
        patch.setenv("ALERT_BRIDGE_POLL_TIMEOUT", "2")
        with running_stack(settings) as supervisor:
            yield supervisor


def test_drawdown_alert_reaches_telegram_resolves_and_silences(
    fast_stack: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast_stack.settings
    monkeypatch.setenv("TBMON_ANALYTICS_WINDOW", str(SHORT_WINDOW))
    service = f"e2e-bot-{uuid.uuid4().hex[:6]}"
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    log = tmp_path / "demo.log"

    def ours(status: str) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in telegram.messages(CRITICAL_CHAT)
                if m["text"].startswith(status)
                and "Alert: HighDrawdown" in m["text"]
                and f"job={service}" in m["text"]
            ),
            None,
        )

    try:
        with demo_bot(settings, service, log, scenario="drawdown"):
            firing = wait_until(
                lambda: ours("🚨"), f"the critical message (bot log: {log})", timeout=240
            )
            _check_format(firing, service, settings)
            # The crash is out of the bot's window (its max drawdown forgot it), yet the alert
            # fires and stays firing: the drawdown is below the high-water mark.
            window_max = _query(settings, f'trading_max_drawdown{{job="{service}"}}')
            assert window_max, "the bot's max drawdown"
            assert max(window_max) < 0.1, f"the crash should be out of the window: {window_max}"
            (now,) = _query(settings, f'trading_current_drawdown{{job="{service}"}}')
            assert now > 0.25
            firing_now = f'ALERTS{{alertname="HighDrawdown", job="{service}", alertstate="firing"}}'
            assert _query(settings, firing_now) == [1.0]
            assert ours("✅") is None
            # The demo saw it reach Telegram, and says so.
            wait_until(
                lambda: "✓ HighDrawdown (critical) arrived" in log.read_text(),
                "the demo noting the message's arrival",
                timeout=30,
            )
            # No max-drawdown window to wait out: the recovery resolves it.
            resolved = wait_until(lambda: ours("✅"), "the resolved reply", timeout=300)
            wait_until(
                lambda: "✓ HighDrawdown (critical) resolved arrived" in log.read_text(),
                "the demo noting the resolution's arrival",
                timeout=30,
            )
        assert resolved["reply_to_message"]["message_id"] == firing["message_id"]
        assert "Resolved: " in resolved["text"]

        query = telegram.press(CRITICAL_CHAT, firing["message_id"], "silence:1")
        wait_until(lambda: telegram.callback(query)["answered"] or None, "the button's answer")
        assert telegram.callback(query)["text"] == "Silenced for 1 h."
    finally:
        telegram.close()
    silences = httpx.get(settings.url(settings.alertmanager_port, "/api/v2/silences")).json()
    (silence,) = [
        s
        for s in silences
        if {"name": "job", "value": service, "isRegex": False, "isEqual": True} in s["matchers"]
    ]
    assert silence["status"]["state"] == "active"
    matchers = {m["name"]: m["value"] for m in silence["matchers"]}
    assert matchers["alertname"] == "HighDrawdown"
    assert matchers["severity"] == "critical"
    assert "instance" not in matchers  # a restarted bot (a new instance id) stays silenced


def _query(settings: StackSettings, expr: str) -> list[float]:
    answer = httpx.get(
        settings.url(settings.prometheus_port, "/api/v1/query"), params={"query": expr}, timeout=30
    )
    answer.raise_for_status()
    return [float(series["value"][1]) for series in answer.json()["data"]["result"]]


def _check_format(message: dict[str, Any], service: str, settings: StackSettings) -> None:
    lines = message["text"].splitlines()
    assert lines[0] == "🚨 CRITICAL TRADING BOT ALERT"
    assert lines[2:5] == ["Alert: HighDrawdown", "Severity: CRITICAL", "Component: TRADING"]
    # What a trader needs: the bot and its strategy; no scope, stack label or process id.
    assert lines[5] == f"Labels: job={service}, strategy=ensemble-momentum"
    body = "\n".join(lines[6:])
    assert "Summary: Critical portfolio drawdown" in body
    assert re.search(
        rf"^Description: Portfolio drawdown of {service} \(strategy ensemble-momentum\) is "
        r"\d+(\.\d+)?% below its peak, exceeding the 25% critical threshold$",
        body,
        re.MULTILINE,
    )
    assert "Action Required: Stop opening new positions" in body
    assert re.search(r"^Time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", body, re.MULTILINE)
    assert lines[-2:] == ["🔗 View in Grafana", "🔗 View in Prometheus"]
    grafana, prometheus = [e["url"] for e in message["entities"] if e["type"] == "text_link"]
    # The trading dashboard, filtered to the bot, from an hour before the alert until now.
    opened = re.fullmatch(
        rf"http://localhost:3000/d/tbmon-trading-performance\?var-job={service}"
        r"&from=(\d{13})&to=now",
        grafana,
    )
    assert opened, grafana
    (shown,) = re.findall(r"^Time: (.+) UTC$", body, re.MULTILINE)
    started = datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    assert 0 <= int(opened[1]) / 1000 - (started - 3600) < 1
    assert prometheus.startswith(f"http://{settings.bind_host}:{settings.prometheus_port}/graph?")
    keyboard = message["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in keyboard[0]] == ["silence:1", "silence:24"]


#: What each caused alert's critical message must say: the alert, its dashboard, and its
#: description with the operator's threshold (OPERATOR_THRESHOLDS), not the seed's.
CAUSED = {
    "var_breach": (
        "HighVaR",
        "tbmon-risk-metrics",
        r"95% VaR of {service} \(strategy ensemble-momentum\) is \d+(\.\d+)?% of the "
        r"portfolio, above the 12% limit",
        {"strategy": "ensemble-momentum"},
    ),
    "execution_failures": (
        "TradingExecutionFailures",
        "tbmon-trading-performance",
        r"\d+(\.\d+)?% of the orders of {service} \(strategy ensemble-momentum\) on binance "
        r"failed over the last 5 minutes \(threshold 30%\)",
        {"strategy": "ensemble-momentum", "exchange": "binance"},
    ),
}


def test_risk_and_execution_alerts_caused_on_real_bots_reach_telegram(
    fast_stack: Supervisor, tmp_path: Path
) -> None:
    """Two demo bots at once: one whose market turns wildly volatile while it holds ETH, one
    whose exchange rejects half of its orders. Each alert's critical message arrives with the
    operator's threshold in its text, the bot's trader labels and its dashboard's link."""
    settings = fast_stack.settings
    telegram = TestServerClient(settings.url(settings.telegram_test_port))
    services = {scenario: f"e2e-{scenario}-{uuid.uuid4().hex[:4]}" for scenario in CAUSED}

    def arrived(alert: str, service: str) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in telegram.messages(CRITICAL_CHAT)
                if m["text"].startswith("🚨")
                and f"Alert: {alert}" in m["text"]
                and f"job={service}" in m["text"]
            ),
            None,
        )

    try:
        with contextlib.ExitStack() as bots:
            for scenario, service in services.items():
                log = tmp_path / f"{scenario}.log"
                bots.enter_context(demo_bot(settings, service, log, scenario=scenario))
            for scenario, (alert, dashboard, description, labels) in CAUSED.items():
                service = services[scenario]
                message = wait_until(
                    partial(arrived, alert, service),
                    f"{alert} from {service} (log: {tmp_path / scenario}.log)",
                    timeout=300,
                )
                _check_caused(
                    message,
                    alert,
                    dashboard,
                    re.compile(description.format(service=re.escape(service))),
                    {"job": service, **labels},
                )
    finally:
        telegram.close()


def _check_caused(
    message: dict[str, Any],
    alert: str,
    dashboard: str,
    description: re.Pattern[str],
    labels: dict[str, str],
) -> None:
    lines = message["text"].splitlines()
    assert lines[2:4] == [f"Alert: {alert}", "Severity: CRITICAL"], lines
    (shown,) = [line for line in lines if line.startswith("Labels: ")]
    pairs = dict(pair.split("=", 1) for pair in shown.removeprefix("Labels: ").split(", "))
    assert pairs == labels  # the bot, its strategy (and exchange); no process id, no scope
    (text,) = [line for line in lines if line.startswith("Description: ")]
    assert description.fullmatch(text.removeprefix("Description: ")), text
    grafana = next(e["url"] for e in message["entities"] if e["type"] == "text_link")
    opened = re.fullmatch(
        rf"http://localhost:3000/d/{dashboard}\?var-job={labels['job']}&from=(\d{{13}})&to=now",
        grafana,
    )
    assert opened, grafana
    (time_line,) = re.findall(r"^Time: (.+) UTC$", message["text"], re.MULTILINE)
    started = datetime.strptime(time_line, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    assert 0 <= int(opened[1]) / 1000 - (started - 3600) < 1  # from an hour before the alert


def test_rendered_stack_configs_point_at_each_other(fast_stack: Supervisor) -> None:
    data = Path(fast_stack.settings.data_dir)
    alertmanager = (data / "alertmanager" / "alertmanager.yml").read_text()
    assert f"127.0.0.1:{fast_stack.settings.bridge_port}/webhook/alertmanager" in alertmanager
    assert "group_wait: 1s" in alertmanager
    prometheus = (data / "prometheus" / "prometheus.yml").read_text()
    assert f"127.0.0.1:{fast_stack.settings.bridge_port}" in prometheus
    up = wait_until(
        lambda: httpx.get(
            fast_stack.settings.url(fast_stack.settings.prometheus_port, "/api/v1/query"),
            params={"query": 'up{job="alert-bridge"}'},
        ).json()["data"]["result"],
        "Prometheus scraping the bridge",
    )
    assert up[0]["value"][1] == "1"
