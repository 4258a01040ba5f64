"""A leaner path from a synchronous instrument's measurement to its aggregation.

For every ``add`` and ``record``, the SDK's ``_ViewInstrumentMatch`` finds the aggregation of the
measurement's attributes by a key that ``_hash_attributes`` computes: a recursive call and an
``isinstance`` chain per value, then a sort through a key function (4.5 us for an order's five
attributes on our machines, a third of the measurement's cost). For plain ``str``, ``bool``,
``int`` and ``float`` values, the ones a bot's metric labels hold, the same key is a sorted tuple
of tagged pairs (1.8 us): a counter's ``add`` with five attributes costs 11 us instead of 13.5.
:class:`FastMeasurementConsumer` computes it so and hands the measurement to the same
aggregation; anything else takes the SDK's own path: other values, a view that selects attribute
keys, a delta-temporality reader (whose aggregations collection resets, under a lock), and the
measurements of asynchronous instruments (the SDK delivers those at collection, not through the
consumer's ``consume_measurement``). Each part names the function of opentelemetry-sdk 1.45.2
it mirrors.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _HashedAttributes
from opentelemetry.sdk.metrics._internal.measurement import Measurement
from opentelemetry.sdk.metrics._internal.measurement_consumer import (
    SynchronousMeasurementConsumer,
)
from opentelemetry.util.types import Attributes
from typing_extensions import override

from tbmon.instrumentation._internal import pinned
from tbmon.instrumentation._internal.attributes import PLAIN


def plain_key(attributes: Attributes) -> _HashedAttributes | None:
    """``_hash_attributes(attributes)`` (opentelemetry-sdk 1.45.2) for a non-empty dict of
    plain values (keys are ``str``: the measurement cleaned them); None for anything else."""
    if type(attributes) is not dict or not attributes:
        return None
    pairs = []
    for key, value in sorted(attributes.items()):  # keys are unique: only they are compared
        kind = type(value)
        if kind not in PLAIN:  # _hash_attributes' key of these: (type name, value)
            return None
        pairs.append((key, (kind.__name__, value)))
    return ("mapping", tuple(pairs))


class FastMeasurementConsumer(SynchronousMeasurementConsumer):
    """The SDK's measurement consumer with the aggregation key of plain attributes computed
    directly."""

    @override
    def consume_measurement(self, measurement: Measurement) -> None:
        # Mirrors SynchronousMeasurementConsumer.consume_measurement,
        # MetricReaderStorage.consume_measurement and _ViewInstrumentMatch.consume_measurement.
        should_sample_exemplar = self._sdk_config.exemplar_filter.should_sample(
            measurement.value,
            measurement.time_unix_nano,
            measurement.attributes,
            measurement.context,
        )
        key = plain_key(measurement.attributes)
        for reader_storage in self._reader_storages.values():
            if key is None:
                reader_storage.consume_measurement(measurement, should_sample_exemplar)
                continue
            matches = reader_storage._get_or_init_view_instrument_match(measurement.instrument)
            for match in matches:
                if match._view._attribute_keys is not None or match._reset_on_collect:
                    match.consume_measurement(measurement, should_sample_exemplar)
                    continue
                aggregation = match._attributes_aggregation.get(key)
                if aggregation is None:
                    with match._lock:
                        aggregation = match._get_or_create_aggregation(
                            key,
                            dict(measurement.attributes),  # type: ignore[arg-type]
                        )
                aggregation.aggregate(measurement, should_sample_exemplar)


def install(provider: object) -> bool:
    """Gives ``provider``, the SDK's ``MeterProvider``, :class:`FastMeasurementConsumer`'s
    ``consume_measurement``; False (and nothing changed) for any other provider, consumer or SDK
    release."""
    if type(provider) is not MeterProvider or not pinned.sdk():
        return False
    consumer = provider._measurement_consumer
    if type(consumer) is not SynchronousMeasurementConsumer:
        return False
    # One method, no state: the SDK's consumer (its readers, storages, instruments) stays.
    consumer.__class__ = FastMeasurementConsumer
    return True
