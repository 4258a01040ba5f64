"""tbmon's bot-side instrumentation: ``opentelemetry-instrument python bot.py`` is the set-up.

With tbmon installed, ``opentelemetry-instrument`` loads the tbmon distro and configurator
(OTLP to the local collector, metrics every 2 s, logs with trace ids), the ccxt instrumentation
(a span and an ``api_request_duration_seconds`` sample per exchange call) and the system
metrics. What only the bot knows, it reports through :func:`trading_metrics`::

    from tbmon.instrumentation import trading_metrics

    metrics = trading_metrics()
    metrics.record_portfolio_value(101_250.0)
    metrics.record_trade(pnl_usd=12.5, trade_id="t-42", symbol="BTC/USDT")

A metric of its own goes on tbmon's meter: ``meter().create_gauge("my_custom_metric")``.
"""

from tbmon.instrumentation.instruments import meter
from tbmon.instrumentation.trading import TradingMetrics, trading_metrics

__all__ = ["TradingMetrics", "meter", "trading_metrics"]
