"""The tbmon distro: defaults that make ``opentelemetry-instrument python bot.py`` the whole set-up.

Like the stock ``opentelemetry-distro`` it only calls ``os.environ.setdefault``, so every
``OTEL_*`` variable a user sets wins. What differs from the stock defaults, and why:

- all three signals go over OTLP/gRPC to the local collector; traces and logs through tbmon's
  exporter (``tbmon``: the same OTLP bytes, encoded several times cheaper than the SDK's);
- metrics every 5 s instead of 60 s: a trading dashboard and its alerts need seconds;
- spans and logs leave within a second, and up to 8192 of each wait in memory while the
  collector is away (the SDK's 2048 fill in seconds at trading rates), counted when dropped;
- log records carry trace and span ids, and the console format shows them;
- the logging instrumentation's handler, once loaded, emits the same log records with less CPU
  (:mod:`tbmon.instrumentation._internal.logs`).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk.environment_variables import OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
from opentelemetry.util._importlib_metadata import EntryPoint

from tbmon.instrumentation._internal import logs
from tbmon.instrumentation.delivery import QUEUE_SIZE, SCHEDULE_DELAY_MILLIS
from tbmon.settings import StackSettings

#: The service name of a bot that names none (in OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES).
DEFAULT_SERVICE_NAME = "trading-bot"
#: The console log format: the record's trace and span ids beside its message.
LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"
)

#: The OTEL_* defaults the distro sets; the collector endpoint is added at start-up.
OTEL_DEFAULTS: dict[str, str] = {
    "OTEL_TRACES_EXPORTER": "tbmon",
    "OTEL_LOGS_EXPORTER": "tbmon",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_METRIC_EXPORT_INTERVAL": "5000",
    "OTEL_BSP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MILLIS),
    "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
    "OTEL_BLRP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MILLIS),
    "OTEL_BLRP_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
    "OTEL_PYTHON_LOG_CORRELATION": "true",
    "OTEL_PYTHON_LOG_FORMAT": LOG_FORMAT,
    "OTEL_PYTHON_LOG_LEVEL": "info",
}


def collector_endpoint() -> str:
    """The local stack's OTLP/gRPC receiver, moved with ``TBMON_OTLP_GRPC_PORT`` like the stack."""
    try:
        stack = StackSettings()
    except ValueError:  # invalid stack settings: `tbmon stack` reports them, the bot goes on
        return "http://127.0.0.1:4317"
    return stack.url(stack.otlp_grpc_port)


def _names_service(resource_attributes: str) -> bool:
    return any(
        pair.split("=", 1)[0].strip() == "service.name" for pair in resource_attributes.split(",")
    )


class TbmonDistro(BaseDistro):  # type: ignore[misc]
    """Registered as the ``tbmon`` distro (entry-point group ``opentelemetry_distro``)."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in OTEL_DEFAULTS.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", collector_endpoint())
        if not _names_service(os.environ.get(OTEL_RESOURCE_ATTRIBUTES, "")):
            os.environ.setdefault(OTEL_SERVICE_NAME, DEFAULT_SERVICE_NAME)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Instruments as the base distro does (``opentelemetry-instrument`` calls this for each
        instrumentor); the logging instrumentation's handler then gets the leaner emit."""
        super().load_instrumentor(entry_point, **kwargs)
        logs.install()
