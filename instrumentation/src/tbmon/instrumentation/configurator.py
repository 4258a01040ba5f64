"""The tbmon configurator: the SDK's own set-up, plus a trading bot's resource and drop counts.

``opentelemetry-instrument`` calls it after :class:`~tbmon.instrumentation.distro.TbmonDistro`
set its defaults. It is the SDK's configurator (every ``OTEL_*`` variable works as documented)
with these additions:

- resource attributes from the tbmon settings: ``deployment.environment.name`` (and the older
  ``deployment.environment``), ``service.version`` and ``tbmon.strategy``; a value given in
  ``OTEL_RESOURCE_ATTRIBUTES`` wins;
- batch processors whose dropped spans and log records are counted
  (:mod:`tbmon.instrumentation.delivery`);
- one warning, not a crash, for invalid ``TBMON_*`` settings (numeric ``OTEL_*`` ones the
  distro repairs, before the SDK is imported);
- on an SDK release other than the one mirrored (:mod:`~tbmon.instrumentation._internal.pinned`),
  only the set-up arguments that release names: it comes up as the stock configurator would;
- leaner paths through the SDK's own objects for what a bot does most, with the same telemetry:
  spans (:mod:`~tbmon.instrumentation._internal.tracing`), measurements
  (:mod:`~tbmon.instrumentation._internal.metrics`) and batched log records
  (:mod:`~tbmon.instrumentation._internal.logs`).
"""

from __future__ import annotations

import inspect
from typing import Any

from opentelemetry.metrics import get_meter_provider
from opentelemetry.sdk import _configuration
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.resources import OTELResourceDetector
from opentelemetry.trace import get_tracer_provider
from opentelemetry.util.types import AttributeValue

from tbmon.instrumentation import delivery
from tbmon.instrumentation._internal import logs, metrics, pinned, tracing
from tbmon.instrumentation.settings import InstrumentationSettings, get_settings

#: Where this process counts what it could not deliver (the configurator fills it).
STATS = delivery.DeliveryStats()


def accepted(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` the installed SDK's configurator takes: all on the release mirrored; on
    another, those its ``_initialize_components`` names (an unknown one would fail the set-up
    as a whole), or none if that cannot be read."""
    if pinned.sdk():
        return kwargs
    try:
        parameters = inspect.signature(_configuration._initialize_components).parameters
    except (AttributeError, TypeError, ValueError):
        return {}
    return {key: value for key, value in kwargs.items() if key in parameters}


def resource_attributes(settings: InstrumentationSettings) -> dict[str, AttributeValue]:
    """The bot's resource attributes from ``settings``, minus those the user set explicitly."""
    ours: dict[str, AttributeValue] = {
        "deployment.environment.name": settings.environment,
        "deployment.environment": settings.environment,
        "tbmon.strategy": settings.strategy,
    }
    if settings.bot_version:
        ours["service.version"] = settings.bot_version
    explicit = OTELResourceDetector().detect().attributes
    return {key: value for key, value in ours.items() if key not in explicit}


class TbmonConfigurator(_OTelSDKConfigurator):
    """The ``tbmon`` configurator (entry-point group ``opentelemetry_configurator``)."""

    def _configure(self, **kwargs: Any) -> None:
        settings = get_settings()
        kwargs.setdefault("resource_attributes", resource_attributes(settings))
        kwargs.setdefault("export_span_processor", delivery.span_processor(STATS))
        kwargs.setdefault(
            "export_log_record_processor", logs.batching(delivery.log_record_processor(STATS))
        )
        super()._configure(**accepted(kwargs))  # type: ignore[no-untyped-call]
        # The leaner paths: the SDK's objects re-classed, nothing else changed.
        tracing.install(get_tracer_provider())
        metrics.install(get_meter_provider())
        STATS.observe()
