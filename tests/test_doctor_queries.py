"""The PromQL behind `tbmon doctor`'s collector checks, evaluated by Prometheus's own engine
(promtool's `promql_expr_test`) on recorded series: the collector's first items and first loss
count (a counter born at its value, which ``increase`` alone misses), and a counter that stood
still through a scrape gap longer than the window is neither new items nor a new loss."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tbmon.stack import binaries
from tbmon.stack.doctor import COLLECTOR_JOB, lost_query, received_query

COLLECTOR = f'job="{COLLECTOR_JOB}", instance="c:8888"'
SPANS = f'otelcol_receiver_accepted_spans{{{COLLECTOR}, receiver="otlp", transport="grpc"}}'
POINTS = f'otelcol_receiver_accepted_metric_points{{{COLLECTOR}, receiver="otlp"}}'
JAEGER = 'exporter="otlp_grpc/jaeger"'
SEND_FAILED = f"otelcol_exporter_send_failed_spans{{{COLLECTOR}, {JAEGER}}}"
ENQUEUE_FAILED = f"otelcol_exporter_enqueue_failed_log_records{{{COLLECTOR}, {JAEGER}}}"
UP = f"up{{{COLLECTOR}}}"

#: Scrapes every 15 s for 20 minutes.
STEPS = 80


def _promtool_eval(
    tmp_path: Path, series: dict[str, str], cases: list[tuple[str, str, list[dict[str, Any]]]]
) -> subprocess.CompletedProcess[str]:
    """Runs promtool on ``series`` (selector -> promtool values) with ``cases`` (expression,
    eval time, expected samples)."""
    document = {
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": at, "exp_samples": samples}
                    for expr, at, samples in cases
                ],
            }
        ],
    }
    test = tmp_path / "doctor_test.yml"
    test.write_text(yaml.safe_dump(document, sort_keys=False))
    program = str(binaries.PROMTOOL.path(Path()))
    return subprocess.run(
        [program, "test", "rules", test.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )


def _received(kind: str, value: float) -> dict[str, Any]:
    return {"labels": f'{{data_type="{kind}"}}', "value": value}


def test_the_collectors_first_items_count_as_received(tmp_path: Path) -> None:
    """Spans first arrive at 7 min: their counter is born at 50 and never moves again, so
    ``increase`` sees 0; metric points flow at 10 per scrape throughout."""
    series = {
        UP: f"1x{STEPS}",
        SPANS: f"_x28 50x{STEPS - 28}",
        POINTS: f"0+10x{STEPS}",
    }
    result = _promtool_eval(
        tmp_path,
        series,
        [
            (received_query(), "8m", [_received("spans", 50), _received("metric_points", 200)]),
            # After the window, the spans' counter stood still: nothing new.
            (received_query(), "13m", [_received("spans", 0), _received("metric_points", 200)]),
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_scrape_gap_longer_than_the_window_is_not_new_items(tmp_path: Path) -> None:
    """Prometheus down from 5 to 17 min (no samples of anything, ``up`` included): the counter
    that stood at 1,000 before comes back at 1,000. ``x unless x offset 5m`` counted it as
    1,000 items received at 18 min."""
    series = {UP: "1x20 _x47 1x12", SPANS: "1000x20 _x47 1000x12"}
    result = _promtool_eval(tmp_path, series, [(received_query(), "18m", [_received("spans", 0)])])
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_exporters_first_loss_is_found_and_a_loss_long_past_is_not(tmp_path: Path) -> None:
    """The Jaeger exporter gives up on 102 spans at 7 min: its failure counter is born at 102
    (``increase`` alone saw nothing). The logs exporter's queue refused 500 records long before
    the window, and nothing since."""
    series = {
        UP: f"1x{STEPS}",
        SEND_FAILED: f"_x28 102x{STEPS - 28}",
        ENQUEUE_FAILED: f"500x{STEPS}",
    }
    lost = {"labels": f'{{job="{COLLECTOR_JOB}", {JAEGER}, stage="send"}}', "value": 102}
    result = _promtool_eval(
        tmp_path,
        series,
        [(lost_query(), "8m", [lost]), (lost_query(), "13m", [])],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_queries_would_fail_on_a_wrong_count(tmp_path: Path) -> None:
    """The harness itself can fail: the same first items, expected as 0, are refused."""
    series = {UP: f"1x{STEPS}", SPANS: f"_x28 50x{STEPS - 28}"}
    result = _promtool_eval(tmp_path, series, [(received_query(), "8m", [_received("spans", 0)])])
    assert result.returncode != 0
    assert "spans" in result.stdout + result.stderr
