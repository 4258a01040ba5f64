"""The example plugin, tested with tbmon's test kit (real SDK spans, the host's isolation)."""

from __future__ import annotations

from tbmon_processor_example import DropHealthChecks

from tbmon.processors import otlp
from tbmon.processors.testing import record, run, span, spans_batch


def test_health_check_spans_are_dropped_and_the_rest_kept() -> None:
    with record() as sdk:
        with sdk.tracer.start_as_current_span("GET", attributes={"url.path": "/health"}):
            pass
        with sdk.tracer.start_as_current_span("create_order", attributes={"symbol": "BTC/USDT"}):
            pass
    result = run(DropHealthChecks(), sdk.spans())
    assert result.error is None
    assert [s.name for _, _, s in otlp.spans(result.message())] == ["create_order"]


def test_batches_without_health_checks_pass_as_they_came() -> None:
    batch = spans_batch(span("fetch_ticker", {"url.path": "/api/v3/ticker"}))
    result = run(DropHealthChecks(), batch)
    assert result.batch.raw == batch.raw


def test_paths_are_configurable() -> None:
    batch = spans_batch(span("GET", {"http.target": "/live"}), span("GET", {"url.path": "/health"}))
    result = run(DropHealthChecks(paths="/live"), batch)
    kept = [otlp.attributes(s.attributes) for _, _, s in otlp.spans(result.message())]
    assert kept == [{"url.path": "/health"}]
