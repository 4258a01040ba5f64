"""The ``tbmon_system`` instrumentor: the seed's system gauges, the heartbeat, and the latency
probe to the exchange, measured against a real TCP listener on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from support import wait_until

from tbmon.instrumentation.settings import get_settings
from tbmon.instrumentation.system import HEARTBEAT, NETWORK_LATENCY, SystemMetricsInstrumentor

Points = dict[str, list[tuple[dict[str, str], float]]]


def _points(reader: InMemoryMetricReader) -> Points:
    found: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)  # gauges only
                    labels = {k: str(v) for k, v in (point.attributes or {}).items()}
                    found.setdefault(metric.name, []).append((labels, float(point.value)))
    return found


@pytest.fixture
def exchange() -> Iterator[socket.socket]:
    """A listening TCP socket standing where the exchange's API would be."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def instrumented(
    exchange: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InMemoryMetricReader]:
    monkeypatch.setenv("EXCHANGE_API_URL", f"http://127.0.0.1:{exchange.getsockname()[1]}/api")
    monkeypatch.setenv("TBMON_EXCHANGE", "binance")
    monkeypatch.setenv("TBMON_LATENCY_PROBE_INTERVAL", "0.1")
    get_settings.cache_clear()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = SystemMetricsInstrumentor()
    instrumentor.instrument(meter_provider=provider)
    try:
        yield reader
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        provider.shutdown()
        get_settings.cache_clear()


def test_system_gauges_and_the_heartbeat(instrumented: InMemoryMetricReader) -> None:
    before = time.time()
    points = _points(instrumented)
    for name in (
        "system_cpu_usage_percent",
        "system_memory_usage_percent",
        "system_disk_usage_percent",
    ):
        ((labels, value),) = points[name]
        assert labels == {}
        assert 0.0 <= value <= 100.0, name
    ((_, heartbeat),) = points[HEARTBEAT]
    assert before <= heartbeat <= time.time()


def test_latency_is_the_connect_time_to_the_exchange_and_goes_when_it_does(
    instrumented: InMemoryMetricReader, exchange: socket.socket
) -> None:
    ((labels, latency),) = wait_until(
        lambda: _points(instrumented).get(NETWORK_LATENCY), "a latency sample"
    )
    assert labels == {"exchange": "binance"}
    assert 0.0 < latency < 1000.0  # milliseconds, over loopback
    exchange.close()  # the exchange goes away: the probe fails, its last sample goes stale
    wait_until(
        lambda: NETWORK_LATENCY not in _points(instrumented), "the latency sample to go stale"
    )


def test_uninstrument_silences_the_gauges_and_stops_the_probe(
    instrumented: InMemoryMetricReader,
) -> None:
    probe = SystemMetricsInstrumentor._probe
    assert probe is not None
    SystemMetricsInstrumentor().uninstrument()
    points = _points(instrumented)
    assert HEARTBEAT not in points
    assert NETWORK_LATENCY not in points
    assert not probe._thread.is_alive()
