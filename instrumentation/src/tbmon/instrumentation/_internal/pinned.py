"""The guard of every reach into the OpenTelemetry SDK's private members: the releases mirrored,
and one warning when tbmon stands aside.

tbmon reads or replaces a few private members of these exact releases (constraints.txt pins
them; pyproject.toml accepts any newer one, see there):

- :mod:`.tracing`, :mod:`.logs` and :mod:`.metrics` reproduce private functions of the SDK and
  of the logging instrumentation (the leaner span, log and metric paths);
- :mod:`tbmon.instrumentation.delivery` gives the batch processors' ``_batch_processor`` its own
  ``_queue`` and ``_metrics`` (exact drop counts);
- :mod:`tbmon.instrumentation.exporters` replaces the OTLP/gRPC exporters'
  ``_initialize_channel_and_stub`` stub and ``_translate_data`` (tbmon's encoder);
- :mod:`.encoding` reads ``span._events`` and ``span._links`` (no copies under a lock);
- :mod:`tbmon.instrumentation.configurator` passes the SDK configurator's processor factories.

Each asks here first. On another release (or with :envvar:`TBMON_SDK_MIRRORS` ``off``) the
answer is no: the SDK's own public paths run, telemetry is exported as the stock distro exports
it, and one warning (for the process, not per part) says what is lost: the speed of the leaner
paths and the count of items dropped from a full queue.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Final

from opentelemetry.exporter.otlp.proto.grpc.version import __version__ as exporter_version
from opentelemetry.instrumentation.logging.version import __version__ as logging_version
from opentelemetry.sdk.version import __version__ as sdk_version

from tbmon.instrumentation.environment_variables import TBMON_SDK_MIRRORS

SDK: Final = "1.45.2"
#: opentelemetry-exporter-otlp-proto-grpc (and -proto-common, whose bytes the encoder equals).
EXPORTER: Final = "1.45.2"
LOGGING_INSTRUMENTATION: Final = "0.66b2"

_OFF: Final = frozenset({"off", "false", "0", "no"})

logger = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether :envvar:`TBMON_SDK_MIRRORS` lets tbmon use the SDK's privates at all."""
    return os.environ.get(TBMON_SDK_MIRRORS, "on").strip().lower() not in _OFF


def sdk_release() -> bool:
    """Whether the installed opentelemetry-sdk is the release mirrored (the version alone)."""
    return sdk_version == SDK


def sdk() -> bool:
    """Whether tbmon may use the installed opentelemetry-sdk's privates (warns once if not)."""
    return _allowed(sdk_release())


def exporter() -> bool:
    """Whether tbmon may replace the installed OTLP/gRPC exporters' privates (warns once if
    not)."""
    return _allowed(exporter_version == EXPORTER)


def logging_instrumentation() -> bool:
    """Whether the installed opentelemetry-instrumentation-logging is the one mirrored (and
    the mirrors are on; warns once if not)."""
    return _allowed(logging_version == LOGGING_INSTRUMENTATION)


def _allowed(release: bool) -> bool:
    if release and enabled():
        return True
    fall_back()
    return False


@functools.cache
def fall_back() -> None:
    """The one warning of a process in which tbmon stands aside."""
    reason = (
        f"{TBMON_SDK_MIRRORS} is off"
        if enabled() is False
        else (
            f"the installed opentelemetry-sdk {sdk_version}, "
            f"opentelemetry-exporter-otlp-proto-grpc {exporter_version} and "
            f"opentelemetry-instrumentation-logging {logging_version} are not all the releases "
            f"tbmon mirrors ({SDK}, {EXPORTER}, {LOGGING_INSTRUMENTATION})"
        )
    )
    logger.warning(
        "tbmon: %s; using the OpenTelemetry SDK's own code paths: telemetry is exported as the "
        "stock distro exports it, without tbmon's faster span, log and encoding paths, and "
        "spans and log records dropped from a full queue are not counted",
        reason,
    )
