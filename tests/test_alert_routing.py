"""Alertmanager's rendered config: routes, timings, inhibition, email, and the bridge's token."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from bridge_support import CRITICAL_CHAT
from support import wait_until

from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack import binaries
from tbmon.stack.render import RenderError, bridge_token_file, render_alertmanager
from tbmon.stack.supervisor import Supervisor
from tbmon.standins.telegram import TestServerClient

SMTP = {
    "SMTP_HOST": "smtp.example.com:587",
    "SMTP_USER": "alerts@example.com",
    "SMTP_PASSWORD": "app-password-42",
    "SMTP_FROM": "tradingbot@example.com",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*SMTP, "TBMON_ALERT_EMAIL_TO", "ALERT_BRIDGE_TOKEN"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    program = str(binaries.AMTOOL.path(Path()))
    return subprocess.run([program, *args], capture_output=True, text=True, check=False)


def _receivers(config: Path, *labels: str) -> str:
    result = _amtool("config", "routes", "test", f"--config.file={config}", *labels)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_routes_send_each_severity_to_the_bridge(tmp_path: Path, clean_env: Any) -> None:
    config = render_alertmanager(isolated_settings(tmp_path), tmp_path / "am.yml", compose=False)
    check = _amtool("check-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    assert _receivers(config, "severity=critical", "alertname=HighDrawdown") == "telegram"
    assert _receivers(config, "severity=warning", "alertname=HighDrawdown") == "telegram"
    document = yaml.safe_load(config.read_text())
    (webhook,) = document["receivers"][0]["webhook_configs"]
    settings = isolated_settings(tmp_path)
    assert webhook["url"].endswith("/webhook/alertmanager")
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(
        bridge_token_file(settings)
    )


def test_timings_come_from_the_settings(tmp_path: Path, clean_env: Any) -> None:
    settings = isolated_settings(tmp_path).model_copy(
        update={
            "alert_critical_group_wait": "5s",
            "alert_critical_group_interval": "30s",
            "alert_critical_repeat_interval": "2h",
            "alert_warning_repeat_interval": "12h",
        }
    )
    config = render_alertmanager(settings, tmp_path / "am.yml", compose=False)
    critical, warning = yaml.safe_load(config.read_text())["route"]["routes"]
    assert (critical["group_wait"], critical["group_interval"], critical["repeat_interval"]) == (
        "5s",
        "30s",
        "2h",
    )
    assert (warning["group_wait"], warning["group_interval"], warning["repeat_interval"]) == (
        "30s",
        "5m",
        "12h",
    )
    assert _amtool("check-config", str(config)).returncode == 0


def test_a_bad_duration_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="alert_warning_group_wait"):
        StackSettings(alert_warning_group_wait="soon")


def test_email_receiver_only_with_smtp_and_secrets_only_in_files(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    for name, value in SMTP.items():
        clean_env.setenv(name, value)
    clean_env.setenv("ALERT_BRIDGE_TOKEN", "bridge-token-from-env")
    out = tmp_path / "compose" / "alertmanager.yml"
    config = render_alertmanager(isolated_settings(tmp_path), out, compose=True)
    text = config.read_text()
    assert "app-password-42" not in text
    assert "bridge-token-from-env" not in text
    assert "http://alert-bridge:8090/webhook/alertmanager" in text  # Compose addresses kept
    assert _amtool("check-config", str(config)).returncode == 0
    assert _receivers(config, "severity=critical") == "email,telegram"
    assert _receivers(config, "severity=warning") == "telegram"
    email = yaml.safe_load(text)["receivers"][1]["email_configs"][0]
    assert email["to"] == "tradingbot@example.com"  # SMTP_FROM unless TBMON_ALERT_EMAIL_TO
    assert email["smarthost"] == "smtp.example.com:587"
    for name, secret in (("smtp-password", "app-password-42"), ("alert-bridge-token", None)):
        path = out.parent / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == (secret or "bridge-token-from-env")


def test_smtp_host_without_a_sender_is_refused(tmp_path: Path, clean_env: Any) -> None:
    clean_env.setenv("SMTP_HOST", "smtp.example.com:587")
    with pytest.raises(RenderError, match="SMTP_FROM"):
        render_alertmanager(isolated_settings(tmp_path), tmp_path / "am.yml", compose=True)
    clean_env.setenv("SMTP_HOST", "smtp.example.com")
    with pytest.raises(RenderError, match=r"SMTP_HOST='smtp.example.com' must be host:port"):
        render_alertmanager(isolated_settings(tmp_path), tmp_path / "am.yml", compose=True)


def test_a_generated_token_is_kept_and_never_printed(tmp_path: Path, clean_env: Any) -> None:
    out = tmp_path / "am" / "alertmanager.yml"
    env = {**os.environ, "TBMON_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "tbmon", "stack", "render", "alertmanager", "--out", str(out)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    token = (out.parent / "alert-bridge-token").read_text()
    assert len(token) >= 32
    assert token not in first.stdout + first.stderr
    subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert (out.parent / "alert-bridge-token").read_text() == token


# -- the real Alertmanager of the session's stack ------------------------------------------------


def _post_alerts(stack: Supervisor, alerts: list[dict[str, Any]]) -> None:
    url = stack.settings.url(stack.settings.alertmanager_port, "/api/v2/alerts")
    httpx.post(url, json=alerts, timeout=10).raise_for_status()


@pytest.mark.stack
def test_a_critical_alert_inhibits_the_warning_of_the_same_name_and_thing(
    stack: Supervisor,
) -> None:
    name = f"Inhibit{uuid.uuid4().hex[:6]}"

    def alert(severity: str, job: str, alertname: str = name) -> dict[str, Any]:
        labels = {"alertname": alertname, "severity": severity, "component": "risk", "job": job}
        return {"labels": labels, "annotations": {"summary": "s"}}

    _post_alerts(
        stack,
        [
            alert("critical", "bot-a"),
            alert("warning", "bot-a"),
            alert("warning", "bot-b"),
            alert("warning", "bot-a", name + "Other"),
        ],
    )
    url = stack.settings.url(stack.settings.alertmanager_port, "/api/v2/alerts")

    def states() -> dict[tuple[str, str, str], str] | None:
        found = {
            (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["job"]): a["status"][
                "state"
            ]
            for a in httpx.get(url, timeout=10).json()
            if a["labels"]["alertname"].startswith(name)
        }
        return found if len(found) == 4 else None

    wait_until(lambda: (s := states()) and s[(name, "warning", "bot-a")] == "suppressed", "inhibit")
    assert states() == {
        (name, "critical", "bot-a"): "active",
        (name, "warning", "bot-a"): "suppressed",
        (name, "warning", "bot-b"): "active",
        (name + "Other", "warning", "bot-a"): "active",
    }


@pytest.mark.stack
def test_a_pipeline_backend_down_inhibits_bots_stopped_reporting(stack: Supervisor) -> None:
    run = uuid.uuid4().hex[:6]
    ends = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()  # inhibits only this test's

    def alert(name: str, severity: str, component: str, job: str) -> dict[str, Any]:
        labels = {"alertname": name, "severity": severity, "component": component, "job": job}
        return {"labels": {**labels, "run": run}, "annotations": {"summary": "s"}, "endsAt": ends}

    stopped = alert("BotStoppedReporting", "critical", "pipeline", f"bot-{run}")
    _post_alerts(stack, [stopped, alert("BackendDown", "critical", "infrastructure", "jaeger")])
    url = stack.settings.url(stack.settings.alertmanager_port, "/api/v2/alerts")

    def state(name: str) -> str | None:
        return next(
            (
                a["status"]["state"]
                for a in httpx.get(url, timeout=10).json()
                if a["labels"].get("run") == run and a["labels"]["alertname"] == name
            ),
            None,
        )

    wait_until(lambda: state("BackendDown"), "the alerts in Alertmanager")
    # Jaeger down does not hide a silent bot.
    wait_until(lambda: state("BotStoppedReporting") == "active", "the bot's alert active")
    _post_alerts(stack, [alert("BackendDown", "critical", "infrastructure", "processors")])
    wait_until(lambda: state("BotStoppedReporting") == "suppressed", "the inhibition")


@pytest.mark.stack
def test_alertmanager_reaches_the_bridge_with_its_token(stack: Supervisor) -> None:
    name = f"Delivered{uuid.uuid4().hex[:6]}"
    _post_alerts(
        stack,
        [
            {
                "labels": {"alertname": name, "severity": "critical", "component": "pipeline"},
                "annotations": {"summary": "through Alertmanager", "description": "value 1"},
            }
        ],
    )
    telegram = TestServerClient(stack.settings.url(stack.settings.telegram_test_port))
    try:
        message = wait_until(
            lambda: next((m for m in telegram.messages(CRITICAL_CHAT) if name in m["text"]), None),
            "the alert in the critical chat",
        )
    finally:
        telegram.close()
    assert "Summary: through Alertmanager" in message["text"]
