"""OTLP encoding CPU per span and per log record: the stock SDK encoder against tbmon's, side by
side in one run, on spans and log records made by the real SDK.

Stock is what the SDK's OTLP/gRPC exporter spends before the wire: ``encode_spans(batch)`` (upb
messages) and its ``SerializeToString()``; tbmon's is ``tbmon.instrumentation._internal.encoding``,
which writes the same bytes directly (checked here before timing). Shapes: 512-span batches of
ccxt-like spans with ten attributes (the BatchSpanProcessor's batch size), one bot order cycle
(five nested spans with four to six attributes, several repeating from cycle to cycle, one a new
order id), and 512-record batches of log records as the logging bridge makes them.

Run: .venv/bin/python -m bench encoding   (target: several times cheaper than stock)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AnyValue

from tbmon import attributes as attr
from tbmon.instrumentation._internal.encoding import encode_logs, encode_spans

BATCH = 512
CYCLES = 200
REPEATS = 21
RESOURCE = Resource.create(
    {"service.name": "bench-bot", "service.instance.id": "bench-1", "tbmon.strategy": "momentum"}
)


def _tracer() -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("tbmon.instrumentation.ccxt", "0.1.0"), exporter


def ccxt_spans(count: int) -> tuple[ReadableSpan, ...]:
    """Exchange calls as the ccxt instrumentation records them: ten attributes, one in eight an
    order placement (the shape of bench.processors' load)."""
    tracer, exporter = _tracer()
    for index in range(count):
        attributes: dict[str, Any] = {
            attr.EXCHANGE: "binance",
            attr.SYMBOL: "BTC/USDT",
            attr.STRATEGY: "momentum",
            "net.peer.name": "api.binance.com",
            "http.url": "https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT",
            "http.status_code": 200,
        }
        if index % 8 == 0:
            name = "create_order"
            attributes |= {
                attr.SIDE: "buy",
                attr.ORDER_TYPE: "limit",
                attr.ORDER_PRICE: 42000.0 + index,
                attr.ORDER_AVERAGE_PRICE: 42010.5 + index,
            }
        else:
            name = ("fetch_ticker", "fetch_order_book", "fetch_balance")[index % 3]
            attributes |= {"retries": 0, "cache.hit": "false", "rate_limit.remaining": 1190}
        with tracer.start_as_current_span(name, attributes=attributes):
            pass
    return exporter.get_finished_spans()


def order_cycles(count: int) -> list[tuple[ReadableSpan, ...]]:
    """``count`` order cycles of five spans each: decide, ticker, inference, order, fill."""
    tracer, exporter = _tracer()
    market: dict[str, AnyValue] = {attr.EXCHANGE: "binance", attr.SYMBOL: "BTC/USDT"}
    for index in range(count):
        price = 42000.0 + index % 97
        cycle: dict[str, AnyValue] = {
            attr.STRATEGY: "momentum",
            attr.SYMBOL: "BTC/USDT",
            "cycle": index,
        }
        with tracer.start_as_current_span("trading.cycle", attributes=cycle):
            with tracer.start_as_current_span(
                "fetch_ticker", attributes=market | {"http.status_code": 200, "last": price}
            ):
                pass
            with tracer.start_as_current_span(
                "model.inference",
                attributes={"model": "lstm-v3", "signal.direction": "buy", "confidence": 0.71},
            ):
                pass
            order = market | {attr.SIDE: "buy", attr.ORDER_TYPE: "limit", attr.ORDER_PRICE: price}
            with tracer.start_as_current_span("create_order", attributes=order):
                pass
            with tracer.start_as_current_span(
                "fetch_order",
                attributes=market
                | {attr.ORDER_ID: f"o-{index:08d}", "status": "closed", "filled": 1},
            ):
                pass
    spans = exporter.get_finished_spans()
    return [spans[start : start + 5] for start in range(0, len(spans), 5)]


def log_records(count: int) -> tuple[ReadableLogRecord, ...]:
    """Log records as the logging bridge makes them, half of them inside a span."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("bot.orders")
    tracer, _ = _tracer()
    for index in range(count):
        attributes: dict[str, AnyValue] = {
            "code.file.path": "/app/bot/orders.py",
            "code.function.name": "place_order",
            "code.line.number": 118,
            attr.SYMBOL: "BTC/USDT",
            attr.ORDER_ID: f"o-{index:08d}",
        }
        body = f"order o-{index:08d} filled at {42000.0 + index:.2f}"
        with tracer.start_as_current_span("cycle") if index % 2 else nullcontext():
            logger.emit(
                body=body,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                attributes=attributes,
            )
    return exporter.get_finished_logs()


def medians_ns(*actions: Callable[[], object]) -> list[float]:
    """Median CPU time (process time) of each action over REPEATS runs, after one warm-up; the
    actions take turns, so the machine's other load falls on them alike."""
    timings: list[list[int]] = [[] for _ in actions]
    for action in actions:
        action()
    for _ in range(REPEATS):
        for action, times in zip(actions, timings, strict=True):
            started = time.process_time_ns()
            action()
            times.append(time.process_time_ns() - started)
    return [statistics.median(times) for times in timings]


@dataclass
class Row:
    shape: str
    unit: str
    stock_us: float
    ours_us: float


def compare(
    shape: str,
    unit: str,
    batches: Sequence[Sequence[Any]],
    per: int,
    stock: Callable[[Any], Any],
    ours: Callable[[Any], bytes],
) -> Row:
    """Stock against ours over ``batches``, in microseconds per ``per`` items."""
    for batch in batches:
        if ours(batch) != stock(batch).SerializeToString():
            raise AssertionError(f"{shape}: tbmon's bytes differ from the stock encoder's")
    items = sum(len(batch) for batch in batches)

    def run(encode: Callable[[Any], object]) -> Callable[[], None]:
        def encode_all() -> None:
            for batch in batches:
                encode(batch)

        return encode_all

    stock_ns, ours_ns = medians_ns(run(lambda batch: stock(batch).SerializeToString()), run(ours))
    return Row(shape, unit, stock_ns / items * per / 1e3, ours_ns / items * per / 1e3)


def main() -> None:
    spans, cycles, records = [ccxt_spans(BATCH)], order_cycles(CYCLES), [log_records(BATCH)]
    rows = [
        compare("512-span batch, 10 attributes", "span", spans, 1, stock_spans, encode_spans),
        compare(
            "order cycle: 5 spans, 4-6 attributes", "cycle", cycles, 5, stock_spans, encode_spans
        ),
        compare(
            "512-record batch, 5 attributes", "log record", records, 1, stock_logs, encode_logs
        ),
    ]
    print(f"median CPU time of {REPEATS} runs each, taking turns (process time), per unit\n")
    print("| shape | unit | stock encoder + SerializeToString | tbmon | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row.shape} | {row.unit} | {row.stock_us:.1f} us | {row.ours_us:.1f} us "
            f"| {row.stock_us / row.ours_us:.1f}x |"
        )


if __name__ == "__main__":
    main()
