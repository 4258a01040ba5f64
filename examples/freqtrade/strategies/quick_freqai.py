"""A FreqAI strategy small enough to train in seconds: plain freqtrade, no monitoring code.

The model (``--freqaimodel``, e.g. ``LightGBMRegressor`` from ``freqtrade[freqai]``) learns the
mean close of the next candles relative to this one from three features; the strategy enters
when it predicts a rise and leaves on a predicted fall. With ``freqai`` in the config (see
``tests/test_freqtrade_freqai.py`` for a minimal one) each prediction is timed by tbmon's
freqtrade instrumentation as ``model_inference_duration_seconds{model="LightGBMRegressor"}``.
Made for showing and testing monitoring, never for trading money.
"""

from __future__ import annotations

from typing import Any

from freqtrade.strategy import IStrategy
from pandas import DataFrame


class QuickFreqAI(IStrategy):  # type: ignore[misc]
    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 100.0}  # noqa: RUF012 - freqtrade's class attribute: exits decide
    stoploss = -0.99
    startup_candle_count = 20
    process_only_new_candles = True

    def feature_engineering_expand_all(
        self, dataframe: DataFrame, period: int, metadata: dict[str, Any], **kwargs: Any
    ) -> DataFrame:
        close = dataframe["close"]
        dataframe["%-roc-period"] = close.pct_change(period)
        dataframe["%-sma-ratio-period"] = close / close.rolling(period).mean()
        return dataframe

    def feature_engineering_expand_basic(
        self, dataframe: DataFrame, metadata: dict[str, Any], **kwargs: Any
    ) -> DataFrame:
        dataframe["%-pct-change"] = dataframe["close"].pct_change()
        return dataframe

    def set_freqai_targets(
        self, dataframe: DataFrame, metadata: dict[str, Any], **kwargs: Any
    ) -> DataFrame:
        ahead = int(self.freqai_info["feature_parameters"]["label_period_candles"])
        close = dataframe["close"]
        dataframe["&-s_close"] = close.shift(-ahead).rolling(ahead).mean() / close - 1
        return dataframe

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        return self.freqai.start(dataframe, metadata, self)

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["enter_long"] = (
            (dataframe["do_predict"] == 1) & (dataframe["&-s_close"] > 0)
        ).astype(int)
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["exit_long"] = (dataframe["&-s_close"] < 0).astype(int)
        return dataframe
