"""The probe endpoints, answered by a pure ASGI layer in front of FastAPI's router.

Load balancers, orchestrators and Prometheus ask ``/health``, ``/health/live``, ``/health/ready``
and ``/health/detailed`` many times a second. Through FastAPI's routing, dependency solving and
``Response`` objects, one answer cost 167-414 us of CPU (17-32 us here): this layer matches the
path, checks the token where one is needed, and sends bytes it builds at most once a second per
endpoint (while the snapshot is unchanged), so on a busy 2-core machine a request spends less
time queued behind another. Every other path, and the app's lifespan, go on to FastAPI.

Status codes follow the Kubernetes convention: 200 for healthy and degraded, 503 for unhealthy.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.datastructures import URL, Headers, State
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tbmon.health.check import Status
from tbmon.health.monitor import ComponentHealth, Results, utc_iso
from tbmon.health.settings import ENV_PREFIX, HealthSettings
from tbmon.version import __version__

#: The status an endpoint shows and the components it lists.
_View = tuple[Status, Sequence[ComponentHealth]]


def aggregate(components: Iterable[ComponentHealth]) -> Status:
    """Unhealthy if a critical component is; else degraded if any component is not healthy."""
    status = Status.HEALTHY
    for component in components:
        if component.status is Status.UNHEALTHY and component.critical:
            return Status.UNHEALTHY
        if component.status is not Status.HEALTHY:
            status = Status.DEGRADED
    return status


def operator_refusal(settings: HealthSettings, scope: Scope) -> HTTPException | None:
    """Why this request may not see details, or None: a bearer token when ``HEALTH_TOKEN`` is
    set, else loopback clients only. The one check of both this layer and FastAPI's routes."""
    if settings.token is None:
        client = scope.get("client")
        if _is_loopback(client[0] if client else ""):
            return None
        return HTTPException(status_code=403, detail=_how_to_send_a_token(scope))
    authorization = Headers(scope=scope).get("authorization", "")
    scheme, _, supplied = authorization.partition(" ")
    expected = settings.token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        return HTTPException(
            status_code=401,
            detail=f"send 'Authorization: Bearer <token>' with the token in {ENV_PREFIX}TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def _how_to_send_a_token(scope: Scope) -> str:
    """Why a request from elsewhere gets no details while no token is set, and how to get them:
    where to set the token, and a command that sends it (to this host's /health/detailed)."""
    host = Headers(scope=scope).get("host") or "HOST:8080"
    url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}/health/detailed"
    return (
        f"detailed health is only served to this machine while {ENV_PREFIX}TOKEN is unset. "
        f"To see it from elsewhere, set {ENV_PREFIX}TOKEN (16 or more characters: "
        "`openssl rand -base64 32`) in the health service's environment (Compose: "
        "stack/src/tbmon/stack/.env, then `docker compose -f "
        "stack/src/tbmon/stack/docker-compose.monitoring.yml up -d health`) and send it "
        f"in a header: `curl -H 'Authorization: Bearer <token>' {url}` (a browser cannot add "
        "the header by itself). /health shows the overall status without a token."
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _everything(snapshot: Mapping[str, ComponentHealth]) -> _View:
    """Overall status and each component's status (metadata in ``/health/detailed`` only)."""
    components = tuple(snapshot.values())
    return aggregate(components), components


def _critical(snapshot: Mapping[str, ComponentHealth]) -> _View:
    """``/health/ready``: the critical components only, so 503 while one of them is unhealthy."""
    critical = tuple(c for c in snapshot.values() if c.critical)
    return aggregate(critical), critical


def _liveness(alive: bool) -> _View:
    """``/health/live``: the process only, up and its checker not stuck; never the dependencies,
    so an outage elsewhere never gets a healthy health service restarted."""
    return (Status.HEALTHY if alive else Status.UNHEALTHY), ()


def _snapshot(results: Results) -> object:
    return results.snapshot


def _alive(results: Results) -> object:
    return results.alive()


@dataclass(frozen=True)
class _Probe:
    """One endpoint: what its answer depends on (compared by identity for the cache) and the
    status and components it shows from that."""

    source: Callable[[Results], object]
    view: Callable[[Any], _View]
    detailed: bool = False
    operator: bool = False
    no_store: bool = False


#: Route path -> endpoint. Only GET: HEAD and the rest are 405, as on FastAPI's routes.
PROBES: Mapping[str, _Probe] = {
    "/health": _Probe(_snapshot, _everything),
    "/health/live": _Probe(_alive, _liveness, no_store=True),
    "/health/ready": _Probe(_snapshot, _critical),
    "/health/detailed": _Probe(_snapshot, _everything, detailed=True, operator=True),
}


@dataclass(frozen=True)
class _Answer:
    """A rendered answer and what it was rendered from."""

    source: object
    second: int
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def _render(probe: _Probe, source: object, state: State, second: int, uptime: int) -> _Answer:
    """The answer's bytes: compact JSON in the seed's field order and its headers."""
    status, components = probe.view(source)
    body = json.dumps(
        {
            "status": status.value,
            "components": [c.document(detailed=probe.detailed) for c in components],
            "check_time": utc_iso(second),
            "uptime_seconds": uptime,
            "version": __version__,
        },
        separators=(",", ":"),
    ).encode()
    cache_control: str = "no-store" if probe.no_store else state.max_age
    headers = (
        (b"cache-control", cache_control.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    )
    code = 503 if status is Status.UNHEALTHY else 200
    return _Answer(source, second, code, headers, body)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), which the router matches."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path == root:
        return ""  # the mount point itself: no route of the app's
    return path[len(root) :] if root and path.startswith(f"{root}/") else path


class ProbeLayer:
    """Pure ASGI middleware (``app.add_middleware``) answering :data:`PROBES` from the latest
    snapshot; everything else goes to ``app``. Its answers are the bytes FastAPI's routes sent
    for these paths (the tests compare them with the routes FastAPI still serves)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._answers: dict[str, _Answer] = {}  # the latest answer of each endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        probe = PROBES.get(path)
        if probe is None:
            if path != "/" and path.rstrip("/") in PROBES:  # as the router's redirect_slashes
                url = URL(scope={**scope, "path": scope["path"].rstrip("/")})
                await RedirectResponse(url=str(url))(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if scope["method"] != "GET":
            await _refuse(HTTPException(405, headers={"Allow": "GET"}), scope, receive, send)
            return
        state: State = scope["app"].state
        if probe.operator:
            refusal = operator_refusal(state.settings, scope)
            if refusal is not None:
                await _refuse(refusal, scope, receive, send)
                return
        answer = self._answer(path, probe, state)
        # Fresh messages and header list: a middleware outside may change them in place.
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": [*answer.headers]}
        )
        await send({"type": "http.response.body", "body": answer.body})

    def _answer(self, path: str, probe: _Probe, state: State) -> _Answer:
        """The cached answer while its source and the second are the same: rendering again
        would give the same bytes (``check_time`` is whole seconds; ``uptime_seconds``, also
        whole, is the one of the second's first answer). A snapshot is swapped whole, never
        changed, so identity tells."""
        results: Results = state.monitor
        source = probe.source(results)
        second = int(time.time())
        cached = self._answers.get(path)
        if cached is not None and cached.source is source and cached.second == second:
            return cached
        uptime = int(time.monotonic() - state.started)
        answer = self._answers[path] = _render(probe, source, state, second, uptime)
        return answer


async def _refuse(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    """``error`` as FastAPI's own handler renders it on its routes, so the bytes are the same."""
    response = await http_exception_handler(Request(scope, receive), error)
    await response(scope, receive, send)
