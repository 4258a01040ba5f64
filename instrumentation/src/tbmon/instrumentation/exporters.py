"""OTLP/gRPC span and log exporters that send :mod:`~tbmon.instrumentation._internal.encoding`'s
bytes: the SDK's exporters with their protobuf encoding replaced, and nothing else.

Encoding is the largest CPU cost a traced bot pays for its telemetry: the stock encoder builds
upb messages and serializes them, about 42 us per span with ten attributes, where writing the
same bytes directly takes several times less (``python -m bench encoding``). Everything else is
the SDK's: the ``OTEL_EXPORTER_OTLP_*`` settings (endpoint, insecure, headers, timeout,
compression, certificates), retries with backoff and reconnection. ``OTEL_TRACES_EXPORTER=tbmon``
and ``OTEL_LOGS_EXPORTER=tbmon`` select them (entry points in pyproject.toml).

Both replace private members of the SDK's exporters (``_initialize_channel_and_stub``'s stub,
``_translate_data``), so they do so only on the exporter release mirrored
(:mod:`tbmon.instrumentation._internal.pinned`); on another they are the SDK's exporters
unchanged, stock encoding included (one warning for the process).

They also tell a failed export that may have arrived from one that did not
(:attr:`TbmonSpanExporter.unconfirmed`): when an attempt ran into its deadline (or was cancelled),
the collector may have received the request and the answer alone was lost; refused connections
and the collector's own refusals are losses for certain. :mod:`.delivery` counts the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tbmon.instrumentation._internal import pinned
from tbmon.instrumentation._internal.encoding import encode_logs, encode_spans

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


#: An attempt that ended so may have reached the collector: only its answer is known lost.
UNCONFIRMED_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})


class _Attempts:
    """Whether an attempt of the current export ended in :data:`UNCONFIRMED_CODES`. The batch
    processor exports one batch at a time (under its export lock), so one flag suffices."""

    unconfirmed = False


class _BytesStub:
    """What the SDK's exporters call instead of the generated stub: ``Export`` takes the request
    already serialized."""

    def __init__(
        self,
        channel: grpc.Channel,
        method: str,
        response: Callable[[bytes], object],
        attempts: _Attempts,
    ) -> None:
        # No request serializer: grpc sends bytes as they are.
        self._export = channel.unary_unary(
            method, request_serializer=None, response_deserializer=response
        )
        self._attempts = attempts

    def Export(  # noqa: N802 - the generated stub's name, which the SDK calls
        self, request: bytes, metadata: object = None, timeout: float | None = None
    ) -> object:
        try:
            return self._export(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call) and error.code() in UNCONFIRMED_CODES:
                self._attempts.unconfirmed = True
            raise


class _BytesExporter:
    """What tbmon's span and log exporters share, mixed in before the SDK's exporter: the SDK
    builds the channel (credentials, compression, options), tbmon replaces its generated stub by
    one that sends the encoded bytes and notes unconfirmed failures. Subclasses name the method
    and the response message."""

    _METHOD: str
    _RESPONSE: Callable[[bytes], Any]
    _client: Any  # the SDK's generated stub, or tbmon's (the SDK declares it None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._attempts = _Attempts()  # before the SDK's __init__ builds the stub
        self._tbmon = pinned.exporter()  # else the SDK's exporter, as it is
        super().__init__(*args, **kwargs)

    def _initialize_channel_and_stub(self) -> None:
        # The SDK leaves the method unannotated. It calls this again to reconnect, within an
        # export.
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        if self._tbmon:
            channel = self._channel  # type: ignore[attr-defined]
            self._client = _BytesStub(channel, self._METHOD, self._RESPONSE, self._attempts)

    @property
    def unconfirmed(self) -> bool:
        """Whether the last export, if it failed, may have reached the collector anyway."""
        return self._attempts.unconfirmed


class TbmonSpanExporter(_BytesExporter, OTLPSpanExporter):
    """:class:`OTLPSpanExporter` sending spans encoded by :func:`encode_spans`."""

    _METHOD = TRACES_METHOD
    _RESPONSE = ExportTraceServiceResponse.FromString

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._attempts.unconfirmed = False
        return super().export(spans)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_spans(data) if self._tbmon else super()._translate_data(data)


class TbmonLogExporter(_BytesExporter, OTLPLogExporter):
    """:class:`OTLPLogExporter` sending log records encoded by :func:`encode_logs`."""

    _METHOD = LOGS_METHOD
    _RESPONSE = ExportLogsServiceResponse.FromString

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self._attempts.unconfirmed = False
        return super().export(batch)

    def _translate_data(self, data: Sequence[ReadableLogRecord]) -> Any:
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_logs(data) if self._tbmon else super()._translate_data(data)
