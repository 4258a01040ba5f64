"""Tracing and timing of ccxt's unified API, sync and async: ``CcxtInstrumentor().instrument()``.

The hook: every exchange class overrides the unified methods (``binance.create_order``...), so
wrapping the base class would miss them. At instrument time every subclass of ccxt's root class
``ccxt.base.exchange.BaseExchange`` is walked (``ccxt.async_support`` is imported first, so the
async classes exist: their ``BaseExchange`` subclasses the sync one) and each of :data:`METHODS`
a class defines itself is wrapped with ``wrapt``, sync or async as the definition is: one
wrapper per definition, so an inherited method is wrapped once, where it is defined. ccxt's
constructor copies every method to a camelCase class attribute (``fetchTicker``); those copies
are re-pointed on instrument and uninstrument. Subclasses defined later inherit the wrapped
methods. ``BaseExchange.fetch`` (the HTTP round trip, sync and async, which exchanges do
not override) is wrapped to note the request on the traced call's span.

One span per outermost call: a traced method called while another traced call is running in the
same context (``create_limit_buy_order`` -> ``create_order``, ``fetch_balance`` ->
``load_markets``, a subclass calling ``super()``) adds no span and no metric point; its time and
HTTP requests belong to the outer call. Convenience methods are not wrapped themselves, so
``create_market_buy_order`` shows as one ``create_order`` span.

Span contract (CLIENT, named after the method, e.g. ``create_order``):

- from the arguments: ``exchange`` (the ccxt id), ``symbol``, ``side``, ``order.type``,
  ``order.amount``, ``order.price`` (when given), ``order.id`` (cancel/fetch by id), and on
  ``create_order`` ``order.expected_price`` when the bot set it with :func:`expected_price`;
- from a result that is one order (create_order, cancel_order, fetch_order): ``order.id``,
  ``order.status``, ``order.filled``, ``order.average_price``, and ``symbol``, ``side``,
  ``order.type`` when the arguments did not give them (arguments win; ``order.price`` is only ever
  the caller's, so a market fill never poses as the expected price);
- from the last HTTP request: ``server.address``, ``server.port``, ``http.request.method``,
  ``url.path`` (never the query string: it carries the signature);
- on failure: the exception recorded, status ERROR, ``error.type`` = the exception's class name
  (``InsufficientFunds``, ``RequestTimeout``...); the exception reaches the caller unchanged.

Each call records ``api_request_duration_seconds{exchange, endpoint, status}`` (endpoint = the
method, status = ``ok`` or the exception's class name) in the span's context, so exemplars carry
its trace id. A failure of this code is logged once and the call proceeds as if uninstrumented.

Trading facts from the answers, with no exchange call of its own (:mod:`._internal.ccxt_book`):
every order's outcome in ``trading_orders_total`` (create_order's answer or exception, a resting
order's end in a later answer), and the portfolio value, positions and prices from
``fetch_balance`` valued at the prices of the bot's ticker, candle, order book, trade and fill
answers, given to :class:`~tbmon.instrumentation.TradingMetrics` (``trading_metrics=`` of
``instrument``, else :func:`~tbmon.instrumentation.trading_metrics`), where each yields to the
bot's own report of it. ``instrument(derive=False)``: spans and durations only.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context, trace

# The module opts out of type checking (``# type: ignore`` at its top): mypy sees no names in it.
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.metrics import Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tbmon import attributes
from tbmon.instrumentation._internal.ccxt_book import CcxtBook, finite_number
from tbmon.instrumentation.instruments import api_request_duration
from tbmon.instrumentation.trading import TradingMetrics, trading_metrics
from tbmon.version import __version__

#: The unified methods traced, with their positional parameters as ccxt declares them.
METHODS: dict[str, tuple[str, ...]] = {
    "create_order": ("symbol", "type", "side", "amount", "price", "params"),
    "cancel_order": ("id", "symbol", "params"),
    "fetch_order": ("id", "symbol", "params"),
    "fetch_orders": ("symbol", "since", "limit", "params"),
    "fetch_open_orders": ("symbol", "since", "limit", "params"),
    "fetch_closed_orders": ("symbol", "since", "limit", "params"),
    "fetch_canceled_orders": ("symbol", "since", "limit", "params"),
    "fetch_my_trades": ("symbol", "since", "limit", "params"),
    "fetch_balance": ("params",),
    "fetch_ticker": ("symbol", "params"),
    "fetch_tickers": ("symbols", "params"),
    "fetch_order_book": ("symbol", "limit", "params"),
    "fetch_ohlcv": ("symbol", "timeframe", "since", "limit", "params"),
    "fetch_trades": ("symbol", "since", "limit", "params"),
    "fetch_positions": ("symbols", "params"),
    "load_markets": ("reload", "params"),
}
#: Methods whose result is one order (ccxt's order structure).
ORDER_RESULTS = frozenset(("create_order", "cancel_order", "fetch_order"))

_T = TypeVar("_T")
_Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
_log = logging.getLogger(__name__)
_reported: set[str] = set()
_expected: ContextVar[float | None] = ContextVar("tbmon_ccxt_expected_price", default=None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _identifier(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


#: (argument, attribute, conversion) for the call's arguments.
_ARGUMENTS: tuple[tuple[str, str, Callable[[Any], AttributeValue | None]], ...] = (
    ("symbol", attributes.SYMBOL, _text),
    ("side", attributes.SIDE, _text),
    ("type", attributes.ORDER_TYPE, _text),
    ("amount", attributes.ORDER_AMOUNT, finite_number),
    ("price", attributes.ORDER_PRICE, finite_number),
    ("id", attributes.ORDER_ID, _identifier),
)
#: (order field, attribute, conversion) for a result that is one order.
_ORDER_FIELDS: tuple[tuple[str, str, Callable[[Any], AttributeValue | None]], ...] = (
    ("id", attributes.ORDER_ID, _identifier),
    ("status", attributes.ORDER_STATUS, _text),
    ("filled", attributes.ORDER_FILLED, finite_number),
    ("average", attributes.ORDER_AVERAGE_PRICE, finite_number),
    ("symbol", attributes.SYMBOL, _text),
    ("side", attributes.SIDE, _text),
    ("type", attributes.ORDER_TYPE, _text),
)


@contextmanager
def expected_price(price: float) -> Iterator[None]:
    """Mark the ``create_order`` calls in the block with the price the bot decided on.

    It becomes ``order.expected_price``, which execution-quality processing compares with the
    fill. A context rather than a key in ccxt's ``params``: ccxt sends ``params`` to the exchange
    as they are (Binance refuses unknown ones with -1104), and a bot must not depend on the
    instrumentation being active to place an order. Without the instrumentation it does nothing.
    """
    token = _expected.set(float(price))
    try:
        yield
    finally:
        _expected.reset(token)


def _report(what: str) -> None:
    """Log a failure of this module: the first of each kind with its traceback, the rest at
    debug level, so a broken attribute cannot flood the bot's logs."""
    if what in _reported:
        _log.debug("ccxt instrumentation: %s failed again", what, exc_info=True)
        return
    _reported.add(what)
    _log.exception("ccxt instrumentation: %s failed; the ccxt call goes on untraced", what)


def _given(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, as ccxt declares them."""
    given = dict(zip(METHODS[method], args, strict=False))
    given.update((name, value) for name, value in kwargs.items() if name in METHODS[method])
    return given


def _call_attributes(
    method: str, exchange: Any, given: dict[str, Any]
) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {attributes.EXCHANGE: str(exchange.id)}
    for argument, key, convert in _ARGUMENTS:
        value = convert(given.get(argument))
        if value is not None:
            found[key] = value
    if method == "create_order" and (price := _expected.get()) is not None:
        found[attributes.ORDER_EXPECTED_PRICE] = price
    return found


class _Untraced:
    """A call that gets no span: nested in a traced one, suppressed, or our own failure."""

    def __enter__(self) -> _Untraced:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def done(self, result: _T) -> _T:
        return result


_UNTRACED = _Untraced()


class _Call(_Untraced):
    """One traced call: its span, made current for the call's duration, and its clock."""

    def __init__(
        self, telemetry: _Telemetry, method: str, exchange: Any, given: dict[str, Any]
    ) -> None:
        self.method = method
        self.exchange = exchange
        self.given = given
        self.attributes = _call_attributes(method, exchange, given)
        self.histogram = telemetry.histogram
        self.book = telemetry.book
        self.span = telemetry.tracer.start_span(
            method, kind=SpanKind.CLIENT, attributes=self.attributes
        )
        self.context = trace.set_span_in_context(self.span)
        self._context_token = context.attach(self.context)
        self._active_token: Token[_Call | None] = _active.set(self)
        self._started = time.perf_counter()

    def note_request(self, url: str, method: str) -> None:
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        self.span.set_attributes(
            {
                "server.address": parts.hostname or "",
                "server.port": parts.port or default_port,
                "http.request.method": method.upper(),
                "url.path": parts.path,
            }
        )

    def done(self, result: _T) -> _T:
        try:
            if self.method in ORDER_RESULTS and isinstance(result, dict):
                for field, key, convert in _ORDER_FIELDS:
                    value = convert(result.get(field))
                    if value is not None and key not in self.attributes:
                        self.span.set_attribute(key, value)
            if self.book is not None:
                self.book.answered(self.method, self.exchange, self.given, result, self.context)
        except Exception:  # never break the bot
            _report(f"reading the result of {self.method}")
        self._end("ok")
        return result

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            return
        name = type(error).__name__
        try:
            self.span.record_exception(error)
            self.span.set_attribute("error.type", name)
            self.span.set_status(Status(StatusCode.ERROR, str(error)))
            # Not an interruption or a cancelled task: a failed call.
            if self.book is not None and isinstance(error, Exception):
                self.book.failed(self.method, self.exchange, self.given, self.context)
        except Exception:
            _report(f"recording the error of {self.method}")
        self._end(name)

    def _end(self, status: str) -> None:
        try:
            self.histogram.record(
                time.perf_counter() - self._started,
                {
                    "exchange": self.attributes[attributes.EXCHANGE],
                    "endpoint": self.method,
                    "status": status,
                },
                context=self.context,
            )
            self.span.end()
        except Exception:
            _report(f"ending the span of {self.method}")
        finally:
            _active.reset(self._active_token)
            context.detach(self._context_token)


#: The traced call running in this context, if any: nested calls add no span of their own.
_active: ContextVar[_Call | None] = ContextVar("tbmon_ccxt_call", default=None)


class _Telemetry:
    """The wrappers, bound to one instrument() call's tracer and histogram."""

    def __init__(self, tracer: trace.Tracer, histogram: Histogram, book: CcxtBook | None) -> None:
        self.tracer = tracer
        self.histogram = histogram
        self.book = book

    def call(
        self,
        wrapped: Callable[..., Any],
        exchange: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _Untraced:
        if _active.get() is not None or not is_instrumentation_enabled():
            return _UNTRACED
        method = wrapped.__name__
        try:
            return _Call(self, method, exchange, _given(method, args, kwargs))
        except Exception:
            _report(f"starting the span of {method}")
            return _UNTRACED

    def traced(
        self,
        wrapped: Callable[..., Any],
        exchange: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        with self.call(wrapped, exchange, args, kwargs) as call:
            return call.done(wrapped(*args, **kwargs))

    async def traced_async(
        self,
        wrapped: Callable[..., Any],
        exchange: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        with self.call(wrapped, exchange, args, kwargs) as call:
            return call.done(await wrapped(*args, **kwargs))


def _note_request(
    wrapped: Callable[..., Any], exchange: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``Exchange.fetch(url, method, ...)``: the request's target on the traced call's span.
    Sync and async alike: the async fetch's coroutine is returned as it is."""
    call = _active.get()
    if call is not None:
        try:
            request = dict(zip(("url", "method"), args, strict=False)) | kwargs
            call.note_request(str(request["url"]), str(request.get("method", "GET")))
        except Exception:
            _report("noting the HTTP request")
    return wrapped(*args, **kwargs)


def _exchange_classes() -> list[type]:
    """ccxt's root class and every subclass defined so far, sync and async."""
    import ccxt.async_support  # noqa: F401, PLC0415 (defines the async exchange classes)
    from ccxt.base.exchange import BaseExchange  # noqa: PLC0415

    found: list[type] = []
    pending: list[type] = [BaseExchange]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def _camel_case(name: str) -> str:
    """ccxt's alias of a method: ``fetch_order_book`` -> ``fetchOrderBook``."""
    head, *rest = name.split("_")
    return head + "".join("OHLCV" if part == "ohlcv" else part.capitalize() for part in rest)


def _repoint_aliases(classes: list[type]) -> None:
    """Do what ccxt's constructor does (``setattr(cls, camel, getattr(cls, snake))``), so the
    camelCase aliases follow the methods as they are now, wrapped or not."""
    for cls in classes:
        for name in METHODS:
            alias = _camel_case(name)
            if alias in vars(cls):
                setattr(cls, alias, getattr(cls, name))


class CcxtInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans and ``api_request_duration_seconds`` for ccxt's unified API (see the module)."""

    _wrapped: list[tuple[type, str]]

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("ccxt >= 4.0",)

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        meter_provider = kwargs.get("meter_provider")
        book = None
        if kwargs.get("derive", True):
            metrics = kwargs.get("trading_metrics") or (
                TradingMetrics(meter_provider) if meter_provider is not None else trading_metrics()
            )
            book = CcxtBook(metrics)
        telemetry = _Telemetry(tracer, api_request_duration(meter_provider), book)
        classes = _exchange_classes()
        self._wrapped = []
        for cls in classes:
            own = vars(cls)
            for name in sorted(METHODS.keys() & own.keys()):
                coroutine = inspect.iscoroutinefunction(own[name])
                wrapper: _Wrapper = telemetry.traced_async if coroutine else telemetry.traced
                wrapt.wrap_function_wrapper(cls, name, wrapper)
                self._wrapped.append((cls, name))
            if "fetch" in own:
                wrapt.wrap_function_wrapper(cls, "fetch", _note_request)
                self._wrapped.append((cls, "fetch"))
        _repoint_aliases(classes)

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, name in reversed(self._wrapped):
            unwrap(cls, name)
        self._wrapped = []
        _repoint_aliases(_exchange_classes())
