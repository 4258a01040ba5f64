"""The bridge's HTTP API (FastAPI): Alertmanager's webhook in, health and metrics out.

Alertmanager retries 5xx and network errors and never retries a 4xx, so the webhook answers
2xx only once the alerts are durably queued, 4xx for a payload that can never succeed (bad token,
not JSON, not a version-4 webhook, too large) and 503 only when the outbox cannot be written or
the bridge already holds as many request bodies as it may (:data:`BODY_BUDGET_BYTES`).

The token, the Telegram secret and the body limits are checked before a byte of a body is read,
by :class:`~tbmon.alert_bridge.gate.Gate` in front of FastAPI; the routes check the same
credentials again, so they stay closed even without the gate.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tbmon.alert_bridge.gate import Admit, ByteBudget, Door, Gate, Refusal, bearer, header_secret
from tbmon.alert_bridge.metrics import BridgeMetrics
from tbmon.alert_bridge.models import Notification
from tbmon.alert_bridge.outbox import Outbox
from tbmon.alert_bridge.service import Bridge
from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.version import __version__

log = logging.getLogger(__name__)

#: Larger webhook bodies are refused (413); Alertmanager's max_alerts bounds them in practice.
MAX_BODY_BYTES = 16 * 2**20
#: Alerts one webhook may carry (more: 413 before the body is parsed). Each is formatted on the
#: event loop (about 0.1 ms), so this bounds what one notification holds up every other sender
#: to about 0.1 s (30,000 held them 16 s). tbmon/stack/alertmanager/alertmanager.yml's max_alerts
#: keeps Alertmanager below it (it then says how many it left out; the bridge passes that on).
MAX_ALERTS = 1000
_ALERT_KEY = b'"fingerprint"'
#: Telegram's updates are a few KiB (a message is at most 4,096 characters).
MAX_UPDATE_BYTES = 2**20
#: Request bodies held at once, over all requests (beyond: 503, which Alertmanager retries):
#: one body of the largest size, or many of a real Alertmanager's few KiB. Parsing a webhook
#: takes about ten times its size in objects for a moment, so this bounds the bridge's memory
#: under any flood of admitted bodies (+169 MiB at the peak, measured); bodies without the token
#: are never read at all.
BODY_BUDGET_BYTES = MAX_BODY_BYTES
WEBHOOK_PATH = "/webhook/alertmanager"
TELEGRAM_PATH = "/webhook/telegram"
DETAILED_HEALTH_PATH = "/health/detailed"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
UNAUTHORIZED = (
    "missing or wrong bearer token: Alertmanager's webhook http_config must send "
    "ALERT_BRIDGE_TOKEN (authorization: {credentials_file: ...})"
)

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
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The caller must send ``Authorization: Bearer <ALERT_BRIDGE_TOKEN>`` (the gate's check,
    again: the scheme shows in the OpenAPI description, and the route is closed without it)."""
    admit: Admit = request.app.state.admit_token
    _enforce(admit(request.headers))


def _enforce(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise HTTPException(refusal.status, refusal.detail, headers=dict(refusal.headers))


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
    request: Request,
    bridge: BridgeDep,
    _: Annotated[str, Header(alias=TELEGRAM_SECRET_HEADER)] = "",
) -> dict[str, bool]:
    """Button presses and commands, when ALERT_BRIDGE_UPDATES=webhook."""
    admit: Admit = request.app.state.admit_telegram
    _enforce(admit(request.headers))
    await bridge.updates.handle(update)
    return {"ok": True}


@router.get("/health", summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    DETAILED_HEALTH_PATH,
    dependencies=[Depends(require_token)],
    summary="Outbox backlog (needs the bearer token)",
)
async def health_detailed(bridge: BridgeDep) -> DetailedHealth:
    stats = await bridge.outbox.call(Outbox.stats)
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
    admit_token = bearer(token, UNAUTHORIZED)
    admit_telegram = _telegram_admission(settings)
    app.state.settings = settings
    app.state.metrics = bridge_metrics
    app.state.admit_token = admit_token
    app.state.admit_telegram = admit_telegram
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_payload)  # type: ignore[arg-type]

    def count(reason: str) -> None:
        bridge_metrics.notifications.labels(reason).inc()

    doors = {
        WEBHOOK_PATH: Door(admit_token, MAX_BODY_BYTES, refused=count, inspect=_too_many_alerts),
        DETAILED_HEALTH_PATH: Door(admit_token, 0),
        TELEGRAM_PATH: Door(admit_telegram, MAX_UPDATE_BYTES),
    }
    app.add_middleware(Gate, doors=doors, budget=ByteBudget(BODY_BUDGET_BYTES))
    return app


def _too_many_alerts(body: bytes) -> Refusal | None:
    """More alerts than :data:`MAX_ALERTS` (each has a fingerprint: counted without parsing;
    a key spelled with escapes would pass here, and cost only its sender's time)."""
    if body.count(_ALERT_KEY) <= MAX_ALERTS:
        return None
    return Refusal(
        413,
        "too_many_alerts",
        f"more than {MAX_ALERTS} alerts in one webhook; set max_alerts to {MAX_ALERTS} or less",
    )


def _telegram_admission(settings: BridgeSettings) -> Admit:
    """Updates only in webhook mode (404 otherwise), with Telegram's secret header."""
    secret = settings.webhook_secret
    if settings.updates != "webhook" or secret is None:
        refusal = Refusal(
            404, "not_enabled", "Telegram updates come by polling (ALERT_BRIDGE_UPDATES)"
        )
        return lambda headers: refusal
    return header_secret(
        TELEGRAM_SECRET_HEADER,
        secret.get_secret_value(),
        f"wrong {TELEGRAM_SECRET_HEADER}",
    )


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
