"""The tbmon distro: defaults that make ``opentelemetry-instrument python bot.py`` the whole set-up.

Like the stock ``opentelemetry-distro`` it only calls ``os.environ.setdefault``, so every
``OTEL_*`` variable a user sets wins. What differs from the stock defaults, and why:

- all three signals go over OTLP/gRPC to the local collector; traces and logs through tbmon's
  exporter (``tbmon``: the same OTLP bytes, encoded several times cheaper than the SDK's). A
  signal the user sends over OTLP/HTTP (``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL``) gets the
  SDK's HTTP exporter and the collector's HTTP receiver;
- metrics every 2 s instead of 60 s: a trading dashboard and its alerts need seconds (an
  alert reaches Telegram within 5 s of its condition, beyond its ``for`` and group wait; an
  export costs the bot well under a millisecond: docs/performance.md);
- spans and logs leave within a second, and up to 8192 of each wait in memory while the
  collector is away (the SDK's 2048 fill in seconds at trading rates), counted when dropped;
- log records carry trace and span ids, and the console format shows them;
- the logging instrumentation's handler, once loaded, emits the same log records with less CPU
  (:mod:`tbmon.instrumentation._internal.logs`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

# Only modules that leave the SDK unimported: it reads OTEL_* variables at import time, and
# those are repaired first (see TbmonDistro._configure).
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk.environment_variables import OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
from opentelemetry.util._importlib_metadata import EntryPoint

from tbmon.instrumentation.settings import repair_otel_environment
from tbmon.settings import StackSettings, read_settings_or_defaults

if TYPE_CHECKING:  # the API's private module, in BaseDistro's signature: for the checker only
    from opentelemetry.util._importlib_metadata import EntryPoint

logger = logging.getLogger(__name__)

#: The service name of a bot that names none (in OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES).
DEFAULT_SERVICE_NAME = "trading-bot"
#: The console log format: the record's trace and span ids beside its message.
LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"
)

#: Spans (or log records) kept in memory while the collector is away: the SDK's 2048 fill in
#: seconds at trading rates.
QUEUE_SIZE = 8192
#: How long a span or log record waits for its batch, in ms (the SDK's 5000 makes traces late).
SCHEDULE_DELAY_MILLIS = 1000

#: The OTEL_* defaults the distro sets; the collector endpoints are added at start-up.
OTEL_DEFAULTS: dict[str, str] = {
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    "OTEL_BSP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MILLIS),
    "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
    "OTEL_BLRP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MILLIS),
    "OTEL_BLRP_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
    "OTEL_PYTHON_LOG_CORRELATION": "true",
    "OTEL_PYTHON_LOG_FORMAT": LOG_FORMAT,
    "OTEL_PYTHON_LOG_LEVEL": "info",
}
GRPC = "grpc"
#: The signals whose exporter is ``tbmon`` over gRPC, ``otlp`` (the SDK's) over HTTP.
FAST_EXPORTED = {"TRACES": "OTEL_TRACES_EXPORTER", "LOGS": "OTEL_LOGS_EXPORTER"}
SIGNALS = ("TRACES", "METRICS", "LOGS")


def _stack_settings() -> StackSettings:
    """The local stack's settings, for its ports; an invalid one is named and its default used
    (a bad ``TBMON_PROMETHEUS_PORT`` must not move the bot off ``TBMON_OTLP_GRPC_PORT``)."""
    return read_settings_or_defaults(StackSettings, _warn_invalid_stack)


def _warn_invalid_stack(problems: str) -> None:
    logger.warning("tbmon: ignoring invalid stack settings, using their defaults: %s", problems)


def collector_endpoints(stack: StackSettings) -> dict[str, str]:
    """The local collector's OTLP receivers by protocol: gRPC, and HTTP's base URL."""
    return {GRPC: stack.url(stack.otlp_grpc_port), "http": stack.url(stack.otlp_http_port)}


def _protocol(signal: str | None = None) -> str:
    general = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or GRPC
    if signal is None:
        return general
    return os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or general


def _names_service(resource_attributes: str) -> bool:
    return any(
        pair.split("=", 1)[0].strip() == "service.name" for pair in resource_attributes.split(",")
    )


def _endpoint(endpoints: dict[str, str], protocol: str, signal: str | None = None) -> str:
    if protocol == GRPC:
        return endpoints[GRPC]
    base = endpoints["http"]
    return f"{base}/v1/{signal.lower()}" if signal else base


class TbmonDistro(BaseDistro):  # type: ignore[misc]
    """Registered as the ``tbmon`` distro (entry-point group ``opentelemetry_distro``)."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in OTEL_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # Before anything imports the SDK, which parses some of them at import time.
        repair_otel_environment(OTEL_DEFAULTS)
        # tbmon's exporter speaks gRPC; a signal the user sends over HTTP gets the SDK's.
        for signal, variable in FAST_EXPORTED.items():
            os.environ.setdefault(variable, "tbmon" if _protocol(signal) == GRPC else "otlp")
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ:
            endpoints = collector_endpoints(_stack_settings())
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _endpoint(endpoints, _protocol())
            for signal in SIGNALS:  # a signal on another protocol: that receiver's endpoint
                if _protocol(signal) != _protocol():
                    os.environ.setdefault(
                        f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT",
                        _endpoint(endpoints, _protocol(signal), signal),
                    )
        if not _names_service(os.environ.get(OTEL_RESOURCE_ATTRIBUTES, "")):
            os.environ.setdefault(OTEL_SERVICE_NAME, DEFAULT_SERVICE_NAME)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Instruments as the base distro does (``opentelemetry-instrument`` calls this for each
        instrumentor); the logging instrumentation's handler then gets the leaner emit."""
        super().load_instrumentor(entry_point, **kwargs)
        from tbmon.instrumentation._internal import logs  # noqa: PLC0415 - imports the SDK

        logs.install()
