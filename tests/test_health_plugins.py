"""Custom checks through the `tbmon.health_checks` entry points: the documented example plugin
runs as a component; broken and unconfigured plugins are left out, or refused when named."""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import CHECKOUT, wait_until

from tbmon.health import HealthSettings, create_app
from tbmon.health.app import get_settings
from tbmon.health.registry import ConfigurationError, build

with warnings.catch_warnings():  # Starlette prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ENTRY_POINTS = """\
[tbmon.health_checks]
state_file = mybot_health:state_file_check
broken = mybot_missing_module:factory
wrong_type = builtins:str
"""


def documented_example() -> str:
    """The plugin module docs/health.md shows, exactly as written there."""
    text = (CHECKOUT / "docs" / "health.md").read_text()
    after = text.split("<!-- example: mybot_health.py -->", 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, "docs/health.md lost its example plugin"
    return match.group(1)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution `mybot-health` with the example plugin and two broken entry points,
    installed the way pip leaves it (a .dist-info folder on sys.path); yields its state file."""
    (tmp_path / "mybot_health.py").write_text(documented_example())
    dist_info = tmp_path / "mybot_health-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mybot-health\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    state = tmp_path / "state.json"
    state.write_text("{}")
    monkeypatch.setenv("MYBOT_STATE_FILE", str(state))
    monkeypatch.setenv("MYBOT_STATE_MAX_AGE", "60")
    return state


@pytest.fixture
def client(installed_plugin: Path) -> Iterator[TestClient]:
    app = create_app()  # checks built at start-up from the (overridden) settings
    settings = HealthSettings(checks=["state_file", "cpu"], critical=["state_file"], interval=0.1)
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app, client=("127.0.0.1", 40000)) as test_client:
        yield test_client


def test_the_documented_plugin_runs_as_a_component(
    client: TestClient, installed_plugin: Path
) -> None:
    answer = client.get("/health/component/state_file").json()
    assert answer["status"] == "healthy", answer
    assert answer["metadata"]["path"] == str(installed_plugin)
    assert 0 <= answer["metadata"]["age_seconds"] < 60
    assert [c["name"] for c in client.get("/health/ready").json()["components"]] == ["state_file"]

    an_hour_ago = time.time() - 3600
    os.utime(installed_plugin, (an_hour_ago, an_hour_ago))

    def degraded() -> dict[str, Any] | None:
        found: dict[str, Any] = client.get("/health/component/state_file").json()
        return found if found["status"] == "degraded" else None

    assert wait_until(degraded, "the stale file to degrade")["metadata"]["error"].startswith(
        "not written for 3600 s"
    )
    installed_plugin.unlink()
    wait_until(
        lambda: client.get("/health/ready").status_code == 503,
        "a missing state file to make the critical plugin unhealthy",
    )
    error = client.get("/health/component/state_file").json()["metadata"]["error"]
    assert error.startswith("FileNotFoundError: ")


def test_broken_plugins_are_skipped_with_one_log_line(
    installed_plugin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tbmon.health.registry"):
        names = [check.name for check in build(HealthSettings())]
    assert "state_file" in names
    assert {"collector", "prometheus", "bot", "disk", "memory", "cpu"} <= set(names)
    assert "broken" not in names
    assert "wrong_type" not in names
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "skipping health check plugin broken (mybot_missing_module:factory): "
        "ModuleNotFoundError: No module named 'mybot_missing_module'"
    ) in messages
    assert (
        "skipping health check plugin wrong_type (builtins:str): "
        "TypeError: returned str, not a tbmon.health.Check"
    ) in messages


def test_an_unconfigured_plugin_is_left_out_unless_named(
    installed_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MYBOT_STATE_FILE")
    assert "state_file" not in [check.name for check in build(HealthSettings())]
    with pytest.raises(ConfigurationError) as refused:
        build(HealthSettings(checks=["state_file"]))
    assert str(refused.value) == (
        "HEALTH_CHECKS enables state_file, but it is not configured: MYBOT_STATE_FILE is not set"
    )


def test_a_named_broken_plugin_stops_start_up(installed_plugin: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"its plugin mybot_missing_module:factory failed"):
        build(HealthSettings(checks=["cpu", "broken"]))


def test_plugins_take_part_in_critical_and_timeouts(installed_plugin: Path) -> None:
    settings = HealthSettings(
        checks=["state_file", "state_file", "disk"],
        critical=["state_file"],
        timeouts={"state_file": 0.5},
        timeout=3,
    )
    checks = build(settings)
    assert [(c.name, c.critical, c.timeout) for c in checks] == [
        ("state_file", True, 0.5),
        ("disk", False, 3.0),
    ]
