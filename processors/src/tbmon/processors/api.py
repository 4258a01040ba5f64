"""The plugin API: a processor is a class with a hook per signal, a batch in and a batch out.

A :class:`Batch` is one OTLP export request as the collector sent it. It stays serialized until a
plugin asks for the message, so a plugin that only needs to know whether a batch concerns it
(:meth:`Batch.contains`) costs a substring search, and a batch no plugin changes is forwarded as
the very bytes that came in.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import ClassVar, Generic, TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import ResourceMetrics

from tbmon.processors import _lite

__all__ = [
    "Batch",
    "ExportLogsServiceRequest",
    "ExportMetricsServiceRequest",
    "ExportTraceServiceRequest",
    "MalformedBatchError",
    "Processor",
    "Request",
    "Signal",
    "handles",
]

Request = TypeVar(
    "Request", ExportTraceServiceRequest, ExportMetricsServiceRequest, ExportLogsServiceRequest
)


class MalformedBatchError(ValueError):
    """The bytes of a batch are not a valid OTLP export request."""


class Signal(Enum):
    """The three OTLP signals, and what the host needs to know about each."""

    SPANS = "spans"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def request_type(
        self,
    ) -> type[ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest]:
        return _REQUEST_TYPES[self]

    @property
    def hook(self) -> str:
        """The :class:`Processor` method that handles this signal."""
        return f"process_{self.value}"

    @property
    def service(self) -> str:
        """The OTLP gRPC service of this signal."""
        return _SERVICES[self]

    @property
    def method(self) -> str:
        """The gRPC method the OTLP exporter calls for this signal."""
        return f"/{self.service}/Export"

    def count(self, raw: bytes) -> int:
        """Spans, metric data points or log records in a serialized request.

        Reads only the envelope (the items stay opaque bytes), so it costs next to nothing;
        raises :class:`MalformedBatchError` when even the envelope does not parse.
        """
        try:
            return _lite.count(self.value, raw)
        except DecodeError as error:
            raise MalformedBatchError(
                f"not an OTLP {self.value} export request: {error}"
            ) from error

    def validate(self, raw: bytes) -> None:
        """Parse a serialized request fully; raises :class:`MalformedBatchError` if it fails."""
        try:
            self.request_type.FromString(raw)
        except DecodeError as error:
            raise MalformedBatchError(f"not a valid OTLP {self.value} export request") from error


_REQUEST_TYPES: dict[
    Signal,
    type[ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest],
] = {
    Signal.SPANS: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
_SERVICES = {
    Signal.SPANS: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}


class Batch(Generic[Request]):
    """One OTLP export request, serialized until a plugin reads or edits it.

    - :meth:`contains` searches the serialized bytes: every string (attribute keys and values,
      names, bodies) appears there verbatim, so it is a cheap, exact "can this concern me?".
    - :meth:`read` parses once and returns the message for reading; changes to it are *not*
      forwarded.
    - :meth:`edit` returns the same message and marks the batch changed: the host forwards the
      message as the hook leaves it.
    """

    __slots__ = ("_edited", "_message", "_raw", "message_type")

    def __init__(
        self, message_type: type[Request], raw: bytes, message: Request | None = None
    ) -> None:
        self.message_type: type[Request] = message_type
        self._raw = raw
        self._message: Request | None = message
        self._edited = False

    @classmethod
    def of(cls, message: Request) -> Batch[Request]:
        """A batch holding a message a plugin (or a test) built."""
        batch = cls(type(message), b"", message)
        batch._edited = True
        return batch

    @property
    def raw(self) -> bytes:
        """The serialized request; after :meth:`edit`, the edited message serialized anew."""
        if self._edited:
            assert self._message is not None
            return self._message.SerializeToString()
        return self._raw

    @property
    def edited(self) -> bool:
        """Whether :meth:`edit` was called (or the batch was built from a message)."""
        return self._edited

    @property
    def parsed(self) -> bool:
        """Whether the batch's message exists (parsed by :meth:`read`, or given)."""
        return self._message is not None

    def contains(self, *needles: bytes) -> bool:
        """Whether any of the byte strings occurs in the serialized request."""
        raw = self.raw
        return any(needle in raw for needle in needles)

    def read(self) -> Request:
        """The request, parsed once; for reading (see :meth:`edit` to change it)."""
        if self._message is None:
            message = self.message_type()
            try:
                message.ParseFromString(self._raw)
            except DecodeError as error:
                raise MalformedBatchError(f"not a valid {self.message_type.__name__}") from error
            self._message = message
        return self._message

    def edit(self) -> Request:
        """The request, to change in place; the host forwards it as the hook leaves it."""
        message = self.read()
        self._edited = True
        return message

    def message_if_edited(self) -> Request | None:
        return self._message if self._edited else None


class Processor:
    """Base class of a processor plugin. Override the hooks of the signals you handle.

    - A hook gets a :class:`Batch` and returns one: the same (changed or not) or a new one
      (``Batch.of(request)``). Hooks you do not override cost nothing: the host skips them.
    - The host never calls one plugin's hooks concurrently, so a plugin may keep state without
      locks. The same batch can come twice (the collector retries when the next hop was down):
      count things by their identity, not by arrival.
    - A hook that raises, returns something else than a batch, or runs past its time budget is
      isolated: the batch goes on as it was before the hook, the error is counted and logged.
      A plugin whose skipped work would be unsafe (redaction: the batch would go on unmasked)
      sets ``fail_closed = True``: its failure then refuses the request instead (UNAVAILABLE,
      the collector keeps the batch and retries), unless PROCESSORS_REJECT_ON_FAILURE says
      otherwise.
    - The class is built with no arguments; read configuration from the environment with
      ``tbmon.settings.read_settings(YourSettings)`` (a ``tbmon.settings.TbmonSettings`` with
      your own prefix), so a bad value fails at start-up naming its variable.
    """

    #: Refuse the request when this plugin fails, rather than pass the batch on without it.
    fail_closed: ClassVar[bool] = False
    #: The hooks are bounded (no I/O, no waiting, linear time in the batch), so the host may run
    #: them on its own loop and save the hand-off to the plugin's thread. The budget is then
    #: checked after the call (an overrun result is dropped all the same), but a call that never
    #: returned would stop the host: leave False for anything that could block.
    runs_inline: ClassVar[bool] = False

    def process_spans(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        return batch

    def process_metrics(
        self, batch: Batch[ExportMetricsServiceRequest]
    ) -> Batch[ExportMetricsServiceRequest]:
        return batch

    def process_logs(
        self, batch: Batch[ExportLogsServiceRequest]
    ) -> Batch[ExportLogsServiceRequest]:
        return batch

    def collect_metrics(self, now_unix_nano: int) -> Sequence[ResourceMetrics]:
        """Metrics the plugin derives, collected every PROCESSORS_DERIVE_INTERVAL_SECONDS.

        The host sends them to the next hop like any metrics batch; use the resource of the
        telemetry they derive from, so they carry that service's ``job`` and ``instance``.
        """
        return ()

    def close(self) -> None:
        """Release what the plugin holds; called once when the host stops."""


def handles(processor: Processor | type[Processor], hook: str) -> bool:
    """Whether a processor (or its class) overrides a hook (``process_spans``...)."""
    cls = processor if isinstance(processor, type) else type(processor)
    return getattr(cls, hook) is not getattr(Processor, hook)
