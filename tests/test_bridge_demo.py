"""`tbmon demo` without TELEGRAM_BOT_TOKEN: the alerts go to the stack's Telegram test server,
and the demo prints each message it receives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bridge_support import CRITICAL_CHAT, WARNING_CHAT
from support import demo_bot, wait_until

from tbmon.alert_bridge.settings import DEMO_BOT_TOKEN
from tbmon.demo.cli import Arrivals, arrival_estimate, clock
from tbmon.demo.scenarios import SCENARIOS
from tbmon.ports import isolated_settings
from tbmon.stack.supervisor import Supervisor


def test_the_demo_prints_each_message_the_telegram_test_server_receives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    supervisor = Supervisor(isolated_settings(tmp_path / "stack"))
    settings = supervisor.settings
    monkeypatch.setenv("TBMON_TELEGRAM_TEST_PORT", str(settings.telegram_test_port))
    bot_api = settings.url(settings.telegram_test_port, f"/bot{DEMO_BOT_TOKEN}/sendMessage")

    def send(chat: str, html: str) -> None:
        answer = httpx.post(bot_api, json={"chat_id": chat, "text": html, "parse_mode": "HTML"})
        assert answer.json()["ok"], answer.text

    log = tmp_path / "demo.log"
    try:
        supervisor.up(["telegram-test"])
        send(CRITICAL_CHAT, "sent before the demo")
        with demo_bot(settings, "echo-demo", log):
            wait_until(lambda: "messages are printed as they arrive" in log.read_text(), "echo")
            send(CRITICAL_CHAT, "🚨 <b>HighDrawdown</b> &amp; friends")
            send(WARNING_CHAT, "⚠️ a warning")
            wait_until(lambda: "a warning" in log.read_text(), "the warning printed")
            printed = log.read_text()
    finally:
        supervisor.down(["telegram-test"])
    assert f"chat {CRITICAL_CHAT} (critical) · message 2 ──\n🚨 HighDrawdown & friends\n" in printed
    assert f"chat {WARNING_CHAT} (warning) · message 1 ──\n⚠️ a warning\n" in printed
    assert "sent before the demo" not in printed


def test_a_demo_too_short_for_its_alert_says_when_it_comes_and_that_it_did_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo SCENARIO=drawdown DURATION=30`: the alert cannot arrive in 30 s; the demo says
    when it would have, and that it did not (no stack here: it cannot see Telegram either)."""
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = isolated_settings(tmp_path / "stack")  # nothing listens on its ports
    env = {**os.environ, **settings.environment(), "OTEL_SERVICE_NAME": "short-demo"}
    env |= {"OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tbmon", "demo", "--scenario", "drawdown", "--duration", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())  # rich wraps long lines
    critical = next(m for m in SCENARIOS["drawdown"].messages if not m.resolved)
    eta = arrival_estimate(critical, settings)
    assert 100 < eta < 150  # the crash at 28 s, the pipeline, for: 1m, group_wait
    assert f"HighDrawdown (critical) should reach Telegram about {clock(eta)} in" in out
    assert "the 8s asked for end before HighDrawdown (critical), HighDrawdown (critical) " in out
    assert "not arrived yet: HighDrawdown (critical), expected about" in out
    assert "not arrived yet: HighDrawdown (critical) resolved, expected about" in out
    assert "not arrived yet: HighPositionConcentration (warning), expected about" in out


def test_arrivals_follow_the_alert_bridges_messages_for_this_bot() -> None:
    scenario = SCENARIOS["drawdown"]
    arrivals = Arrivals(scenario, "bot-a", isolated_settings(Path("/nonexistent")))
    block = "Alert: HighDrawdown\nSeverity: CRITICAL\nComponent: TRADING\nLabels: job={}, x=1"
    arrivals.telegram("🚨 CRITICAL TRADING BOT ALERT\n\n" + block.format("bot-ab"))  # not ours
    arrivals.telegram("⚠️ WARNING TRADING BOT ALERT\n\n" + block.format("bot-a"))  # wrong level
    assert arrivals.missing() == list(scenario.messages)
    grouped = "\n\n━━━━━━━━━━\n\n".join([block.format("bot-b"), block.format("bot-a")])
    arrivals.telegram("🚨 CRITICAL TRADING BOT ALERTS (2)\n\n" + grouped)
    arrivals.telegram("✅ RESOLVED CRITICAL TRADING BOT ALERT\n\n" + block.format("bot-a"))
    assert [str(m) for m in arrivals.missing()] == ["HighPositionConcentration (warning)"]
    assert not arrivals.done.is_set()
    concentrated = block.replace("HighDrawdown", "HighPositionConcentration").format("bot-a")
    arrivals.telegram("⚠️ WARNING TRADING BOT ALERT\n\n" + concentrated)
    assert arrivals.missing() == []
    assert arrivals.done.is_set()
