"""The HTTP API of the health service: the app factory and the endpoints FastAPI serves.

Every endpoint answers from the monitor's latest snapshot, never by running a check, so answers
take the same few hundred microseconds whatever the dependencies do. The probes hit at high
rates (``/health``, ``/live``, ``/ready``, ``/detailed``) are answered before FastAPI's router,
by :mod:`tbmon.health.probes`; ``/health/component/NAME`` and ``/health/metrics`` are here.
Status codes follow the Kubernetes convention: 200 for healthy and degraded, 503 for unhealthy.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tbmon.health import registry
from tbmon.health.check import Status
from tbmon.health.isolation import CheckProcess, can_fork
from tbmon.health.metrics import CONTENT_TYPE
from tbmon.health.monitor import Monitor, Results
from tbmon.health.probes import ProbeLayer, operator_refusal
from tbmon.health.redact import Redactor
from tbmon.health.registry import ScheduledCheck
from tbmon.health.settings import HealthSettings
from tbmon.settings import read_settings
from tbmon.version import __version__

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def get_settings() -> HealthSettings:
    """The service's settings (or InvalidSettingsError). A FastAPI dependency: the lifespan
    resolves it through ``app.dependency_overrides``, so tests swap the settings the usual
    FastAPI way."""
    return read_settings(HealthSettings)


def create_app(
    checks: Sequence[ScheduledCheck] | None = None, *, isolated: bool = False
) -> FastAPI:
    """The health service. ``checks``: already built (the CLI builds them first, so a bad
    configuration fails before the server starts); by default they are built at start-up from
    the settings :func:`get_settings` (or its override) returns. ``isolated``: run the checks
    in a child process (:mod:`tbmon.health.isolation`) rather than on a thread of this one, so
    they never hold the GIL a request needs; only from a process with a single thread (else the
    thread is used, with a warning)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings_of = cast(
            Callable[[], HealthSettings], app.dependency_overrides.get(get_settings, get_settings)
        )
        settings = settings_of()
        scheduled = checks if checks is not None else registry.build(settings)
        monitor = _checker(scheduled, settings.interval, Redactor(settings.secrets()), isolated)
        try:
            await monitor.open()
            app.state.monitor = monitor
            app.state.settings = settings
            app.state.max_age = f"max-age={max(int(settings.interval), 1)}"
            yield
        finally:
            await monitor.close()

    app = FastAPI(
        title="tbmon health",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.started = time.monotonic()
    app.include_router(router)
    app.add_middleware(ProbeLayer)
    return app


def _checker(
    checks: Sequence[ScheduledCheck], interval: float, redactor: Redactor, isolated: bool
) -> Results:
    if isolated:
        if can_fork():
            return CheckProcess(checks, interval, redactor)
        logger.warning("more than one thread runs, so the health checks run on a thread instead")
    return Monitor(checks, interval, redactor)


def _monitor(request: Request) -> Results:
    monitor: Results = request.app.state.monitor
    return monitor


async def require_operator(request: Request) -> None:
    """Detailed views: FastAPI's form of :func:`~tbmon.health.probes.operator_refusal`."""
    refusal = operator_refusal(request.app.state.settings, request.scope)
    if refusal is not None:
        raise refusal


router = APIRouter(prefix="/health")
Operator = [Depends(require_operator)]


@router.get("/component/{name}", dependencies=Operator)
async def component(request: Request, name: str) -> Response:
    """One component with its metadata; 404 listing the known ones for an unknown name."""
    snapshot = _monitor(request).snapshot
    found = snapshot.get(name)
    if found is None:
        known = list(snapshot)
        body: dict[str, Any] = {
            "detail": f"unknown component {name!r}; known components: {', '.join(known)}",
            "known_components": known,
        }
        return JSONResponse(body, status_code=404)
    return Response(
        json.dumps(found.document(detailed=True), separators=(",", ":")).encode(),
        status_code=503 if found.status is Status.UNHEALTHY else 200,
        media_type="application/json",
        headers={"Cache-Control": request.app.state.max_age},
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text: status, check duration and check time per component."""
    return Response(_monitor(request).metrics.render(), media_type=CONTENT_TYPE)
