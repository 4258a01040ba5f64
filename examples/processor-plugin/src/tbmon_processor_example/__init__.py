"""Drop the spans of health checks and metrics scrapes: noise in Jaeger, cost in storage.

A span is dropped when its ``url.path`` (or the older ``http.target``) is one of the paths in
``DROP_HEALTH_CHECKS_PATHS`` (comma-separated; default ``/health,/healthz,/ready,/metrics``).
"""

from __future__ import annotations

import os

from tbmon.processors import Batch, Processor, otlp
from tbmon.processors.api import ExportTraceServiceRequest

PATHS_VARIABLE = "DROP_HEALTH_CHECKS_PATHS"
DEFAULT_PATHS = "/health,/healthz,/ready,/metrics"
PATH_KEYS = ("url.path", "http.target")


class DropHealthChecks(Processor):
    """Removes health-check spans from every batch."""

    def __init__(self, paths: str | None = None) -> None:
        chosen = paths if paths is not None else os.environ.get(PATHS_VARIABLE, DEFAULT_PATHS)
        self.paths = frozenset(path.strip() for path in chosen.split(",") if path.strip())
        if not self.paths:
            raise ValueError(f"{PATHS_VARIABLE} names no path")
        self._needles = tuple(path.encode() for path in self.paths)

    def process_spans(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        # Cheap first: a batch without any of the paths is passed on without being parsed.
        if not batch.contains(*self._needles):
            return batch
        request = batch.edit()
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                kept = [span for span in scope_spans.spans if not self._is_health_check(span)]
                if len(kept) != len(scope_spans.spans):
                    del scope_spans.spans[:]
                    scope_spans.spans.extend(kept)
        return batch

    def _is_health_check(self, span: otlp.Span) -> bool:
        for key in PATH_KEYS:
            value = otlp.attribute(span.attributes, key)
            if value is not None and value.string_value in self.paths:
                return True
        return False
