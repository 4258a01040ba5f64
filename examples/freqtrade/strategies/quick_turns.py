"""A freqtrade strategy that trades within a minute: plain freqtrade, no monitoring code.

It enters every whitelisted pair as soon as a slot is free and exits after ``HOLD_SECONDS``, so
a dry run on 1-minute candles opens and closes trades (wins and losses, by the market's walk)
within its first minute. Made for showing and testing monitoring, never for trading money.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy
from pandas import DataFrame

HOLD_SECONDS = 20


class QuickTurns(IStrategy):  # type: ignore[misc]
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 100.0}  # noqa: RUF012 - never by return on investment: custom_exit decides
    stoploss = -0.99
    startup_candle_count = 1
    order_types = {  # noqa: RUF012 - freqtrade's class attribute
        "entry": "limit",
        "exit": "market",
        "stoploss": "market",
        "stoploss_on_exchange": False,
    }

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe

    def custom_exit(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        **kwargs: Any,
    ) -> str | None:
        held = (current_time - trade.open_date_utc).total_seconds()
        return "held" if held >= HOLD_SECONDS else None
