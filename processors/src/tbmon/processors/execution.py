"""Execution quality: order-placement spans that were slow or slipped are marked and counted.

Order-placement spans are those whose name fully matches PROCESSORS_EXECUTION_SPAN_NAMES (default
``create_\\w*order\\w*``: ccxt's ``create_order``, ``create_limit_buy_order``...). Attributes read
from them (the ccxt instrumentation sets them):

- ``exchange``, ``symbol``, ``side`` (``buy``/``sell``): the counters' labels;
- ``order.expected_price`` if the bot set it (the price it decided on, e.g. for market orders),
  else ``order.price`` (the limit price): the expected price;
- ``order.average_price``: the average fill price.

Latency is the span's duration. Slippage in basis points is signed so that positive is adverse:
``(fill - expected) / expected * 10^4`` for a buy, the opposite for a sell. Every order span gets
``execution.latency_ms``, ``execution.slow`` and, when both prices are known,
``execution.slippage_bps`` and ``execution.slippage_breach``. The span's status is left alone:
a slow order did not fail. Counters, per bot and (exchange, symbol, side):
``trading_execution_orders_total``, ``trading_execution_slow_orders_total``,
``trading_execution_slippage_breaches_total``.

An order that fills after its placement (a live limit order that rests) has no fill price on its
placement span. Its fill comes later as a span named :data:`~tbmon.attributes.ORDER_FILL_SPAN`
(``order_fill``, freqtrade's instrumentor: the child of the order's ``create_order`` span) whose
``order.filled`` event carries both prices (``order.expected_price``, ``order.average_price``);
its slippage is measured there. The fill span gets ``execution.slippage_bps`` and
``execution.slippage_breach`` (no latency marks: its duration is not the order's) and a breach
is counted, but no order (its placement was). A fill whose parent span had a fill price and was
measured (a market order, a dry-run order that rested) is left alone: each order's slippage is
measured once, provided this processor saw the parent first (the SDK exports spans in the order
they end, and within a batch placements are checked before fills) and still remembers it (the
last 20,000 order and fill spans; a restart of the processors host forgets them).

Measured (``python -m bench wire``; before and after side by side, docs/performance.md, "Later
live fills"): a 512-span batch with no order or fill (155 kB) is passed on after two searches of
its bytes, the name pattern's and ``order_fill``'s, in 192 us (139 us with the first only); one
with 64 orders marked in 3.03 ms (2.98 ms); 64 later fills cost about what 64 placements do.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import ResourceMetrics
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tbmon import attributes, otlp_wire
from tbmon.processors._items import Items
from tbmon.processors.api import Batch, ExportTraceServiceRequest, Processor
from tbmon.processors.otlp import (
    PerResource,
    counter,
    key_values,
    number,
    resource_metrics,
)
from tbmon.settings import TbmonSettings, read_settings
from tbmon.version import __version__

SCOPE = "tbmon.processors.execution_quality"
LABELS = (attributes.EXCHANGE, attributes.SYMBOL, attributes.SIDE)
EXPECTED_PRICE = attributes.ORDER_EXPECTED_PRICE
LIMIT_PRICE = attributes.ORDER_PRICE
FILL_PRICE = attributes.ORDER_AVERAGE_PRICE
LATENCY_MS = attributes.EXECUTION_LATENCY_MS
SLOW = attributes.EXECUTION_SLOW
SLIPPAGE_BPS = attributes.EXECUTION_SLIPPAGE_BPS
SLIPPAGE_BREACH = attributes.EXECUTION_SLIPPAGE_BREACH
COUNTERS = {
    "trading_execution_orders": "Order-placement spans seen (tbmon execution quality).",
    "trading_execution_slow_orders": "Orders slower than PROCESSORS_EXECUTION_MAX_LATENCY_MS.",
    "trading_execution_slippage_breaches": (
        "Orders that slipped more than PROCESSORS_EXECUTION_MAX_SLIPPAGE_BPS."
    ),
}
_READ = frozenset((*LABELS, EXPECTED_PRICE, LIMIT_PRICE, FILL_PRICE))
FILL_SPAN = attributes.ORDER_FILL_SPAN
FILLED_EVENT = attributes.ORDER_FILLED_EVENT
_FILL_NAME = FILL_SPAN.encode()
_PRICES = frozenset((EXPECTED_PRICE, FILL_PRICE))
_MARK_PREFIX = attributes.EXECUTION_PREFIX
_SEEN_SPANS = 20_000


class ExecutionSettings(TbmonSettings):
    """``PROCESSORS_EXECUTION_*``."""

    model_config = SettingsConfigDict(env_prefix="PROCESSORS_EXECUTION_")

    span_names: str = Field(
        default=r"create_\w*order\w*",
        description="Regular expression a span name must fully match to be an order placement "
        "(no anchors or look-arounds: it also pre-checks serialized batches).",
    )
    max_latency_ms: float = Field(default=1000.0, gt=0, description="Slower orders are slow.")
    max_slippage_bps: float = Field(
        default=25.0, ge=0, description="Adverse slippage above this is a breach."
    )
    idle_seconds: float = Field(
        default=900.0, gt=0, description="A bot silent this long is forgotten (counters stop)."
    )

    @field_validator("span_names")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
            re.compile(pattern.encode())
        except (re.error, UnicodeEncodeError) as error:
            raise ValueError(f"not a regular expression: {error}") from error
        return pattern


@dataclass
class _Counts:
    start_unix_nano: int = field(default_factory=time.time_ns)
    by_labels: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def add(self, labels: tuple[str, str, str], order: bool, slow: bool, breach: bool) -> None:
        counts = self.by_labels.setdefault(labels, [0, 0, 0])
        counts[0] += order
        counts[1] += slow
        counts[2] += breach


class ExecutionQualityProcessor(Processor):
    """Marks and counts slow and slipped order placements, and slipped later fills."""

    runs_inline = True  # bounded work, no I/O (see Processor.runs_inline)

    def __init__(self, settings: ExecutionSettings | None = None) -> None:
        self.settings = settings or read_settings(ExecutionSettings)
        self._names = re.compile(self.settings.span_names, re.ASCII)
        self._prefilter = re.compile(self.settings.span_names.encode())
        self._nullable = self._prefilter.fullmatch(b"") is not None
        self._counts: PerResource[_Counts] = PerResource(_Counts, self.settings.idle_seconds)
        #: Order and fill spans counted (a retried batch counts once): whether slippage was
        #: measured on them (a fill whose placement was measured is not measured again).
        self._seen: OrderedDict[tuple[bytes, bytes], bool] = OrderedDict()

    def process_spans(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        raw = batch.raw
        names = [match.span() for match in self._prefilter.finditer(raw)]
        names += _occurrences(raw, _FILL_NAME)
        if not names:
            return batch
        try:
            items = Items(raw, Span)
        except DecodeError:
            batch.read()  # names the problem, if protobuf agrees the batch is malformed
            return self._process_message(batch)
        # Only the spans a match of a name falls in can be order placements or fills (a name
        # that fully matches is in the bytes verbatim); all of them if the pattern can match
        # nothing, as such matches overlap no span.
        candidates = items.every() if self._nullable else items.at(names)
        counts: dict[int, _Counts] = {}
        orders, fills = [], []
        for candidate in candidates:
            name = candidate[2].name
            if self._names.fullmatch(name):
                orders.append(candidate)
            elif name == FILL_SPAN:
                fills.append(candidate)
        # Placements first: a fill may be the child of one.
        for order, (place, where, span) in _tagged(orders, fills):
            if where[0] not in counts:
                counts[where[0]] = self._counts.get(items.resource_of(where))
            checked = self._check(span, counts[where[0]], order)
            if checked is None:
                continue
            marks, remarked = checked
            if remarked:  # a retried batch: its old marks go, so edit the span itself
                _apply(span, marks)
                items.edited(place)
            else:  # the marks are new attributes: appended to the span's bytes as they are
                items.replace(place, items.content(place) + _encode(marks))
        return Batch(batch.message_type, items.result()) if items.changed else batch

    def _process_message(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        for resource_spans in batch.read().resource_spans:
            orders, fills = [], []
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if self._names.fullmatch(span.name):
                        orders.append(span)
                    elif span.name == FILL_SPAN:
                        fills.append(span)
            if not orders and not fills:
                continue
            counts = self._counts.get(resource_spans.resource)
            for order, span in _tagged(orders, fills):
                checked = self._check(span, counts, order)
                if checked is not None:
                    batch.edit()
                    _apply(span, checked[0])
        return batch

    def _check(
        self, span: Span, counts: _Counts, order: bool
    ) -> tuple[list[tuple[str, Mark]], bool] | None:
        """Count an order placement (``order``) or a later fill's slippage; the span's marks,
        and whether it was marked before (then the old marks are removed here, and the new ones
        must be added to the span itself). None for a fill that is not measured: no prices or
        side, or its placement's span had the fill price and was measured."""
        found: dict[str, AnyValue] = {}
        marked = False
        for kv in span.attributes:
            if kv.key in _READ:
                found[kv.key] = kv.value
            elif kv.key.startswith(_MARK_PREFIX):
                marked = True
        side = found[attributes.SIDE].string_value.lower() if attributes.SIDE in found else ""
        exchange, symbol = (found[k].string_value if k in found else "" for k in LABELS[:2])
        if order:
            expected = number(found.get(EXPECTED_PRICE)) or number(found.get(LIMIT_PRICE))
            fill = number(found.get(FILL_PRICE))
        else:  # the prices are on the fill event
            expected, fill = _fill_prices(span)
            if not (expected and fill and side in ("buy", "sell")):
                return None
            if self._seen.get((span.trace_id, span.parent_span_id)):
                return None  # its placement's span had the fill: measured there
        if marked:  # a retried batch: mark afresh
            kept = [kv for kv in span.attributes if not kv.key.startswith(_MARK_PREFIX)]
            del span.attributes[:]
            span.attributes.extend(kept)

        marks: list[tuple[str, Mark]] = []
        slow = breach = measured = False
        if order:
            latency_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
            slow = latency_ms > self.settings.max_latency_ms
            marks += [(LATENCY_MS, latency_ms), (SLOW, slow)]
        if expected and fill and side in ("buy", "sell"):
            slippage = (fill - expected) / expected * 1e4 * (1 if side == "buy" else -1)
            breach = slippage > self.settings.max_slippage_bps
            marks += [(SLIPPAGE_BPS, round(slippage, 4)), (SLIPPAGE_BREACH, breach)]
            measured = True

        identity = (span.trace_id, span.span_id)
        if identity not in self._seen:  # the same span again (a retried batch) counts once
            self._seen[identity] = measured
            if len(self._seen) > _SEEN_SPANS:
                self._seen.popitem(last=False)
            counts.add((exchange, symbol, side), order, slow, breach)
        return marks, marked

    def collect_metrics(self, now_unix_nano: int) -> Sequence[ResourceMetrics]:
        results = []
        for resource, counts in self._counts.live():
            if not counts.by_labels:
                continue
            metrics = [
                counter(
                    name,
                    (
                        (key_values(dict(zip(LABELS, labels, strict=True))), values[index])
                        for labels, values in counts.by_labels.items()
                    ),
                    counts.start_unix_nano,
                    now_unix_nano,
                    description=description,
                )
                for index, (name, description) in enumerate(COUNTERS.items())
            ]
            results.append(resource_metrics(resource, SCOPE, metrics, __version__))
        return results


Mark = float | bool


T = TypeVar("T")


def _tagged(orders: list[T], fills: list[T]) -> Iterator[tuple[bool, T]]:
    """The order placements (True), then the fill spans (False)."""
    for each in orders:
        yield True, each
    for each in fills:
        yield False, each


def _fill_prices(span: Span) -> tuple[float | None, float | None]:
    """The expected and the fill price on a fill span's first ORDER_FILLED_EVENT."""
    for event in span.events:
        if event.name == FILLED_EVENT:
            found = {kv.key: kv.value for kv in event.attributes if kv.key in _PRICES}
            return number(found.get(EXPECTED_PRICE)), number(found.get(FILL_PRICE))
    return None, None


def _occurrences(raw: bytes, name: bytes) -> list[tuple[int, int]]:
    """Where ``name`` is in ``raw``: (start, end) of each occurrence."""
    found = []
    start = raw.find(name)
    while start >= 0:
        found.append((start, start + len(name)))
        start = raw.find(name, start + len(name))
    return found


def _apply(span: Span, marks: list[tuple[str, Mark]]) -> None:
    """Add the marks to the decoded span."""
    for key, value in marks:
        kv = span.attributes.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        else:
            kv.value.double_value = value


def _encode(marks: list[tuple[str, Mark]]) -> bytes:
    """The marks as Span attribute fields, encoded as protobuf encodes them: appending them to a
    span's bytes adds them to its attributes."""
    return b"".join(
        _MARK_FIELDS[key, value]
        if isinstance(value, bool)
        else otlp_wire.attribute(_SPAN_ATTRIBUTE, key, value)
        for key, value in marks
    )


_SPAN_ATTRIBUTE = otlp_wire.tag(otlp_wire.Span.ATTRIBUTES, otlp_wire.LEN)
#: bool marks, precomputed.
_MARK_FIELDS = {
    (key, flag): otlp_wire.attribute(_SPAN_ATTRIBUTE, key, flag)
    for key in (SLOW, SLIPPAGE_BREACH)
    for flag in (False, True)
}
