"""A leaner ``start_span`` and ``start_as_current_span`` making the SDK's own spans.

Starting and ending spans is most of a traced bot's own telemetry CPU: per span, the SDK's
``Tracer.start_as_current_span`` looks the current context up five times, asks its sampler
through three calls, builds the ``_Span`` (and at its end a ``ReadableSpan``) through
keyword-argument calls to ``__new__`` and ``__init__``\\ s, cleans the attributes through an
``isinstance`` chain per value, and wraps the span in two generator-based context managers
(``start_as_current_span`` and ``use_span``): 34 us for a span with two attributes on our
machines. :class:`FastTracer` does the same work directly: one context lookup, the configured
sampler's decision in one call, the fields set in place, plain attributes copied
(:mod:`.attributes`), a small context-manager object instead of the generators: 14 us.

What comes out is the SDK's: a ``_Span`` with the SDK's fields in the SDK's order (name, kind,
parent, context with its flags and trace state, attributes within the span limits, resource,
scope...), started and ended as ``Span.start`` and ``Span.end`` do it (the span processors'
``on_start``, ``_on_ending`` and ``on_end``, the SDK's own span metrics), the same context current
while the block runs, the same exception event and error status when it raises. Two details
differ. An exception's ``exception.stacktrace`` lacks the lines of the SDK's two generator
frames, since the exception no longer passes through them. And the ``ReadableSpan`` the
processors get keeps attributes of which none were dropped as their dict, and no events or
links as empty tuples, which the SDK reads the same way (see :func:`_end`: the garbage
collector's cost of spans waiting for export).

Whatever the fast path does not cover takes the SDK's code: links, a sampler other than the
SDK's built-in ones (the ``OTEL_TRACES_SAMPLER`` values), a tracer a tracer configurator
disabled, attributes that need cleaning or exceed a limit (the SDK cleans them), a span ended by
hand (``span.end()``), ``@tracer.start_as_current_span(...)`` as a decorator (the SDK's context
manager around the fast ``start_span``), an SDK release other than the one mirrored
(:mod:`.pinned`). ``OTEL_SDK_DISABLED`` still yields the SDK's no-op tracer.

Each part names the function of opentelemetry-sdk 1.45.2 it mirrors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from time import time_ns
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider, _Span
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
    _AlwaysOff,
    _AlwaysOn,
    _ParentBasedAlwaysOff,
    _ParentBasedAlwaysOn,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types
from typing_extensions import override

from tbmon.instrumentation._internal import pinned
from tbmon.instrumentation._internal.attributes import set_items

#: A sampler's decision from the span's valid parent (None for a root span) and its trace id.
Decide = Callable[[SpanContext | None, int], Decision]
#: ``Tracer.start_span``'s arguments, in its order: name, context, kind, attributes, links,
#: start_time, record_exception, set_status_on_exception.
Arguments = tuple[
    str,
    context_api.Context | None,
    SpanKind,
    types.Attributes,
    Sequence[trace_api.Link] | None,
    int | None,
    bool,
    bool,
]

_DROP: Final = Decision.DROP
_SAMPLE: Final = Decision.RECORD_AND_SAMPLE
#: Trace flags by value (sampled 1 | random trace id 2): immutable ints, made once.
_FLAGS: Final = tuple(TraceFlags(value) for value in range(4))
#: ReadableSpan.__init__'s default status (one shared instance there too).
_UNSET: Final = Status(StatusCode.UNSET)
#: The SDK's built-in samplers by exact type (a subclass may decide otherwise).
_STATIC: Final = frozenset((StaticSampler, _AlwaysOn, _AlwaysOff))
_PARENT_BASED: Final = frozenset(
    (ParentBased, ParentBasedTraceIdRatio, _ParentBasedAlwaysOn, _ParentBasedAlwaysOff)
)
F = TypeVar("F", bound=Callable[..., Any])


def decider(sampler: Sampler) -> Decide | None:
    """``sampler.should_sample``'s decision as one call; None for a sampler that is not one of
    the SDK's built-in ones. (Those keep the span's attributes as they are and take the valid
    parent's trace state: the decision is all that differs between them.)"""
    kind = type(sampler)
    if kind in _STATIC:  # StaticSampler.should_sample
        decision = cast(StaticSampler, sampler)._decision
        return lambda parent, trace_id: decision
    if kind is TraceIdRatioBased:  # TraceIdRatioBased.should_sample
        bound, limit = cast(TraceIdRatioBased, sampler).bound, TraceIdRatioBased.TRACE_ID_LIMIT
        return lambda parent, trace_id: _SAMPLE if trace_id & limit < bound else _DROP
    if kind in _PARENT_BASED:  # ParentBased.should_sample
        parent_based = cast(ParentBased, sampler)
        delegates = [
            decider(delegate)
            for delegate in (
                parent_based._root,
                parent_based._remote_parent_sampled,
                parent_based._remote_parent_not_sampled,
                parent_based._local_parent_sampled,
                parent_based._local_parent_not_sampled,
            )
        ]
        if None in delegates:
            return None
        root, remote_sampled, remote_not_sampled, local_sampled, local_not_sampled = (
            delegate for delegate in delegates if delegate is not None
        )

        def decide(parent: SpanContext | None, trace_id: int) -> Decision:
            if parent is None:
                return root(parent, trace_id)
            if parent.is_remote:
                chosen = remote_sampled if parent.trace_flags.sampled else remote_not_sampled
            else:
                chosen = local_sampled if parent.trace_flags.sampled else local_not_sampled
            return chosen(parent, trace_id)

        return decide
    return None


def _new_span(
    tracer: Tracer,
    arguments: Arguments,
    context: SpanContext,
    parent: SpanContext | None,
    record_end_metrics: Callable[[], None],
) -> _Span:
    """``_Span(...)`` as ``Tracer.start_span`` makes it (no events, no links) and
    ``span.start()`` times it: the fields of ``ReadableSpan.__init__``, ``Span.__init__`` and
    ``Span.start`` set directly, which is half the cost of the calls (3 of 6 us). (The caller
    then tells the span processors, the rest of ``Span.start``.)"""
    name, _, kind, attributes, _, start_time, record_exception, set_status_on_exception = arguments
    limits = tracer._span_limits
    span = object.__new__(_Span)  # Span.__new__ only refuses Span itself
    bounded = BoundedAttributes(
        limits.max_span_attributes, immutable=False, max_value_len=limits.max_span_attribute_length
    )
    if attributes:
        set_items(bounded, attributes)
    # ReadableSpan.__init__, with the values Span.__init__ gives the fields, in its order
    span._name = name
    span._context = context
    span._kind = kind
    span._instrumentation_info = tracer.instrumentation_info
    span._instrumentation_scope = tracer._instrumentation_scope
    span._parent = parent
    span._start_time = time_ns() if start_time is None else start_time  # Span.start's
    span._end_time = None
    span._attributes = bounded
    span._events = BoundedList(limits.max_events)
    span._links = BoundedList(limits.max_links)
    span._resource = tracer.resource
    span._status = _UNSET
    # Span.__init__
    span._sampler = tracer.sampler
    span._trace_config = None
    span._record_exception = record_exception
    span._set_status_on_exception = set_status_on_exception
    span._span_processor = tracer.span_processor
    span._limits = limits
    span._lock = threading.Lock()
    span._record_end_metrics = record_end_metrics
    return span


def _end(span: _Span) -> None:
    """``span.end()``, the span processors' ``ReadableSpan`` made as :func:`_new_span` makes
    spans (``Span._readable_span`` calls ``ReadableSpan.__init__`` with 13 keyword arguments),
    and with fewer objects.

    A batch processor keeps each ``ReadableSpan`` until its export, thousands of them when a bot
    outruns its exporter, and the garbage collector's collections visit all their objects: seven
    tracked ones a span as the SDK makes it (itself, its context, its attributes, its events and
    links and their deques), 70 to 90 us of collection per order cycle in
    ``bench.instrumentation``'s bot, a sixth of its thread's CPU. With attributes of which none
    were dropped kept as their dict, and events or links without any (none dropped either) as an
    empty tuple, ``ReadableSpan``'s own default, it is 20 us: ``ReadableSpan`` reads them the same
    way, counting drops only on its bounded types."""
    # Mirrors Span.end and Span._readable_span.
    with span._lock:
        ended = span._end_time is not None
        if not ended:
            span._end_time = time_ns()
            span._attributes._immutable = True  # type: ignore[union-attr]  # a BoundedAttributes
    if ended:
        span.end()  # ended in the block already: the SDK's warning
        return
    if span._record_end_metrics:
        span._record_end_metrics()
    attributes, events, links = span._attributes, span._events, span._links
    if type(attributes) is BoundedAttributes and not attributes.dropped:
        attributes = attributes._dict  # read through ReadableSpan.attributes' read-only proxy
    if type(events) is BoundedList and not events and not events.dropped:
        events = ()
    if type(links) is BoundedList and not links and not links.dropped:
        links = ()
    readable = object.__new__(ReadableSpan)
    readable._name = span._name
    readable._context = span._context
    readable._kind = span._kind
    readable._instrumentation_info = span._instrumentation_info
    readable._instrumentation_scope = span._instrumentation_scope
    readable._parent = span._parent
    readable._start_time = span._start_time
    readable._end_time = span._end_time
    readable._attributes = attributes
    readable._events = events
    readable._links = links
    readable._resource = span._resource
    readable._status = span._status
    processor = span._span_processor
    processor._on_ending(span)
    processor.on_end(readable)


class FastTracer(Tracer):
    """The SDK's ``Tracer`` with a direct ``start_span`` and a generator-free
    ``start_as_current_span`` (:class:`FastTracerProvider` hands them out)."""

    #: The sampler the decision was made for, and the decision (None: the SDK's path).
    _plan: tuple[Sampler | None, Decide | None] = (None, None)

    def _decide(self) -> Decide | None:
        sampler, decide = self._plan
        if sampler is not self.sampler:  # the first span, or a sampler assigned since
            sampler = self.sampler
            decide = decider(sampler)
            self._plan = (sampler, decide)
        return decide

    @override
    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        """``Tracer.start_span``, with one context lookup and one sampler call (:meth:`_start`)."""
        return self._start(
            context_api.get_current() if context is None else context,
            (
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            ),
        )

    def _start(self, parent_context: context_api.Context, arguments: Arguments) -> trace_api.Span:
        """Mirrors Tracer.start_span; ``parent_context`` is the ``context`` argument or else the
        current context."""
        decide = self._decide()
        current = parent_context.get(_SPAN_KEY)  # trace_api.get_current_span(context)
        parent = current.get_span_context() if isinstance(current, trace_api.Span) else None
        if (
            arguments[4]  # links
            or decide is None
            or not self._tracer_config.is_enabled
            or (parent is not None and not isinstance(parent, SpanContext))  # the SDK raises
        ):
            return super().start_span(*arguments)
        id_generator = self.id_generator
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = id_generator.generate_trace_id()
            random_trace_id = id_generator.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        attributes = arguments[3]
        if attributes is not None and type(attributes) is not dict:
            # SamplingResult's wrapping, raising as it does for what is no mapping
            arguments = (*arguments[:3], MappingProxyType(attributes), *arguments[4:])
        decision = decide(parent, trace_id)
        span_context = SpanContext(
            trace_id,
            id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[(decision is _SAMPLE) | random_trace_id << 1],
            trace_state=None if parent is None else parent.trace_state,  # the samplers' choice
        )
        record_end_metrics = self._tracer_metrics.start_span(parent, decision)
        if decision is _DROP:  # not recording
            return trace_api.NonRecordingSpan(context=span_context)
        span = _new_span(self, arguments, span_context, parent, record_end_metrics)
        self.span_processor.on_start(span, parent_context=arguments[1])  # the rest of Span.start
        return span

    @override
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan:
        """``Tracer.start_as_current_span``: a context manager that is also a decorator.

        (The SDK declares its generator-based context manager's class as the return type; this
        is another class with the same behaviour, hence the ignore.)"""
        return CurrentSpan(
            self,
            (
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            ),
            end_on_exit,
        )


class CurrentSpan:
    """What :meth:`FastTracer.start_as_current_span` returns: entering starts the span and makes
    it current; leaving restores the context, records an exception and ends the span, as the
    SDK's ``Tracer.start_as_current_span`` and ``trace.use_span`` do."""

    __slots__ = ("_arguments", "_end_on_exit", "_span", "_token", "_tracer")

    def __init__(self, tracer: FastTracer, arguments: Arguments, end_on_exit: bool) -> None:
        self._tracer, self._arguments, self._end_on_exit = tracer, arguments, end_on_exit

    def __enter__(self) -> trace_api.Span:
        current = context_api.get_current()
        context = self._arguments[1]
        span = self._tracer._start(current if context is None else context, self._arguments)
        # use_span: the span is set in the current context, whichever context parented it.
        self._token = context_api.attach(context_api.set_value(_SPAN_KEY, span, current))
        self._span = span
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Mirrors trace.use_span: detach, then the exception (an Exception, not any
        # BaseException) on a recording span, then the end.
        span = self._span
        context_api.detach(self._token)
        if isinstance(exc, Exception) and span.is_recording():
            _, _, _, _, _, _, record_exception, set_status_on_exception = self._arguments
            if record_exception:
                span.record_exception(exc)
            if set_status_on_exception:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self._end_on_exit:
            if type(span) is _Span:
                _end(span)
            else:
                span.end()

    def __call__(self, function: F) -> F:
        """As a decorator: the SDK's own context manager (a span per call, async functions
        included), which starts its spans through :meth:`FastTracer.start_span` still."""
        sdk = Tracer.start_as_current_span(self._tracer, *self._arguments, self._end_on_exit)
        decorated: F = sdk(function)
        return decorated


class FastTracerProvider(TracerProvider):
    """The SDK's ``TracerProvider`` handing out :class:`FastTracer`\\ s."""

    @override
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        tracer = super().get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        # The SDK makes and caches its tracers itself (TracerProvider.get_tracer): re-classing
        # the one it made keeps its cache, tracer configs and resource updates as they are.
        # FastTracer adds methods and a cache, no state to initialise.
        if type(tracer) is Tracer:
            tracer.__class__ = FastTracer
        return tracer


def install(provider: object) -> bool:
    """Makes ``provider``, the SDK's ``TracerProvider``, hand out :class:`FastTracer`\\ s;
    False (and nothing changed) for any other provider or SDK release."""
    if type(provider) is not TracerProvider or not pinned.sdk():
        return False
    # As in FastTracerProvider.get_tracer: methods only, the SDK's object and state as they are.
    provider.__class__ = FastTracerProvider
    with provider._tracers_lock:
        for tracer in provider._tracers.values():
            if type(tracer) is Tracer:
                tracer.__class__ = FastTracer
    return True
