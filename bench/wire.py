"""The processors' wire paths, CPU per batch: the envelope reader, the splicer and the
execution-quality plugin (which appends its attributes to a span's bytes), on SDK-made batches.

These are the pipeline's users of :mod:`tbmon.otlp_wire` (the bot's are in ``bench.encoding``).
Shapes: the 512-span batch of ``bench.encoding`` (ten attributes a span, one in eight an order
placement), serialized by the stock encoder.

- envelope: ``Envelope(raw)``, every resource, scope and item located (what each built-in plugin
  does first);
- splice: one item in eight replaced by a longer one, enclosing lengths rewritten;
- execution quality: ``ExecutionQualityProcessor.process_spans``, the 64 order spans decoded,
  checked and their four marks appended.

Run: .venv/bin/python -m bench wire   (a change to the wire module should leave these as they are;
run it from two checkouts, one after the other, to compare)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from bench.encoding import BATCH, ccxt_spans
from tbmon import otlp_wire
from tbmon.otlp_wire import BODY, END
from tbmon.processors._wire import Envelope
from tbmon.processors.api import Batch, ExportTraceServiceRequest
from tbmon.processors.execution import ExecutionQualityProcessor

REPEATS = 51


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


def main() -> None:
    raw = encode_spans(ccxt_spans(BATCH)).SerializeToString()
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

    figures = medians_us(
        envelope=lambda: Envelope(raw),
        splice=lambda: envelope.splice(replacements),
        execution=lambda: processor.process_spans(Batch(ExportTraceServiceRequest, raw)),
    )
    print(f"{BATCH}-span batch ({len(raw):,} bytes), median CPU time of {REPEATS} runs each\n")
    print("| path | per batch | per span |")
    print("| --- | --- | --- |")
    for name, label in (
        ("envelope", "envelope reader"),
        ("splice", "splice, one item in eight replaced"),
        ("execution", "execution-quality plugin (64 order spans marked)"),
    ):
        print(f"| {label} | {figures[name]:.0f} us | {figures[name] / BATCH * 1e3:.0f} ns |")


if __name__ == "__main__":
    main()
