"""`tbmon demo` without TELEGRAM_BOT_TOKEN: the alerts go to the stack's Telegram test server,
and the demo prints each message it receives."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from bridge_support import CRITICAL_CHAT, WARNING_CHAT
from support import demo_bot, wait_until

from tbmon.alert_bridge.settings import DEMO_BOT_TOKEN
from tbmon.stack.ports import isolated_settings
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
