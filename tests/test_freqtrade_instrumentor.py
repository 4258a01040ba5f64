"""The freqtrade instrumentor's contract on freqtrade's real classes, without a running bot.

Patched only on the freqtrade release it knows, restored by uninstrument, one warning naming an
unknown release; an error inside a hook never reaches freqtrade, and is counted. (The end to end
behaviour, a real dry run through the stack, is tests/test_freqtrade.py.)
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import SimpleNamespace
from typing import Any

import freqtrade
import pytest
import wrapt
from freqtrade.exchange.exchange import Exchange
from freqtrade.freqtradebot import FreqtradeBot
from freqtrade.rpc.rpc_manager import RPCManager
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from support import INSTRUMENT

from tbmon.instrumentation.freqtrade import (
    HOOK_ERRORS,
    ITERATION_SPAN,
    SUPPORTED_VERSIONS,
    FreqtradeInstrumentor,
)

#: The methods patched, as (class, name).
PATCHED = ((FreqtradeBot, "process"), (RPCManager, "send_msg"), (Exchange, "create_order"))


def methods() -> list[Any]:
    return [vars(owner)[name] for owner, name in PATCHED]


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def counted(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return {
            tuple(sorted((point.attributes or {}).items())): point.value
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
            if isinstance(point, NumberDataPoint)
        }


@pytest.fixture
def telemetry() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    instrumentor = FreqtradeInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        yield Recorded(spans, reader)
    finally:
        instrumentor.uninstrument()


def test_freqtrade_is_patched_and_uninstrument_restores_it() -> None:
    before = methods()
    assert not any(isinstance(method, wrapt.FunctionWrapper) for method in before)
    instrumentor = FreqtradeInstrumentor()
    instrumentor.instrument()
    try:
        assert all(isinstance(method, wrapt.FunctionWrapper) for method in methods())
    finally:
        instrumentor.uninstrument()
    assert methods() == before


def test_an_unknown_release_is_left_alone_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(freqtrade, "__version__", "2099.1")
    monkeypatch.setattr(FreqtradeInstrumentor, "_warned", None)
    instrumentor = FreqtradeInstrumentor()
    with caplog.at_level(logging.WARNING, logger="tbmon.instrumentation.freqtrade"):
        instrumentor.instrument()
    try:
        assert not any(isinstance(method, wrapt.FunctionWrapper) for method in methods())
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1
        assert "freqtrade 2099.1" in warnings[0]
        assert all(version in warnings[0] for version in SUPPORTED_VERSIONS)
    finally:
        instrumentor.uninstrument()


class FreqtradesOwnError(Exception):
    """What freqtrade's own code raises inside an iteration."""


def test_an_error_in_a_hook_never_reaches_freqtrade_and_is_counted(
    telemetry: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    def reload_markets() -> None:
        raise FreqtradesOwnError("markets")

    # A bot whose iteration fails in freqtrade's own first step, and whose state our hooks
    # cannot read (no wallets, no whitelist): freqtrade's error comes out unchanged.
    bot = SimpleNamespace(
        exchange=SimpleNamespace(reload_markets=reload_markets, id="binance"),
        strategy=SimpleNamespace(get_strategy_name=lambda: "S", timeframe="1m"),
        config={"stake_currency": "USDT", "dry_run": True},
    )
    with caplog.at_level(logging.ERROR, logger="tbmon.instrumentation.freqtrade"):
        for _ in range(2):
            with pytest.raises(FreqtradesOwnError):
                FreqtradeBot.process(bot)
    assert telemetry.counted(HOOK_ERRORS + "") == {
        (("hook", "portfolio"), ("instrumentation", "freqtrade")): 2
    }
    assert len([r for r in caplog.records if "portfolio" in r.getMessage()]) == 1  # once
    (first, _) = telemetry.spans.get_finished_spans()
    assert first.name == ITERATION_SPAN
    assert first.status.status_code is StatusCode.ERROR
    assert str((first.events[0].attributes or {})["exception.type"]).endswith("FreqtradesOwnError")


def test_a_process_without_freqtrade_imports_none_of_it() -> None:
    code = "import sys; print('freqtrade' in sys.modules)"
    done = subprocess.run(
        [INSTRUMENT, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={f"OTEL_{signal}_EXPORTER": "none" for signal in ("TRACES", "METRICS", "LOGS")},
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_instrumentor_is_an_opentelemetry_entry_point() -> None:
    (found,) = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "freqtrade"
    ]
    assert found.load() is FreqtradeInstrumentor
