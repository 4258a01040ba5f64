"""The host's admin HTTP app: /health for the health service and people, /metrics for Prometheus.

The app's lifespan owns the host: uvicorn starts listening only once the gRPC server serves,
and on SIGTERM the host finishes its in-flight requests before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from tbmon.processors.server import Host
from tbmon.version import __version__


def get_host(request: Request) -> Host:
    """The running host (a dependency, so tests can hand in their own)."""
    host: Host = request.app.state.host
    return host


def create_app(host: Host) -> FastAPI:
    """The admin app of ``host``; the app's lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await host.start()
        app.state.host = host
        try:
            yield
        finally:
            await host.stop()

    app = FastAPI(
        title="tbmon processors host",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/health")
    def health(host: Annotated[Host, Depends(get_host)]) -> JSONResponse:
        """healthy or degraded: 200; unhealthy (not serving OTLP): 503."""
        report: dict[str, Any] = host.health()
        code = 503 if report["status"] == "unhealthy" else 200
        return JSONResponse(report, status_code=code, headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
