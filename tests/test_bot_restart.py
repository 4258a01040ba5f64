"""A restarted bot is one bot (issue 14): after a real restart of the demo bot on the real stack,
the old process's series live on beside the new one's for minutes (the collector's
metric_expiration), yet the portfolio panel shows one portfolio, at every moment of the
restart, and the bot's rules see one bot."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Backends, demo_bot, wait_until

from tbmon.stack import dashboards

pytestmark = pytest.mark.stack


def _panel_query(title: str, job: str) -> str:
    document = dashboards.trading_performance().to_json()
    (panel,) = [p for p in document["panels"] if p.get("title") == title and p["type"] == "stat"]
    return str(panel["targets"][0]["expr"]).replace("$job", job)


def _values(backends: Backends, expr: str, start: float, end: float) -> list[float]:
    response = httpx.get(
        backends.settings.url(backends.settings.prometheus_port, "/api/v1/query_range"),
        params={"query": expr, "start": start, "end": end, "step": 1},
        timeout=30,
    )
    response.raise_for_status()
    return [float(v) for series in response.json()["data"]["result"] for _, v in series["values"]]


def test_a_restarted_bot_shows_one_portfolio_not_two(backends: Backends, tmp_path: Path) -> None:
    job = f"restart-{uuid.uuid4().hex[:6]}"
    portfolios = f'trading_portfolio_value_usd{{job="{job}"}}'
    with demo_bot(backends.settings, job, tmp_path / "first.log"):
        (first,) = wait_until(
            lambda: backends.prometheus(portfolios), "the first process's portfolio", timeout=120
        )
    restarted = time.time()
    with demo_bot(backends.settings, job, tmp_path / "second.log"):
        # Both processes' portfolios are in Prometheus: a plain sum would count two.
        both = wait_until(
            lambda: _exactly(2, backends.prometheus(portfolios)),
            "the restarted process's portfolio beside the old one's",
            timeout=120,
        )
        (second,) = [s for s in both if s["metric"]["instance"] != first["metric"]["instance"]]
        single = float(second["value"][1])
        assert sum(float(s["value"][1]) for s in both) > 1.8 * single
        panel = _panel_query("Portfolio value", job)
        # The panel, now and at every second since the restart: one portfolio.
        (now,) = backends.prometheus(panel)
        assert float(now["value"][1]) == pytest.approx(single, rel=0.05)
        history = _values(backends, panel, restarted - 30, time.time())
        assert history
        assert max(history) < 1.2 * single, f"the panel doubled during the restart: {history}"
        # The rules see one bot too: once recorded, only the new process's drawdown is left.
        kept = (
            f'trading_current_drawdown{{job="{job}"}} unless on (job, instance) '
            "job_instance:trading_bot_heartbeat_timestamp_seconds:superseded"
        )
        new = second["metric"]["instance"]
        wait_until(
            lambda: [s["metric"]["instance"] for s in backends.prometheus(kept)] == [new],
            "the old process recorded as superseded, the new one's drawdown kept",
            timeout=90,
        )
        superseded = backends.prometheus(
            f'job_instance:trading_bot_heartbeat_timestamp_seconds:superseded{{job="{job}"}}'
        )
        assert [s["metric"]["instance"] for s in superseded] == [first["metric"]["instance"]]


def _exactly(count: int, found: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return found if len(found) == count else None
