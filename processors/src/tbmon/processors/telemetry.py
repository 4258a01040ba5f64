"""The host's own metrics (Prometheus, served at /metrics on the admin port).

Rates come from PromQL: spans per second is
``rate(tbmon_processors_items_received_total{signal="spans"}[1m])``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ITEMS_RECEIVED = Counter(
    "tbmon_processors_items_received",
    "Spans, metric data points and log records received from the collector.",
    ["signal"],
)
ITEMS_FORWARDED = Counter(
    "tbmon_processors_items_forwarded",
    "Spans, metric data points and log records the next hop accepted.",
    ["signal"],
)
REQUESTS = Counter(
    "tbmon_processors_requests",
    "Export requests answered, by gRPC status code.",
    ["signal", "code"],
)
CHAIN_SECONDS = Histogram(
    "tbmon_processors_chain_duration_seconds",
    "Time one request spends in the plugin chain.",
    ["signal"],
    buckets=_LATENCY_BUCKETS,
)
FORWARD_SECONDS = Histogram(
    "tbmon_processors_forward_duration_seconds",
    "Time the next hop takes to accept one request.",
    ["signal"],
    buckets=_LATENCY_BUCKETS,
)
FORWARD_FAILURES = Counter(
    "tbmon_processors_forward_failures",
    "Requests the next hop refused or did not answer, by gRPC status code.",
    ["signal", "code"],
)
PLUGIN_SECONDS = Histogram(
    "tbmon_processors_plugin_duration_seconds",
    "Time one plugin hook takes for one batch.",
    ["plugin", "signal"],
    buckets=_LATENCY_BUCKETS,
)
PLUGIN_ERRORS = Counter(
    "tbmon_processors_plugin_errors",
    "Plugin calls that failed (exception, timeout, stuck, bad_return): the batch passed on "
    "unchanged, or, for a fail-closed plugin, the request was refused.",
    ["plugin", "signal", "reason"],
)
REFUSED = Counter(
    "tbmon_processors_refused_requests",
    "Requests refused with UNAVAILABLE (the collector keeps them and retries) because a "
    "fail-closed plugin failed.",
    ["plugin", "signal"],
)
PLUGIN_STUCK = Gauge(
    "tbmon_processors_plugin_stuck",
    "1 while a plugin's call overran its budget and has not returned (its hooks are skipped, or "
    "for a fail-closed plugin its requests refused).",
    ["plugin"],
)
REPAIRED_STRINGS = Counter(
    "tbmon_processors_repaired_strings",
    "Strings that were not valid UTF-8, passed on with U+FFFD in place of each bad sequence "
    "(the batch would not decode otherwise).",
    ["signal"],
)
DROPPED_ITEMS = Counter(
    "tbmon_processors_dropped_items",
    "Items the host dropped (each alone, never its batch): reason malformed is an item that "
    "did not decode even after its strings were repaired.",
    ["signal", "reason"],
)
DERIVED_POINTS = Counter(
    "tbmon_processors_derived_points",
    "Metric data points plugins derived and the host sent on.",
    ["plugin"],
)

#: Why the host dropped an item (the ``reason`` label of DROPPED_ITEMS).
DROP_REASONS = ("malformed",)


def declare_signals(signals: Iterable[str]) -> None:
    """Create the per-signal loss counters at 0, so that an alert on their ``increase()`` sees
    the first loss (a series that appears at its first value has no increase)."""
    for signal in signals:
        REPAIRED_STRINGS.labels(signal)
        for reason in DROP_REASONS:
            DROPPED_ITEMS.labels(signal, reason)


#: Why a plugin call failed (the ``reason`` label of PLUGIN_ERRORS).
FAILURE_REASONS = ("exception", "timeout", "stuck", "bad_return")


def declare_plugin(name: str, signals: Iterable[str], fail_closed: bool) -> None:
    """Create a loaded plugin's series at their start values, so that Prometheus holds them
    (at 0) before the first error: ``increase(...[5m])`` then has data from the start, and an
    alert on the first error fires on its first rise instead of on a series appearing."""
    PLUGIN_STUCK.labels(name).set(0)
    for signal in signals:
        PLUGIN_SECONDS.labels(name, signal)
        for reason in FAILURE_REASONS:
            PLUGIN_ERRORS.labels(name, signal, reason)
        if fail_closed:
            REFUSED.labels(name, signal)
