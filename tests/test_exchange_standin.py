"""The local exchange as a tool: `tbmon exchange serve`, for real bots with only URLs changed.

ccxt's binance with its default options (futures markets, currencies and margin pairs with
keys) and ccxt.pro's kline and ticker streams work against it, as Binance's wire format; the
freqtrade example's config points at it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import httpx
import pytest
import websockets
from support import CHECKOUT, wait_until

from tbmon.ports import free_ports
from tbmon.stack.supervisor import stop
from tbmon.standins.exchange import TEST_API_KEY, TEST_API_SECRET
from tbmon.standins.exchange_tool import DEFAULT_PORT, ccxt_urls


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tbmon exchange serve` on a free port, as a user starts it."""
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("exchange") / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tbmon", "exchange", "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/_control/health", timeout=2).json()["ok"],
            f"tbmon exchange serve ({log})",
        )
        yield url
    finally:
        stop(process, grace=10)


def requests(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{url}/_control/requests", timeout=10).json()
    return found


def test_ccxt_binance_with_default_options_needs_only_the_urls(served: str) -> None:
    httpx.post(f"{served}/_control/reset", timeout=10)
    exchange = ccxt.binance(
        {"urls": {"api": ccxt_urls(served)}, "apiKey": TEST_API_KEY, "secret": TEST_API_SECRET}
    )
    markets = ["BTC/USDT", "ETH/BTC", "ETH/USDT", "SOL/BTC", "SOL/USDT"]
    assert sorted(exchange.load_markets()) == markets
    assert exchange.fetch_balance()["USDT"]["free"] == 100_000.0
    paths = {r["path"]: r["status"] for r in requests(served)}
    # What ccxt loads by default, all answered: futures markets, currencies, margin pairs.
    for path in (
        "fapi/v1/exchangeInfo",
        "dapi/v1/exchangeInfo",
        "sapi/v1/capital/config/getall",
        "sapi/v1/margin/allPairs",
        "exchangeInfo",
        "account",
    ):
        assert paths[path] == 200, path
    bad = ccxt.binance({"urls": {"api": ccxt_urls(served)}, "apiKey": TEST_API_KEY, "secret": "x"})
    with pytest.raises(ccxt.AuthenticationError):  # signed sapi calls are checked as Binance's
        bad.sapi_get_capital_config_getall()


def test_ccxt_pro_streams_candles_and_tickers(served: str) -> None:
    rest = ccxt.binance({"urls": {"api": ccxt_urls(served)}})
    (last_rest,) = rest.fetch_ohlcv("BTC/USDT", "1m", limit=1)

    async def watch() -> tuple[list[list[Any]], dict[str, Any]]:
        pro = ccxt.pro.binance({"urls": {"api": ccxt_urls(served)}})
        try:
            candles = await pro.watch_ohlcv("BTC/USDT", "1m")
            candles = await pro.watch_ohlcv("BTC/USDT", "1m")  # the next push
            ticker = await pro.watch_ticker("ETH/USDT")
            return candles, ticker
        finally:
            await pro.close()

    candles, ticker = asyncio.run(asyncio.wait_for(watch(), 30))
    # The current candle of the REST klines, a push later: the same minute (or the next, when
    # the minute turned meanwhile on a busy machine), the price near.
    assert candles[-1][0] in (last_rest[0], last_rest[0] + 60_000)
    assert candles[-1][4] == pytest.approx(last_rest[4], rel=0.01)
    assert ticker["symbol"] == "ETH/USDT"
    assert ticker["last"] == pytest.approx(3200, rel=0.2)


def test_streams_in_binances_raw_and_combined_formats(served: str) -> None:
    ws = "ws" + served.removeprefix("http")

    async def exchange_messages() -> tuple[Any, ...]:
        async with websockets.connect(f"{ws}/ws") as raw:
            await raw.send(
                json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": 7})
            )
            reply = json.loads(await raw.recv())
            event = json.loads(await raw.recv())
            await raw.send(json.dumps({"method": "SUBSCRIBE", "params": ["nope@x"], "id": 8}))
            error = json.loads(await raw.recv())
            while "id" not in error:  # pushes may come first
                error = json.loads(await raw.recv())
        async with websockets.connect(f"{ws}/stream?streams=solusdt@kline_1m") as combined:
            wrapped = json.loads(await combined.recv())
        return reply, event, error, wrapped

    reply, event, error, wrapped = asyncio.run(asyncio.wait_for(exchange_messages(), 30))
    assert reply == {"result": None, "id": 7}
    assert event["e"] == "24hrTicker"
    assert event["s"] == "BTCUSDT"
    assert float(event["b"]) < float(event["a"])
    assert error["id"] == 8
    assert "nope@x" in error["error"]["msg"]
    assert wrapped["stream"] == "solusdt@kline_1m"
    assert wrapped["data"]["e"] == "kline"
    assert wrapped["data"]["k"]["i"] == "1m"
    assert any(r["method"] == "WS" for r in requests(served))


def test_the_urls_command_and_the_freqtrade_example_agree() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "tbmon", "exchange", "urls"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    default = ccxt_urls(f"http://127.0.0.1:{DEFAULT_PORT}")
    assert json.loads(printed.stdout) == default
    config = json.loads(Path(CHECKOUT / "examples/freqtrade/config.json").read_text())
    assert config["exchange"]["ccxt_config"]["urls"]["api"] == default
