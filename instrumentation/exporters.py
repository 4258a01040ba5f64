"""OTLP/gRPC span and log exporters that send :mod:`~tbmon.instrumentation._internal.encoding`'s
bytes: the SDK's exporters with their protobuf encoding replaced, and nothing else.

Encoding is the largest CPU cost a traced bot pays for its telemetry: the stock encoder builds
upb messages and serializes them, about 42 us per span with ten attributes, where writing the
same bytes directly takes several times less (``python -m bench encoding``). Everything else is
the SDK's: the ``OTEL_EXPORTER_OTLP_*`` settings (endpoint, insecure, headers, timeout,
compression, certificates), retries with backoff and reconnection. ``OTEL_TRACES_EXPORTER=tbmon``
and ``OTEL_LOGS_EXPORTER=tbmon`` select them (entry points in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan

from tbmon.instrumentation._internal.encoding import encode_logs, encode_spans

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class _BytesStub:
    """What the SDK's exporters call instead of the generated stub: ``Export`` takes the request
    already serialized."""

    def __init__(
        self, channel: grpc.Channel, method: str, response: Callable[[bytes], object]
    ) -> None:
        # No request serializer: grpc sends bytes as they are.
        self.Export = channel.unary_unary(
            method, request_serializer=None, response_deserializer=response
        )


class TbmonSpanExporter(OTLPSpanExporter):
    """:class:`OTLPSpanExporter` sending spans encoded by :func:`encode_spans`."""

    def _initialize_channel_and_stub(self) -> None:
        # The SDK's channel (credentials, compression, options); its generated stub is replaced.
        # The SDK leaves the method unannotated and declares _client as None.
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        stub = _BytesStub(self._channel, TRACES_METHOD, ExportTraceServiceResponse.FromString)
        self._client = stub  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_spans(data)


class TbmonLogExporter(OTLPLogExporter):
    """:class:`OTLPLogExporter` sending log records encoded by :func:`encode_logs`."""

    def _initialize_channel_and_stub(self) -> None:
        # The SDK's channel (credentials, compression, options); its generated stub is replaced.
        # The SDK leaves the method unannotated and declares _client as None.
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        stub = _BytesStub(self._channel, LOGS_METHOD, ExportLogsServiceResponse.FromString)
        self._client = stub  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableLogRecord]) -> bytes:  # type: ignore[override]
        """Bytes where the SDK declares the request message: the stub sends them as they are."""
        return encode_logs(data)
