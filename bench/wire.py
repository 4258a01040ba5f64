"""The processors' wire paths, CPU per batch: the envelope reader, the splicer and the
execution-quality plugin (which appends its attributes to a span's bytes), on SDK-made batches.

These are the pipeline's users of :mod:`tbmon.otlp_wire` (the bot's are in ``bench.encoding``).
Shapes: the 512-span batch of ``bench.encoding`` (ten attributes a span, one in eight an order
placement), serialized by the stock encoder.

- envelope: ``Envelope(raw)``, every resource, scope and item located (what each built-in plugin
  does first);
- splice: one item in eight replaced by a longer one, enclosing lengths rewritten;
- execution quality: ``ExecutionQualityProcessor.process_spans``, the 64 order spans decoded,
  checked and their four marks appended; on the same batch without its order spans (the bytes
  searched for the name pattern and ``order_fill``, nothing decoded); and with the 64 orders
  resting (no fill price) and each one's later ``order_fill`` span (128 spans marked).

Run: .venv/bin/python -m bench wire   (a change to the wire module should leave these as they are;
run it from two checkouts, one after the other, to compare)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from bench.encoding import BATCH, ccxt_spans
from tbmon import attributes, otlp_wire
from tbmon.otlp_wire import BODY, END
from tbmon.processors._wire import Envelope
from tbmon.processors.api import Batch, ExportTraceServiceRequest
from tbmon.processors.execution import ExecutionQualityProcessor

REPEATS = 51
ORDER = "create_order"


def medians_us(**actions: Callable[[], object]) -> dict[str, float]:
    """Median CPU time (process time) of each action over REPEATS runs, after one warm-up; the
    actions take turns."""
    timings: dict[str, list[int]] = {name: [] for name in actions}
    for action in actions.values():
        action()
    for _ in range(REPEATS):
        for name, action in actions.items():
            started = time.process_time_ns()
            action()
            timings[name].append(time.process_time_ns() - started)
    return {name: statistics.median(times) / 1e3 for name, times in timings.items()}


def _variants(request: ExportTraceServiceRequest) -> tuple[bytes, bytes]:
    """The batch without its order spans, and with its orders resting and filled later."""
    quiet, later = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    quiet.CopyFrom(request)
    later.CopyFrom(request)
    for resource_spans in quiet.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            kept = [span for span in scope_spans.spans if span.name != ORDER]
            del scope_spans.spans[:]
            scope_spans.spans.extend(kept)
    for resource_spans in later.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            fills = []
            for span in scope_spans.spans:
                if span.name != ORDER:
                    continue
                tags = {kv.key: kv for kv in span.attributes}
                expected = tags[attributes.ORDER_PRICE].value.double_value
                filled_at = tags[attributes.ORDER_AVERAGE_PRICE].value.double_value
                span.attributes.remove(tags[attributes.ORDER_AVERAGE_PRICE])
                fill = type(span)(
                    trace_id=span.trace_id,
                    span_id=span.span_id[::-1],
                    parent_span_id=span.span_id,
                    name=attributes.ORDER_FILL_SPAN,
                    start_time_unix_nano=span.end_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano + 1000,
                )
                fill.attributes.extend(
                    tags[key] for key in (attributes.EXCHANGE, attributes.SYMBOL, attributes.SIDE)
                )
                event = fill.events.add(name=attributes.ORDER_FILLED_EVENT)
                for key, price in (
                    (attributes.ORDER_EXPECTED_PRICE, expected),
                    (attributes.ORDER_AVERAGE_PRICE, filled_at),
                ):
                    event.attributes.add(key=key).value.double_value = price
                fills.append(fill)
            scope_spans.spans.extend(fills)
    return quiet.SerializeToString(), later.SerializeToString()


def main() -> None:
    request = encode_spans(ccxt_spans(BATCH))
    raw = request.SerializeToString()
    quiet, later = _variants(request)
    envelope = Envelope(raw)
    added = otlp_wire.attribute(
        otlp_wire.tag(otlp_wire.Span.ATTRIBUTES, otlp_wire.LEN), "bench.edited", True
    )
    replacements = {
        field: raw[field[BODY] : field[END]] + added
        for index, (field, _) in enumerate(envelope.items)
        if index % 8 == 0
    }
    processor = ExecutionQualityProcessor()
    marked = processor.process_spans(Batch(ExportTraceServiceRequest, raw)).raw
    if len(marked) <= len(raw):
        raise AssertionError("the execution-quality plugin marked nothing")
    fills = processor.process_spans(Batch(ExportTraceServiceRequest, later)).raw
    if fills.count(attributes.EXECUTION_SLIPPAGE_BPS.encode()) != BATCH // 8:
        print("(this plugin does not measure later fills)\n")

    figures = medians_us(
        envelope=lambda: Envelope(raw),
        splice=lambda: envelope.splice(replacements),
        execution=lambda: processor.process_spans(Batch(ExportTraceServiceRequest, raw)),
        quiet=lambda: processor.process_spans(Batch(ExportTraceServiceRequest, quiet)),
        later=lambda: processor.process_spans(Batch(ExportTraceServiceRequest, later)),
    )
    print(f"{BATCH}-span batch ({len(raw):,} bytes), median CPU time of {REPEATS} runs each\n")
    print("| path | per batch | per span |")
    print("| --- | --- | --- |")
    for name, label in (
        ("envelope", "envelope reader"),
        ("splice", "splice, one item in eight replaced"),
        ("execution", "execution-quality plugin (64 order spans marked)"),
        ("quiet", f"execution-quality plugin, no order ({len(quiet):,} bytes)"),
        ("later", "execution-quality plugin, 64 resting orders + 64 later fills marked"),
    ):
        print(f"| {label} | {figures[name]:.0f} us | {figures[name] / BATCH * 1e3:.0f} ns |")


if __name__ == "__main__":
    main()
