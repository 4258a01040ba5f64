"""The bridge's HTTP API (FastAPI): Alertmanager's webhook in, health and metrics out.

Alertmanager retries 5xx and network errors and never retries a 4xx, so the webhook answers
2xx only once the alerts are durably queued, 4xx for a payload that can never succeed (bad token,
not JSON, not a version-4 webhook, too large) and 503 only when the outbox cannot be written.
"""

from __future__ import annotations

import hmac
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tbmon import __version__
from tbmon.alert_bridge.metrics import BridgeMetrics
from tbmon.alert_bridge.models import Notification
from tbmon.alert_bridge.service import Bridge
from tbmon.alert_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)

#: Larger webhook bodies are refused (413); Alertmanager's max_alerts bounds them in practice.
MAX_BODY_BYTES = 16 * 2**20
WEBHOOK_PATH = "/webhook/alertmanager"
TELEGRAM_PATH = "/webhook/telegram"

_bearer = HTTPBearer(auto_error=False, description="ALERT_BRIDGE_TOKEN")


class Queued(BaseModel):
    """The webhook's answer: how many alert events were queued, and how many were duplicates."""

    status: str = "queued"
    queued: int
    duplicates: int


class Health(BaseModel):
    status: str


class DetailedHealth(Health):
    outbox_pending: int
    outbox_oldest_age_seconds: float
    telegram_bot: str
    updates: str
    version: str


def get_bridge(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


def get_settings(request: Request) -> BridgeSettings:
    settings: BridgeSettings = request.app.state.settings
    return settings


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The caller must send ``Authorization: Bearer <ALERT_BRIDGE_TOKEN>``."""
    expected: str = request.app.state.token
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        request.app.state.metrics.notifications.labels("unauthorized").inc()
        raise HTTPException(
            401,
            "missing or wrong bearer token: Alertmanager's webhook http_config must send "
            "ALERT_BRIDGE_TOKEN (authorization: {credentials_file: ...})",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter()
BridgeDep = Annotated[Bridge, Depends(get_bridge)]


@router.post(
    WEBHOOK_PATH,
    dependencies=[Depends(require_token)],
    summary="Alertmanager webhook (version 4)",
    responses={
        401: {"description": "Missing or wrong bearer token."},
        413: {"description": "Body over 16 MiB."},
        422: {"description": "Not an Alertmanager version-4 webhook; the detail says why."},
        503: {"description": "The outbox could not be written; Alertmanager retries."},
    },
)
async def alertmanager_webhook(
    notification: Notification, request: Request, bridge: BridgeDep
) -> Queued:
    """Queue the group's alert events durably, then answer; Telegram delivery follows."""
    body = await request.body()
    try:
        queued, duplicates = await bridge.accept(notification, body)
    except sqlite3.Error as error:
        bridge.metrics.notifications.labels("error").inc()
        log.error("could not write the outbox %s: %s", bridge.settings.database, error)
        raise HTTPException(
            503, f"could not persist the alerts ({error}); Alertmanager will retry"
        ) from None
    return Queued(queued=queued, duplicates=duplicates)


@router.post(
    TELEGRAM_PATH,
    summary="Telegram updates (webhook mode)",
    responses={401: {"description": "Wrong secret token."}, 404: {"description": "Not enabled."}},
)
async def telegram_webhook(
    update: dict[str, Any],
    bridge: BridgeDep,
    secret: Annotated[str, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = "",
) -> dict[str, bool]:
    """Button presses and commands, when ALERT_BRIDGE_UPDATES=webhook."""
    expected = bridge.settings.webhook_secret
    if bridge.settings.updates != "webhook" or expected is None:
        raise HTTPException(404, "Telegram updates come by polling (ALERT_BRIDGE_UPDATES)")
    if not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "wrong X-Telegram-Bot-Api-Secret-Token")
    await bridge.updates.handle(update)
    return {"ok": True}


@router.get("/health", summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/health/detailed",
    dependencies=[Depends(require_token)],
    summary="Outbox backlog (needs the bearer token)",
)
async def health_detailed(bridge: BridgeDep) -> DetailedHealth:
    stats = await bridge.db(bridge.outbox.stats)
    oldest = stats.oldest_received_at
    age = 0.0 if oldest is None else max(0.0, time.time() - oldest)
    return DetailedHealth(
        status="ok" if age < 300 else "degraded",
        outbox_pending=stats.pending,
        outbox_oldest_age_seconds=age,
        telegram_bot=bridge.bot,
        updates=bridge.settings.updates,
        version=__version__,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(bridge: BridgeDep) -> Response:
    await bridge.refresh_gauges()
    return Response(generate_latest(bridge.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: BridgeSettings) -> FastAPI:
    """The bridge as an ASGI app; starting it opens the outbox and starts sending."""
    bridge_metrics = BridgeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bridge = Bridge(settings, bridge_metrics)
        await bridge.start()
        app.state.bridge = bridge
        try:
            yield
        finally:
            await bridge.stop()

    app = FastAPI(
        title="tbmon alert bridge",
        version=__version__,
        description="Alertmanager webhook in, Telegram messages out, with a durable outbox.",
        lifespan=lifespan,
    )
    token = settings.bearer_token()
    assert token is not None  # checked when the settings were built
    app.state.settings = settings
    app.state.metrics = bridge_metrics
    app.state.token = token
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_payload)  # type: ignore[arg-type]
    app.middleware("http")(_limit_body)
    return app


async def _invalid_payload(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = []
    for issue in error.errors()[:10]:
        where = ".".join(str(part) for part in issue["loc"] if part != "body")
        problems.append(f"{where}: {issue['msg']}" if where else issue["msg"])
    detail = "; ".join(problems)
    if request.url.path == WEBHOOK_PATH:
        request.app.state.metrics.notifications.labels("invalid").inc()
        detail = "not an Alertmanager version-4 webhook: " + detail
    return JSONResponse(status_code=422, content={"detail": detail})


async def _limit_body(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return JSONResponse(
            status_code=413,
            content={"detail": f"body over {MAX_BODY_BYTES} bytes; lower max_alerts"},
        )
    return await call_next(request)
