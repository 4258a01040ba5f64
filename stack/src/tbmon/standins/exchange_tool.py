"""The local exchange as a tool: ``tbmon exchange serve``, for real bots with only URLs changed.

:mod:`tbmon.standins.exchange` answers Binance spot's REST API; its clients
narrow ccxt's options so that ``load_markets`` asks for nothing else. A real bot (freqtrade,
or any ``ccxt.binance`` with default options) does not: it loads futures markets too, with API
keys it asks for the currencies and margin pairs, freqtrade in live mode for the spot delisting
schedule, and freqtrade streams candles over WebSockets (``ccxt.pro`` ``watch_ohlcv``) by
default. This app is that server plus what they ask for, so a bot differs from production by
its URLs alone (:func:`ccxt_urls`):

- the spot markets of the test exchange (quoted in USDT) and :data:`CROSS_SYMBOLS` quoted in
  BTC (ETH/BTC, SOL/BTC), for a bot whose stake currency is not a dollar;
- REST, as Binance answers them: ``/fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` (no
  futures symbols: the market is spot only), and, signed, ``/sapi/v1/capital/config/getall``
  (the assets), ``/sapi/v1/margin/allPairs``, ``/sapi/v1/margin/isolated/allPairs`` and
  ``/sapi/v1/spot/delist-schedule`` (empty lists);
- WebSocket market streams in Binance's format, on ``/ws`` (raw: the stream names in the path,
  or ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` requests answered with their ``id``)
  and ``/stream?streams=a/b`` (combined: each event wrapped as ``{"stream", "data"}``):
  ``<symbol>@kline_<interval>`` (the current candle of the REST ``klines``, ``x`` true once on
  its close) and ``<symbol>@ticker`` (``24hrTicker``), pushed every
  :data:`PUSH_SECONDS`.

Every request, REST or a stream subscription, is in ``GET /_control/requests`` (benchmarks count
a bot's calls to the exchange there). It binds 127.0.0.1 unless told otherwise, and holds test
credentials only (:data:`~tbmon.standins.exchange.TEST_API_KEY`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.pro
import typer
import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from tbmon.standins import exchange as spot
from tbmon.standins.exchange import (
    DEFAULT_SEED,
    BinanceError,
    ExchangeState,
    Symbol,
    _authenticate,
    _error_response,
)
from tbmon.standins.exchange import (
    create_app as create_spot_app,
)

#: ``tbmon exchange serve``'s port unless ``--port`` says otherwise.
DEFAULT_PORT = 8094
#: Markets quoted in something other than USD, for a bot whose stake currency is BTC.
CROSS_SYMBOLS = (
    Symbol(
        "ETHBTC",
        "ETH",
        "BTC",
        0.05,
        Decimal("0.00001"),
        Decimal("0.0001"),
        Decimal("0.0001"),
        Decimal("0.0001"),
    ),
    Symbol(
        "SOLBTC",
        "SOL",
        "BTC",
        0.0023,
        Decimal("0.0000001"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("0.0001"),
    ),
)
#: Seconds between two events of one stream (Binance: 1 s for tickers, 2 s for klines).
PUSH_SECONDS = 1.0
#: Streams one connection may hold (Binance's limit is 1024).
MAX_STREAMS = 1024


def ccxt_urls(base_url: str) -> dict[str, Any]:
    """ccxt binance's ``urls["api"]`` (REST and, for ``ccxt.pro``, ``ws``) moved to the local
    exchange at ``base_url``, each keeping its path: a bot's ``urls.api`` setting (freqtrade:
    ``exchange.ccxt_config.urls.api``)."""
    base = base_url.rstrip("/")
    rest: dict[str, Any] = {
        name: base + urlsplit(url).path for name, url in ccxt.binance().urls["api"].items()
    }
    ws_base = "ws" + base.removeprefix("http")
    streams = ccxt.pro.binance().urls["api"]["ws"]
    rest["ws"] = {
        name: ws_base + urlsplit(url).path
        for name, url in streams.items()
        if isinstance(url, str) and urlsplit(url).path == "/ws"
    }
    return rest


def _futures_exchange_info() -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "futuresType": "U_MARGINED",
        "rateLimits": [],
        "exchangeFilters": [],
        "assets": [],
        "symbols": [],
    }


def _currencies(state: ExchangeState) -> list[dict[str, Any]]:
    assets = sorted({spec.base for spec in state.symbols.values()} | {"USDT"})
    return [
        {
            "coin": asset,
            "name": asset,
            "depositAllEnable": True,
            "withdrawAllEnable": True,
            "free": "0",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "ipoing": "0",
            "ipoable": "0",
            "storage": "0",
            "isLegalMoney": False,
            "trading": True,
            "networkList": [],
        }
        for asset in assets
    ]


#: (path, signed) -> answer, for the REST endpoints beyond spot's /api/v3.
_EXTRA: dict[str, tuple[bool, Any]] = {
    "fapi/v1/exchangeInfo": (False, lambda state: _futures_exchange_info()),
    "dapi/v1/exchangeInfo": (
        False,
        lambda state: {**_futures_exchange_info(), "futuresType": "COIN_MARGINED"},
    ),
    "sapi/v1/capital/config/getall": (True, _currencies),
    "sapi/v1/margin/allPairs": (True, lambda state: []),
    "sapi/v1/margin/isolated/allPairs": (True, lambda state: []),
    "sapi/v1/spot/delist-schedule": (True, lambda state: []),
}


class _Stream:
    """One subscribed stream: what it renders, and the kline it last pushed."""

    def __init__(self, state: ExchangeState, name: str) -> None:
        symbol, _, channel = name.partition("@")
        spec = state.symbols.get(symbol.upper())
        if spec is None or not (channel in _TICKERS or channel.startswith("kline_")):
            raise ValueError(f"unknown stream {name!r}")
        self.name, self.spec, self.channel = name, spec, channel
        self.last_open: int | None = None

    def events(self, state: ExchangeState) -> list[dict[str, Any]]:
        """The events due now: a ticker, or the current kline (after the previous one's close)."""
        now = time.time_ns() // 1_000_000
        if self.channel in _TICKERS:
            return [_TICKERS[self.channel](state.ticker(self.spec), now)]
        interval = self.channel.removeprefix("kline_")
        candles = state.klines(self.spec, interval, 2)
        events = []
        if self.last_open is not None and candles[-1][0] != self.last_open:
            events.append(_kline_event(self.spec, interval, candles[-2], now, closed=True))
        self.last_open = candles[-1][0]
        events.append(_kline_event(self.spec, interval, candles[-1], now, closed=False))
        return events


def _kline_event(
    spec: Symbol, interval: str, candle: list[Any], now: int, *, closed: bool
) -> dict[str, Any]:
    return {
        "e": "kline",
        "E": now,
        "s": spec.symbol,
        "k": {
            "t": candle[0],
            "T": candle[6],
            "s": spec.symbol,
            "i": interval,
            "f": 1,
            "L": candle[8],
            "o": candle[1],
            "c": candle[4],
            "h": candle[2],
            "l": candle[3],
            "v": candle[5],
            "n": candle[8],
            "x": closed,
            "q": candle[7],
            "V": candle[9],
            "Q": candle[10],
            "B": "0",
        },
    }


def _ticker_event(ticker: dict[str, Any], now: int) -> dict[str, Any]:
    keys = {
        "p": "priceChange",
        "P": "priceChangePercent",
        "w": "weightedAvgPrice",
        "x": "prevClosePrice",
        "c": "lastPrice",
        "Q": "lastQty",
        "b": "bidPrice",
        "B": "bidQty",
        "a": "askPrice",
        "A": "askQty",
        "o": "openPrice",
        "h": "highPrice",
        "l": "lowPrice",
        "v": "volume",
        "q": "quoteVolume",
        "O": "openTime",
        "C": "closeTime",
        "F": "firstId",
        "L": "lastId",
        "n": "count",
    }
    return {"e": "24hrTicker", "E": now, "s": ticker["symbol"]} | {
        short: ticker[long] for short, long in keys.items()
    }


def _mini_ticker_event(ticker: dict[str, Any], now: int) -> dict[str, Any]:
    full = _ticker_event(ticker, now)
    return {"e": "24hrMiniTicker"} | {key: full[key] for key in "Escohlvq"}


def _book_ticker_event(ticker: dict[str, Any], now: int) -> dict[str, Any]:
    full = _ticker_event(ticker, now)
    return {"u": full["L"]} | {key: full[key] for key in "sbBaA"}


#: The ticker channels: ``<symbol>@ticker``, ``@miniTicker`` (ccxt's watch_ticker) and
#: ``@bookTicker``.
_TICKERS = {
    "ticker": _ticker_event,
    "miniTicker": _mini_ticker_event,
    "bookTicker": _book_ticker_event,
}


class _Connection:
    """One WebSocket client's subscriptions and pushes."""

    def __init__(self, socket: WebSocket, state: ExchangeState, combined: bool) -> None:
        self.socket, self.state, self.combined = socket, state, combined
        self.streams: dict[str, _Stream] = {}

    def subscribe(self, names: list[str]) -> None:
        for name in names:
            if name not in self.streams:
                if len(self.streams) >= MAX_STREAMS:
                    raise ValueError(f"more than {MAX_STREAMS} streams")
                self.streams[name] = _Stream(self.state, name)
                record = {"method": "WS", "path": "stream", "params": {"stream": name}}
                self.state.requests.append(record | {"time": time.time()})

    async def push(self) -> None:
        while True:
            for stream in list(self.streams.values()):
                for event in stream.events(self.state):
                    body = {"stream": stream.name, "data": event} if self.combined else event
                    await self.socket.send_text(json.dumps(body))
            await asyncio.sleep(PUSH_SECONDS)

    async def answer(self, text: str) -> None:
        """A request on the socket (Binance's live subscribing), answered with its ``id``."""
        ident: Any = None
        try:
            request = json.loads(text)
            method, ident = request["method"], request.get("id")
            params = request.get("params") or []
            if method == "SUBSCRIBE":
                self.subscribe([str(p) for p in params])
                reply: dict[str, Any] = {"result": None, "id": ident}
            elif method == "UNSUBSCRIBE":
                for name in params:
                    self.streams.pop(str(name), None)
                reply = {"result": None, "id": ident}
            elif method == "LIST_SUBSCRIPTIONS":
                reply = {"result": list(self.streams), "id": ident}
            else:
                reply = {"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": ident}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            reply = {"error": {"code": 2, "msg": f"Invalid request: {error}"}, "id": ident}
        await self.socket.send_text(json.dumps(reply))


async def _serve_socket(socket: WebSocket, state: ExchangeState, streams: list[str]) -> None:
    connection = _Connection(socket, state, combined=socket.url.path.startswith("/stream"))
    await socket.accept()
    # A raw path that is no stream name (ccxt connects to /ws/<n> and subscribes) is ignored.
    with contextlib.suppress(ValueError):
        connection.subscribe([name for name in streams if "@" in name])
    pusher = asyncio.create_task(connection.push())
    try:
        while True:
            await connection.answer(await socket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await pusher


def create_app(seed: int = DEFAULT_SEED) -> FastAPI:
    """The spot test exchange plus what real bots ask for beyond it (see the module's doc)."""
    app = create_spot_app(seed)
    state: ExchangeState = app.state.exchange
    for spec in CROSS_SYMBOLS:
        state.symbols[spec.symbol] = spec
    state.reset()  # a price walk for each

    @app.api_route("/{prefix}/{version}/{path:path}", methods=["GET"], include_in_schema=False)
    async def extra(prefix: str, version: str, path: str, request: Request) -> Response:
        route = f"{prefix}/{version}/{path}"
        query = request.url.query
        params = dict(parse_qsl(query, keep_blank_values=True))
        record: dict[str, Any] = {
            "method": "GET",
            "path": route,
            "params": {k: v for k, v in params.items() if k != "signature"},
            "time": time.time(),
        }
        state.requests.append(record)
        known = _EXTRA.get(route)
        if known is None:
            record["status"] = 404
            return JSONResponse({"code": -1, "msg": "Not Found"}, 404)
        signed, answer = known
        try:
            if signed:
                _authenticate(request, params, query)
        except BinanceError as error:
            record["status"] = error.status
            return _error_response(error)
        record["status"] = 200
        return JSONResponse(answer(state))

    @app.websocket("/ws")
    async def raw(socket: WebSocket) -> None:
        await _serve_socket(socket, state, [])

    @app.websocket("/ws/{names:path}")
    async def raw_named(socket: WebSocket, names: str) -> None:
        await _serve_socket(socket, state, names.split("/"))

    @app.websocket("/stream")
    async def combined(socket: WebSocket) -> None:
        await _serve_socket(socket, state, socket.query_params.get("streams", "").split("/"))

    return app


@contextmanager
def running(host: str = "127.0.0.1", port: int = 0, seed: int = DEFAULT_SEED) -> Iterator[str]:
    """This app in a thread of this process (port 0: a free one); yields its base URL."""
    with spot.running(host, port, seed, factory=create_app) as url:
        yield url


app = typer.Typer(help="The local exchange: Binance's REST and stream formats, for tests.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = DEFAULT_PORT,
    seed: Annotated[int, typer.Option(help="Seed of the market's random walk.")] = DEFAULT_SEED,
) -> None:
    """Serve the local exchange until interrupted; a bot points ccxt's URLs at it."""
    typer.echo(
        f"local exchange on http://{host}:{port} (control API: http://{host}:{port}/_control/docs)"
    )
    uvicorn.run(create_app(seed), host=host, port=port, log_level="warning")


@app.command()
def urls(
    base_url: Annotated[
        str, typer.Argument(help="The local exchange's base URL.")
    ] = f"http://127.0.0.1:{DEFAULT_PORT}",
) -> None:
    """Print ccxt binance's ``urls.api`` for the local exchange, as JSON (a bot's config)."""
    typer.echo(json.dumps(ccxt_urls(base_url), indent=2))
