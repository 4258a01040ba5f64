"""A leaner way from a stdlib log record to the log record processors: the same records.

opentelemetry-instrumentation-logging's ``LoggingHandler`` looks the record's logger up in the
provider (a lock, a dict and a ``WeakSet`` insertion), translates the record into an API
``LogRecord``, and the SDK's ``Logger.emit`` turns that into a ``ReadWriteLogRecord``, cleaning
every attribute through ``_clean_attribute_value``; the ``BatchLogRecordProcessor`` then copies
the API record with ``copy.copy``: 29 us a record with four ``extra`` fields and the four
log-correlation ones, on our machines. :class:`FastLoggingHandler` keeps each record name's
logger, makes the same two records directly with the attributes copied (:mod:`.attributes`), and
:class:`FastBatchLogRecordProcessor` copies without ``copy.copy``'s dispatch: 13 us.

The handler's own code still decides what a record holds: its ``_get_attributes`` (``extra``
fields, the event name, ``code.*`` with ``OTEL_PYTHON_LOG_CODE_ATTRIBUTES``, ``exception.*``)
and ``format``. A record whose attributes need cleaning (values other than ``str``, ``bool``,
``int``, ``float``, or beyond the log record limits), a logger other than the SDK's, a release
other than the ones mirrored (:mod:`.pinned`) take the stock code. Each part names the function
of opentelemetry-sdk 1.45.2 or opentelemetry-instrumentation-logging 0.66b2 it mirrors.

:func:`install` re-classes the handler the logging instrumentation put on the root logger (its
level, provider and options stay), as tbmon's distro does once that instrumentation is loaded;
:func:`batching` re-classes the configurator's log record processors.

Two changes to what a record holds, on every release (:class:`CorrelatedLoggingHandler`):

- the log-correlation fields the logging instrumentation's record factory sets for formatters
  (``otelTraceID``, ``otelSpanID``, ``otelTraceSampled``, ``otelServiceName``) are not exported
  as attributes: an OTLP log record carries its trace and span ids in their own fields, once;
- the console keeps its trace ids through an application's own ``logging.config.dictConfig`` or
  ``fileConfig`` (freqtrade's, Django's...): :func:`keep_trace_ids` adds
  :data:`TRACE_IDS` before ``%(message)s`` (or ``{message}``) in the format of each console
  handler those calls leave on the root logger, unless it shows them already. The application's
  handlers, levels and the rest of its format stay as it configured them; file, syslog, socket,
  queue and buffering handlers are left alone.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import logging.handlers
import os
from collections.abc import Callable, Iterable
from time import time_ns
from typing import Any, Final

from opentelemetry._logs import Logger as APILogger
from opentelemetry._logs import LogRecord, NoOpLogger, get_logger
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.logging.environment_variables import (
    OTEL_PYTHON_LOG_CORRELATION,
)
from opentelemetry.instrumentation.logging.handler import LoggingHandler, _internal_logger
from opentelemetry.sdk._logs import Logger, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span
from opentelemetry.trace.propagation import _SPAN_KEY
from typing_extensions import override

from tbmon.instrumentation._internal import pinned
from tbmon.instrumentation._internal.attributes import plain_copy

#: LoggingHandler._translate's severity texts where OTel's differ from Python's level names.
_SEVERITY_TEXT: Final = {"WARNING": "WARN", "CRITICAL": "FATAL"}
#: The record fields of log correlation, for formatters only: never exported as attributes.
CORRELATION_FIELDS: Final = frozenset(
    ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")
)
#: What a console line shows of its trace (the distro's OTEL_PYTHON_LOG_FORMAT has it too).
TRACE_IDS: Final = "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s]"
_BRACE_TRACE_IDS: Final = "[trace_id={otelTraceID} span_id={otelSpanID}]"
#: Handlers that are no console: their format is the application's business.
_NOT_CONSOLE: Final = (
    logging.FileHandler,
    logging.handlers.BufferingHandler,
    logging.handlers.SysLogHandler,
    logging.handlers.SocketHandler,
    logging.handlers.QueueHandler,
    logging.handlers.HTTPHandler,
    logging.handlers.SMTPHandler,
    logging.handlers.NTEventLogHandler,
    LoggingHandler,
)


class CorrelatedLoggingHandler(LoggingHandler):
    """``LoggingHandler`` whose records leave the correlation fields out of their attributes:
    the trace and span ids travel in the record's own fields."""

    @override
    def _get_attributes(self, record: logging.LogRecord) -> Any:
        found = super()._get_attributes(record)
        attributes = found[0] if isinstance(found, tuple) else found
        if isinstance(attributes, dict):
            for name in CORRELATION_FIELDS.intersection(attributes):
                del attributes[name]
        return found


class FastLoggingHandler(CorrelatedLoggingHandler):
    """``LoggingHandler`` with a leaner ``emit`` for the SDK's loggers."""

    #: The logger of each record name (set by :func:`install`).
    _loggers: dict[str, APILogger]

    @override
    def emit(self, record: logging.LogRecord) -> None:
        # Mirrors LoggingHandler.emit, the provider's logger kept per record name.
        if self._is_emitting.get():
            _internal_logger.warning(
                "LoggingHandler.emit detected recursive logging, skipping to prevent deadlock."
            )
            return
        token = self._is_emitting.set(True)
        try:
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = get_logger(record.name, logger_provider=self._logger_provider)
                self._loggers[record.name] = logger
            done = type(logger) is Logger and self._emit(logger, record)
            if not done and not isinstance(logger, NoOpLogger):
                logger.emit(self._translate(record))
        finally:
            self._is_emitting.reset(token)

    def _emit(self, logger: Logger, record: logging.LogRecord) -> bool:
        """``logger.emit(self._translate(record))`` for a record of plain attributes, the two
        records made directly; False (nothing done) for attributes that need cleaning."""
        if not logger._is_enabled():  # Logger.emit
            return True
        # LoggingHandler._translate
        timestamp, observed_timestamp = int(record.created * 1e9), time_ns()
        severity_number = std_to_otel(record.levelno)
        body = self.format(record) if self.formatter else record.getMessage()
        attributes, event_name = self._get_attributes(record)
        limits = logger._log_record_limits
        plain = plain_copy(
            attributes, limits.max_log_record_attributes, limits.max_log_record_attribute_length
        )
        if plain is None:
            return False
        # LogRecord.__init__ (the opentelemetry-api's), with no ids and no exception given
        context = get_current()
        span = context.get(_SPAN_KEY)  # get_current_span(context).get_span_context()
        span_context = span.get_span_context() if isinstance(span, Span) else INVALID_SPAN_CONTEXT
        api_record = object.__new__(LogRecord)
        api_record.timestamp = timestamp
        api_record.observed_timestamp = observed_timestamp
        api_record.context = context
        api_record.trace_id = span_context.trace_id
        api_record.span_id = span_context.span_id
        api_record.trace_flags = span_context.trace_flags
        api_record.severity_text = _SEVERITY_TEXT.get(record.levelname, record.levelname)
        api_record.severity_number = severity_number
        api_record.body = body
        # ReadWriteLogRecord.__post_init__: the attributes bounded by the limits
        bounded = BoundedAttributes(
            limits.max_log_record_attributes,
            immutable=False,
            max_value_len=limits.max_log_record_attribute_length,
        )
        bounded._dict = plain
        api_record.attributes = bounded
        api_record.event_name = event_name
        api_record.exception = None
        # Logger.emit: ReadWriteLogRecord._from_api_log_record, to the processors
        writable = object.__new__(ReadWriteLogRecord)
        writable.log_record = api_record
        writable.resource = logger._resource
        writable.instrumentation_scope = logger._instrumentation_scope
        writable.limits = limits
        logger._logger_metrics.emit_log()
        logger._multi_log_record_processor.on_emit(writable)
        return True


class FastBatchLogRecordProcessor(BatchLogRecordProcessor):
    """The SDK's batch processor with ``on_emit``'s two records made directly: ``copy.copy``
    finds its shallow copy through ``__reduce_ex__`` and ``copyreg`` (4.4 us) where a new object
    with the same ``__dict__`` is what comes out (1 us)."""

    @override
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        # Mirrors BatchLogRecordProcessor.on_emit.
        resource = log_record.resource if log_record.resource is not None else Resource.create({})
        api_log_record = object.__new__(LogRecord)  # copy.copy(log_record.log_record)
        vars(api_log_record).update(vars(log_record.log_record))
        api_log_record.context = Context()
        readable = object.__new__(ReadableLogRecord)  # ReadableLogRecord(...), a frozen dataclass
        vars(readable).update(
            log_record=api_log_record,
            resource=resource,
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        self._batch_processor.emit(readable)


def batching(
    factory: Callable[[LogRecordExporter], BatchLogRecordProcessor],
) -> Callable[[LogRecordExporter], BatchLogRecordProcessor]:
    """``factory``, its processors given :class:`FastBatchLogRecordProcessor`'s ``on_emit``
    (the SDK's batch processors only, on the SDK release mirrored)."""

    def create(exporter: LogRecordExporter) -> BatchLogRecordProcessor:
        processor = factory(exporter)
        if type(processor) is BatchLogRecordProcessor and pinned.sdk():
            processor.__class__ = FastBatchLogRecordProcessor  # a method, no state
        return processor

    return create


def install() -> bool:
    """:func:`fast_emit` for the handler the logging instrumentation installed, if any (else
    :func:`correlated`), and :func:`keep_trace_ids` when log correlation is on."""
    # The instrumentor's private class attributes (declared None, set when instrumented): read
    # with a default, as another release may not have them.
    handler: object = getattr(LoggingInstrumentor, "_logging_handler", None)
    correlating = os.environ.get(OTEL_PYTHON_LOG_CORRELATION, "false").strip().lower() == "true"
    factory: object = getattr(LoggingInstrumentor, "_old_factory", None)
    if correlating and factory is not None:  # its record factory sets the fields
        keep_trace_ids()
    if fast_emit(handler):
        return True
    correlated(handler)
    return False


def correlated(handler: object) -> bool:
    """Gives ``handler``, the logging instrumentation's stock ``LoggingHandler``,
    :class:`CorrelatedLoggingHandler`'s attributes (its private ``_get_attributes``, so on the
    release mirrored only); False for any other object or release."""
    if type(handler) is not LoggingHandler or not pinned.logging_instrumentation():
        return False
    handler.__class__ = CorrelatedLoggingHandler  # a method, no state
    return True


def with_trace_ids(handlers: Iterable[logging.Handler]) -> None:
    """:data:`TRACE_IDS` before the message in each console handler's format that lacks them."""
    for handler in handlers:
        if isinstance(handler, _NOT_CONSOLE):
            continue
        formatter = handler.formatter or logging.Formatter()
        style = formatter._style
        if "otelTraceID" in style._fmt:
            continue
        if type(style) is logging.PercentStyle and "%(message)s" in style._fmt:
            fmt = style._fmt.replace("%(message)s", f"{TRACE_IDS} %(message)s", 1)
        elif type(style) is logging.StrFormatStyle and "{message}" in style._fmt:
            fmt = style._fmt.replace("{message}", f"{_BRACE_TRACE_IDS} {{message}}", 1)
        else:
            continue
        # The formatter may be shared, and is the application's: a copy with the new format.
        copy = logging.Formatter.__new__(type(formatter))
        vars(copy).update(vars(formatter))
        copy._style = type(style)(fmt)
        copy._fmt = fmt
        handler.setFormatter(copy)


_CONFIGURATORS: Final = ("dictConfig", "fileConfig")


def keep_trace_ids() -> None:
    """Wrap ``logging.config.dictConfig`` and ``fileConfig`` so that the console handlers they
    leave on the root logger show trace ids (:func:`with_trace_ids`); once per process."""
    for name in _CONFIGURATORS:
        configure = getattr(logging.config, name)
        if getattr(configure, "_tbmon_trace_ids", False):
            continue

        @functools.wraps(configure)
        def configured(*args: Any, _configure: Any = configure, **kwargs: Any) -> Any:
            result = _configure(*args, **kwargs)
            try:
                with_trace_ids(logging.getLogger().handlers)
            except Exception:  # the application's logging must come up whatever happens here
                logging.getLogger(__name__).debug("keeping trace ids failed", exc_info=True)
            return result

        configured._tbmon_trace_ids = True  # type: ignore[attr-defined]
        setattr(logging.config, name, configured)


def fast_emit(handler: object) -> bool:
    """Gives ``handler``, the logging instrumentation's stock ``LoggingHandler``,
    :class:`FastLoggingHandler`'s ``emit``; False (and nothing changed) for any other object, or
    when the SDK or the logging instrumentation is not the release mirrored."""
    if type(handler) is not LoggingHandler:
        return False
    if not (pinned.sdk() and pinned.logging_instrumentation()):
        return False
    # Methods and a cache only: the instrumentation's object (root logger, level, provider,
    # options, its logging.config wrappers and uninstrument) stays as it is.
    handler.__class__ = FastLoggingHandler
    handler._loggers = {}  # type: ignore[attr-defined]  # FastLoggingHandler's, from now on
    return True
