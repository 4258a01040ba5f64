"""FreqAI, where a freqtrade bot uses it: a real model's predictions timed with zero code.

freqtrade's own backtesting with FreqAI (``--freqaimodel LightGBMRegressor``, from
``freqtrade[freqai]``: lightgbm, scikit-learn, datasieve) on the example strategy
``examples/freqtrade/strategies/quick_freqai.py``, which holds no tbmon code, over 5-minute
candles taken from the local exchange (about 3.5 days; the model trains on two and predicts the
last one, in about ten seconds). The freqtrade instrumentor is active in this process with an
in-memory meter provider: the model's predictions come out as
``model_inference_duration_seconds{model="LightGBMRegressor"}``, timed around the model's own
``predict``, and ``uninstrument`` restores it. FreqAI keeps no figure of accuracy of its own, so
``agent_prediction_accuracy`` stays empty (the Agent Performance dashboard says so).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freqtrade.commands.arguments import Arguments
from freqtrade.commands.optimize_commands import start_backtesting
from freqtrade.data.converter import ohlcv_to_dataframe
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType
from freqtrade.freqai.base_models.BaseRegressionModel import BaseRegressionModel
from freqtrade.persistence.usedb_context import enable_database_use
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from support import CHECKOUT

from tbmon.instrumentation.freqtrade import FreqtradeInstrumentor
from tbmon.standins.exchange import binance_client
from tbmon.standins.exchange_tool import ccxt_urls, running

EXAMPLE = CHECKOUT / "examples/freqtrade"
PAIR, TIMEFRAME, MODEL = "BTC/USDT", "5m", "LightGBMRegressor"
#: The candles the local exchange serves at most in one answer: 1000 x 5 min, about 3.5 days.
CANDLES = 1000


def freqai_config(exchange_url: str) -> dict[str, Any]:
    """A minimal FreqAI config: one pair, two days of training, one day of predictions."""
    return {
        "max_open_trades": 1,
        "stake_currency": "USDT",
        "stake_amount": 100,
        "dry_run": True,
        "dry_run_wallet": 1000,
        "timeframe": TIMEFRAME,
        "trading_mode": "spot",
        "entry_pricing": {"price_side": "same"},
        "exit_pricing": {"price_side": "same"},
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "ccxt_config": {"urls": {"api": ccxt_urls(exchange_url)}},
            "pair_whitelist": [PAIR],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "dataformat_ohlcv": "feather",
        "freqai": {
            "enabled": True,
            "identifier": "tbmon-test",
            "train_period_days": 2,
            "backtest_period_days": 1,
            "live_retrain_hours": 0,
            "purge_old_models": 2,
            "feature_parameters": {
                "include_timeframes": [TIMEFRAME],
                "include_corr_pairlist": [],
                "label_period_candles": 6,
                "include_shifted_candles": 0,
                "indicator_periods_candles": [6, 12],
                "DI_threshold": 0,
                "weight_factor": 0,
                "principal_component_analysis": False,
                "use_SVM_to_remove_outliers": False,
            },
            "data_split_parameters": {"test_size": 0.25, "random_state": 1, "shuffle": False},
            "model_training_parameters": {"n_estimators": 20, "verbosity": -1, "n_jobs": 1},
        },
    }


@pytest.fixture
def telemetry() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    instrumentor = FreqtradeInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        yield reader
    finally:
        instrumentor.uninstrument()


def inference_points(reader: InMemoryMetricReader) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "model_inference_duration_seconds"
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    ]


def test_a_freqai_model_predictions_are_timed(
    telemetry: InMemoryMetricReader, tmp_path: Path
) -> None:
    unpatched = vars(BaseRegressionModel)["predict"]
    userdir, datadir = tmp_path / "user", tmp_path / "data"
    with running() as url:
        client = binance_client(url)
        candles = client.fetch_ohlcv(PAIR, TIMEFRAME, limit=CANDLES)
        frame = ohlcv_to_dataframe(candles, TIMEFRAME, PAIR, fill_missing=False)
        get_datahandler(datadir, "feather").ohlcv_store(PAIR, TIMEFRAME, frame, CandleType.SPOT)
        # Predict the last day; the two before it train the model.
        end = int(frame["date"].iloc[-1].timestamp())
        config = tmp_path / "config.json"
        config.write_text(json.dumps(freqai_config(url)))
        userdir.mkdir()
        args = Arguments(
            [
                *("backtesting", "-c", str(config), "--userdir", str(userdir)),
                *("--datadir", str(datadir), "--strategy-path", str(EXAMPLE / "strategies")),
                *("--strategy", "QuickFreqAI", "--freqaimodel", MODEL),
                *("--timerange", f"{end - 86_400}-{end}", "--export", "none"),
            ]
        ).get_parsed_arg()
        try:
            start_backtesting(args)
        finally:
            # Backtesting switches freqtrade's persistence to memory for the whole process
            # (Trade.use_db = False): switch it back, or the next in-process bot's
            # Trade.get_trades() raises (seen: tests/test_freqtrade_orders.py after this one).
            enable_database_use()

    (point,) = [p for p in inference_points(telemetry) if (p.attributes or {}) == {"model": MODEL}]
    # One prediction per backtest window (one day): the model's own predict, timed.
    assert point.count >= 1
    assert 0 < point.sum < 60
    assert vars(BaseRegressionModel)["predict"] is not unpatched  # wrapped while instrumented
    FreqtradeInstrumentor().uninstrument()
    assert vars(BaseRegressionModel)["predict"] is unpatched
