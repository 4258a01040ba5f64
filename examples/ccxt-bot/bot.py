"""A plain ccxt bot with no monitoring code at all: tbmon sees its trading from its ccxt calls.

    opentelemetry-instrument python examples/ccxt-bot/bot.py --url http://127.0.0.1:PORT

Each iteration it reads the balance and the tickers, buys or sells one symbol at market, and
now and then rests a limit order below the market and cancels it the next time round. There is
no tbmon or OpenTelemetry import below: under ``opentelemetry-instrument`` the ccxt calls
become spans and ``api_request_duration_seconds``, the orders ``trading_orders_total`` (filled,
canceled, failed), and the balance valued at the tickers' prices the portfolio value, positions,
leverage, concentration and, as history builds, returns, drawdown, Sharpe ratio and VaR.

It talks to a Binance-format REST API at ``--url`` (the local exchange stand-in): the API key and
secret come from EXCHANGE_API_KEY and EXCHANGE_API_SECRET. It prints one JSON line per iteration
with what it made of its own answers (its portfolio value, positions and calls), for comparison.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import time
from typing import Any

import ccxt

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
QUOTE = "USDT"
ORDER_USD = 200.0

logger = logging.getLogger("ccxt-bot")


def connect(url: str) -> Any:
    """A ``ccxt.binance`` whose REST URLs point at ``url``, spot markets only."""
    exchange = ccxt.binance(
        {
            "apiKey": os.environ.get("EXCHANGE_API_KEY", ""),
            "secret": os.environ.get("EXCHANGE_API_SECRET", ""),
            "timeout": 5000,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    base = url.rstrip("/")
    exchange.urls["api"] = {
        name: base + "/" + address.split("/", 3)[-1]
        for name, address in exchange.urls["api"].items()
    }
    return exchange


def worth(exchange: Any, balance: dict[str, Any], tickers: dict[str, Any]) -> dict[str, Any]:
    """What the bot makes of its own answers: value in USDT, positions above the minimum order."""
    value, positions = 0.0, {}
    for currency, amount in balance["total"].items():
        if not amount:
            continue
        if currency == QUOTE:
            value += amount
            continue
        symbol = f"{currency}/{QUOTE}"
        if symbol in tickers:
            held = amount * tickers[symbol]["last"]
            value += held
            if held >= exchange.markets[symbol]["limits"]["cost"]["min"]:
                positions[symbol] = held
    return {"value": value, "positions": positions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the exchange's REST base URL")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between iterations")
    parser.add_argument("--linger", action="store_true", help="then wait for stdin to close")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    exchange = connect(arguments.url)
    exchange.load_markets()
    calls, failed = 1, 0
    resting: tuple[str, str] | None = None
    sides = itertools.cycle(("buy", "buy", "sell"))
    for iteration in range(arguments.iterations):
        started = time.monotonic()
        balance = exchange.fetch_balance()
        tickers = exchange.fetch_tickers(list(SYMBOLS))
        calls += 2
        print(json.dumps({"iteration": iteration, **worth(exchange, balance, tickers)}), flush=True)
        if resting is not None:
            try:
                exchange.cancel_order(*resting)
            except ccxt.BaseError as error:
                logger.warning("cancel failed: %s", error)
            calls, resting = calls + 1, None
        symbol = SYMBOLS[iteration % len(SYMBOLS)]
        price = tickers[symbol]["last"]
        try:
            if iteration % 4 == 3:
                order = exchange.create_order(
                    symbol, "limit", "buy", ORDER_USD / price, round(price * 0.98, 2)
                )
                resting = (order["id"], symbol)
            else:
                side = next(sides)
                order = exchange.create_order(symbol, "market", side, ORDER_USD / price)
            logger.info("order %s: %s %s", order["id"], order["side"], symbol)
        except ccxt.BaseError as error:  # the exchange refused it, or failed: trade on
            logger.error("order failed: %s", error)
            failed += 1
        calls += 1
        time.sleep(max(0.0, arguments.interval - (time.monotonic() - started)))
    # A last look, so the final figures rest on the latest balance and prices.
    final = worth(exchange, exchange.fetch_balance(), exchange.fetch_tickers(list(SYMBOLS)))
    calls += 2
    print(json.dumps({"done": True, "calls": calls, "failed": failed, **final}), flush=True)
    if arguments.linger:
        sys.stdin.read()


if __name__ == "__main__":
    main()
