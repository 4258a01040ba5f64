"""The seed's system metrics, the bot's heartbeat, and its network latency to the exchange.

Registered as the ``tbmon_system`` instrumentor, so ``opentelemetry-instrument`` turns it on
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=tbmon_system`` turns it off). Everything is read when
the SDK collects metrics, so nothing runs between collections except the latency probe:

- ``system_cpu_usage_percent``, ``system_memory_usage_percent``, ``system_disk_usage_percent``
  (of ``/``): the host's, through psutil;
- ``trading_bot_heartbeat_timestamp_seconds``: Unix time of the collection. With OTLP push there
  is no ``up`` series for a bot; the age of this one is what "bot stopped reporting" watches;
- ``system_network_latency_ms{exchange}``: the TCP connect time to ``EXCHANGE_API_URL``'s host,
  probed every TBMON_LATENCY_PROBE_INTERVAL seconds in a daemon thread (a connect, no request,
  so it costs the exchange nothing against rate limits). No sample while the probe fails.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import psutil
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import CallbackOptions, Observation

from tbmon.instrumentation import instruments
from tbmon.instrumentation.settings import InstrumentationSettings, get_settings

logger = logging.getLogger(__name__)

HEARTBEAT = "trading_bot_heartbeat_timestamp_seconds"
NETWORK_LATENCY = "system_network_latency_ms"
#: A latency sample older than this many probe intervals is not reported (the probe is stuck).
STALE_AFTER_INTERVALS = 3


class LatencyProbe:
    """Measures the TCP connect time to one host and port, in a daemon thread."""

    def __init__(self, host: str, port: int, interval: float) -> None:
        self.host, self.port, self.interval = host, port, interval
        self._latest: tuple[float, float] | None = None  # (monotonic time, milliseconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tbmon-latency-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 1)

    def latest_ms(self) -> float | None:
        """The newest measurement, unless it is stale."""
        latest = self._latest
        if latest is None or time.monotonic() - latest[0] > STALE_AFTER_INTERVALS * self.interval:
            return None
        return latest[1]

    def measure(self) -> float | None:
        """One connect, in milliseconds; None (logged at debug) when it fails."""
        started = time.perf_counter()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.interval):
                elapsed = (time.perf_counter() - started) * 1000.0
        except OSError as error:
            logger.debug("latency probe to %s:%s failed: %s", self.host, self.port, error)
            return None
        self._latest = (time.monotonic(), elapsed)
        return elapsed

    def _run(self) -> None:
        while not self._stop.is_set():
            self.measure()
            self._stop.wait(self.interval)


def latency_probe(settings: InstrumentationSettings) -> LatencyProbe | None:
    """A probe of EXCHANGE_API_URL's host, or None when it is not set."""
    url = settings.exchange_api_url
    if url is None or url.host is None:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    return LatencyProbe(url.host, port, settings.latency_probe_interval)


class SystemMetricsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Publishes the seed's ``system_*`` gauges and the bot's heartbeat."""

    _probe: LatencyProbe | None = None
    _enabled = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("psutil >= 5.0",)

    def _instrument(self, **kwargs: Any) -> None:
        settings = get_settings()
        meter = instruments.meter(kwargs.get("meter_provider"))
        gauges: dict[str, tuple[str, Callable[[], float]]] = {
            "system_cpu_usage_percent": ("Host CPU utilisation.", _cpu_percent),
            "system_memory_usage_percent": (
                "Host memory utilisation.",
                lambda: float(psutil.virtual_memory().percent),
            ),
            "system_disk_usage_percent": (
                "Utilisation of the root filesystem.",
                lambda: float(psutil.disk_usage("/").percent),
            ),
            HEARTBEAT: ("Unix time of the bot's latest metric collection.", time.time),
        }
        for name, (description, read) in gauges.items():
            meter.create_observable_gauge(
                name, callbacks=[self._reading(read)], description=description
            )
        SystemMetricsInstrumentor._probe = probe = latency_probe(settings)
        if probe is not None:
            exchange = settings.exchange_label or probe.host
            meter.create_observable_gauge(
                NETWORK_LATENCY,
                callbacks=[self._latency(probe, exchange)],
                unit="",
                description="TCP connect time to the exchange API, in milliseconds.",
            )
            probe.start()
        SystemMetricsInstrumentor._enabled = True

    def _uninstrument(self, **kwargs: Any) -> None:
        # Instruments cannot be unregistered: their callbacks go quiet instead.
        SystemMetricsInstrumentor._enabled = False
        if self._probe is not None:
            self._probe.stop()
            SystemMetricsInstrumentor._probe = None

    @staticmethod
    def _reading(read: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read())] if SystemMetricsInstrumentor._enabled else []

        return observe

    @staticmethod
    def _latency(
        probe: LatencyProbe, exchange: str
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            latest = probe.latest_ms() if SystemMetricsInstrumentor._enabled else None
            return [] if latest is None else [Observation(latest, {"exchange": exchange})]

        return observe


def _cpu_percent() -> float:
    # Non-blocking: utilisation since the previous call (the previous collection).
    return float(psutil.cpu_percent(interval=None))
