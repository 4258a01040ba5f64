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


class TbmonSpanExporter(OTLPSpanExporter):
    """:class:`OTLPSpanExporter` sending spans encoded by :func:`encode_spans`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._attempts = _Attempts()  # before the SDK's __init__ builds the stub
        self._tbmon = pinned.exporter()  # else the SDK's exporter, as it is
        super().__init__(*args, **kwargs)

    def _initialize_channel_and_stub(self) -> None:
        # The SDK's channel (credentials, compression, options); its generated stub is replaced.
        # The SDK leaves the method unannotated and declares _client as None. It calls this again
        # to reconnect, within an export.
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        if not self._tbmon:
            return
        response = ExportTraceServiceResponse.FromString
        stub = _BytesStub(self._channel, TRACES_METHOD, response, self._attempts)
        self._client = stub  # type: ignore[assignment]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._attempts.unconfirmed = False
        return super().export(spans)

    @property
    def unconfirmed(self) -> bool:
        """Whether the last export, if it failed, may have reached the collector anyway."""
        return self._attempts.unconfirmed

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_spans(data) if self._tbmon else super()._translate_data(data)


class TbmonLogExporter(OTLPLogExporter):
    """:class:`OTLPLogExporter` sending log records encoded by :func:`encode_logs`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._attempts = _Attempts()  # before the SDK's __init__ builds the stub
        self._tbmon = pinned.exporter()  # else the SDK's exporter, as it is
        super().__init__(*args, **kwargs)

    def _initialize_channel_and_stub(self) -> None:
        # As TbmonSpanExporter's.
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        if not self._tbmon:
            return
        response = ExportLogsServiceResponse.FromString
        stub = _BytesStub(self._channel, LOGS_METHOD, response, self._attempts)
        self._client = stub  # type: ignore[assignment]

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self._attempts.unconfirmed = False
        return super().export(batch)

    @property
    def unconfirmed(self) -> bool:
        """Whether the last export, if it failed, may have reached the collector anyway."""
        return self._attempts.unconfirmed

    def _translate_data(self, data: Sequence[ReadableLogRecord]) -> Any:
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_logs(data) if self._tbmon else super()._translate_data(data)
