"""Span attribute names that the bot side sets and the pipeline reads: defined once, here.

The instrumentations (:mod:`tbmon.instrumentation.freqtrade`) write them and the processors
(:mod:`tbmon.processors.execution`) read them, so both import them from this module, which
depends on nothing. An order's span (``create_order``) carries the ``order.*`` ones; the
execution-quality processor compares :data:`ORDER_EXPECTED_PRICE` (or :data:`ORDER_PRICE`)
with :data:`ORDER_AVERAGE_PRICE` for slippage.
"""

from __future__ import annotations

from typing import Final

EXCHANGE: Final = "exchange"
SYMBOL: Final = "symbol"
SIDE: Final = "side"
STRATEGY: Final = "strategy"

ORDER_ID: Final = "order.id"
ORDER_TYPE: Final = "order.type"
ORDER_AMOUNT: Final = "order.amount"
ORDER_STATUS: Final = "order.status"
ORDER_FILLED: Final = "order.filled"
#: The limit price the order was sent with (absent for market orders).
ORDER_PRICE: Final = "order.price"
#: The price the bot decided on (freqtrade: its proposed rate), the reference for slippage.
ORDER_EXPECTED_PRICE: Final = "order.expected_price"
#: The average fill price.
ORDER_AVERAGE_PRICE: Final = "order.average_price"
#: True for an order a framework simulated (freqtrade's dry run): no exchange saw it.
ORDER_DRY_RUN: Final = "order.dry_run"

TRADE_ID: Final = "trade.id"
TRADE_PNL_USD: Final = "trade.pnl_usd"

#: The bot iteration span's: the framework and its running count of iterations.
BOT_FRAMEWORK: Final = "bot.framework"
BOT_ITERATION: Final = "bot.iteration"
BOT_DRY_RUN: Final = "bot.dry_run"
