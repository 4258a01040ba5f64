"""The versions the leaner paths mirror: with any other installed, they stay out of the way.

Each of :mod:`.tracing`, :mod:`.logs` and :mod:`.metrics` reproduces a few private functions of
these exact releases (constraints.txt pins them). Another release may have changed what they
mirror, so there ``install`` changes nothing and the SDK's own code runs.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.instrumentation.logging.version import __version__ as logging_version
from opentelemetry.sdk.version import __version__ as sdk_version

SDK: Final = "1.45.2"
LOGGING_INSTRUMENTATION: Final = "0.66b2"


def sdk() -> bool:
    """Whether the installed opentelemetry-sdk is the one mirrored."""
    return sdk_version == SDK


def logging_instrumentation() -> bool:
    """Whether the installed opentelemetry-instrumentation-logging is the one mirrored."""
    return logging_version == LOGGING_INSTRUMENTATION
