"""Span, span event and log attribute names that one package writes and another reads: defined
once, here.

The instrumentations (:mod:`tbmon.instrumentation.ccxt`, :mod:`~tbmon.instrumentation.freqtrade`,
:mod:`~tbmon.instrumentation.trading`, the demo bot) write them and the processors
(:mod:`tbmon.processors.execution`, :mod:`~tbmon.processors.trading_analytics`) read them, or
the other way round for the ``execution.*`` marks; all import them from this module, which
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
#: A closed trade's realised profit or loss in USD: on a log record or a span event, the
#: trading-analytics processor derives win rate and profit factor from it.
TRADE_PNL_USD: Final = "trade.pnl_usd"

#: Span event names: a closed trade (with TRADE_*), an order filled or canceled (with ORDER_*).
TRADE_CLOSED_EVENT: Final = "trade.closed"
ORDER_FILLED_EVENT: Final = "order.filled"
ORDER_CANCELED_EVENT: Final = "order.canceled"
#: The span of an order's later fill or cancel (freqtrade's instrumentor: the child of the order's
#: ``create_order`` span), with an ORDER_FILLED_EVENT that may carry ORDER_EXPECTED_PRICE and
#: ORDER_AVERAGE_PRICE: execution quality measures its slippage there unless the placement's own
#: span carried the fill.
ORDER_FILL_SPAN: Final = "order_fill"

#: The execution-quality processor's marks on an order span (read by dashboards and tests).
EXECUTION_LATENCY_MS: Final = "execution.latency_ms"
EXECUTION_SLOW: Final = "execution.slow"
EXECUTION_SLIPPAGE_BPS: Final = "execution.slippage_bps"
EXECUTION_SLIPPAGE_BREACH: Final = "execution.slippage_breach"
#: What every mark's name starts with (a retried batch's old marks are found by it).
EXECUTION_PREFIX: Final = "execution."

#: The bot iteration span's: the framework and its running count of iterations.
BOT_FRAMEWORK: Final = "bot.framework"
BOT_ITERATION: Final = "bot.iteration"
BOT_DRY_RUN: Final = "bot.dry_run"
