"""The synchronous instruments that more than one part of the instrumentation records into.

Each is created on tbmon's meter, so the ccxt instrumentation and :class:`TradingMetrics` feed
the same metric stream. Names are the seed's, spelled as Prometheus shows them: a histogram with
unit ``s`` keeps its ``_seconds`` name (the collector adds no second suffix), and the counter
``trading_orders`` appears as ``trading_orders_total``.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

from tbmon.version import __version__

METER_NAME = "tbmon.instrumentation"

API_REQUEST_DURATION = "api_request_duration_seconds"
MODEL_INFERENCE_DURATION = "model_inference_duration_seconds"
ORDERS = "trading_orders"
REJECTED_VALUES = "tbmon_trading_values_rejected"

#: Exchange round trips: 5 ms to 10 s (SlowAPIResponses fires on a p95 above 1 s).
API_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Model inference: 0.5 ms to 2.5 s.
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def meter(meter_provider: MeterProvider | None = None) -> Meter:
    """tbmon's meter on ``meter_provider`` (default: the global one)."""
    provider = meter_provider or metrics.get_meter_provider()
    return provider.get_meter(METER_NAME, __version__)


def api_request_duration(meter_provider: MeterProvider | None = None) -> Histogram:
    """``api_request_duration_seconds{exchange, endpoint, status}``: one exchange API call."""
    return meter(meter_provider).create_histogram(
        API_REQUEST_DURATION,
        unit="s",
        description="Duration of exchange API calls, by exchange, endpoint and outcome.",
        explicit_bucket_boundaries_advisory=API_REQUEST_BUCKETS,
    )


def model_inference_duration(meter_provider: MeterProvider | None = None) -> Histogram:
    """``model_inference_duration_seconds{model}``: one prediction."""
    return meter(meter_provider).create_histogram(
        MODEL_INFERENCE_DURATION,
        unit="s",
        description="Duration of one model prediction, by model.",
        explicit_bucket_boundaries_advisory=INFERENCE_BUCKETS,
    )


def orders(meter_provider: MeterProvider | None = None) -> Counter:
    """``trading_orders_total{strategy, symbol, side, exchange, status}``: orders placed."""
    return meter(meter_provider).create_counter(
        ORDERS, description="Orders sent to an exchange, by outcome (filled, open, failed...)."
    )


def rejected_values(meter_provider: MeterProvider | None = None) -> Counter:
    """``tbmon_trading_values_rejected_total{call}``: values a recording call could not use."""
    return meter(meter_provider).create_counter(
        REJECTED_VALUES,
        description="Values a TradingMetrics call ignored (NaN, a non-positive price...), by call.",
    )
