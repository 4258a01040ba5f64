"""Checks that ask a service's own health endpoint over HTTP, and their factories.

Prometheus and Alertmanager answer ``/-/ready``; Jaeger its health extension; the log store
``/health`` (VictoriaLogs) or ``/ready`` (Loki); the exchange API whatever cheap URL
``EXCHANGE_API_URL`` names. The processors host and the alert bridge answer 200 while degraded,
so their checks read the status their JSON reports, and say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tbmon.health.check import Check, CheckFailed, NotConfigured, Outcome, Status
from tbmon.health.settings import ENV_PREFIX, EXCHANGE_API_URL, HealthSettings
from tbmon.version import __version__

#: A safety net only: the scheduler's per-check timeout cancels a request long before this.
_CLIENT_TIMEOUT_SECONDS = 60.0
#: How much of an error response's body an error message quotes.
_BODY_EXCERPT = 200


class HttpClientCheck(Check):
    """A check holding one HTTP client (keep-alive across runs), closed at shutdown."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._client: httpx.AsyncClient | None = None
        self._headers = dict(headers or {})

    @property
    def client(self) -> httpx.AsyncClient:
        # Created on first use, on the scheduler's loop that then owns its connections.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=_CLIENT_TIMEOUT_SECONDS,
                headers={"User-Agent": f"tbmon-health/{__version__}", **self._headers},
            )
        return self._client

    async def get(self, url: str, **params: str) -> httpx.Response:
        """``GET url`` (``params`` replace its query); a connection failure is
        :class:`CheckFailed` naming the URL."""
        try:
            return await self.client.get(url, params=params or None)
        except httpx.TransportError as error:
            text = str(error) or type(error).__name__
            raise CheckFailed(f"cannot reach {url}: {text}") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def http_error(response: httpx.Response) -> str:
    """``HTTP 503: <start of the body>``."""
    excerpt = " ".join(response.text[:_BODY_EXCERPT].split())
    return f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")


class HttpCheck(HttpClientCheck):
    """Healthy when ``GET url`` answers 2xx; unhealthy otherwise."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self.url = url

    async def check(self) -> Outcome:
        response = await self.get(self.url)
        return self.judge(response, {"url": self.url, "status_code": response.status_code})

    def judge(self, response: httpx.Response, metadata: dict[str, Any]) -> Outcome:
        if response.is_success:
            return Outcome(Status.HEALTHY, metadata)
        return Outcome(Status.UNHEALTHY, {**metadata, "error": http_error(response)})


class ExchangeCheck(HttpCheck):
    """An exchange that rate-limits us (429, or Binance's 418) still works: degraded."""

    def judge(self, response: httpx.Response, metadata: dict[str, Any]) -> Outcome:
        if response.status_code in (418, 429):
            retry = response.headers.get("Retry-After")
            return Outcome(
                Status.DEGRADED,
                {**metadata, "error": "rate limited by the exchange", "retry_after": retry},
            )
        return super().judge(response, metadata)


#: What the services' own ``status`` values mean here.
_REPORTED = {
    "healthy": Status.HEALTHY,
    "ok": Status.HEALTHY,
    "degraded": Status.DEGRADED,
    "unhealthy": Status.UNHEALTHY,
}


class ReportedStatusCheck(HttpCheck):
    """A service whose JSON answer carries its own ``status`` (and 200 while degraded): that
    status decides, its other fields become metadata, and :meth:`reasons` says what is wrong."""

    def judge(self, response: httpx.Response, metadata: dict[str, Any]) -> Outcome:
        try:
            report = response.json()
        except ValueError:
            report = None
        status = _REPORTED.get(str(report.get("status"))) if isinstance(report, dict) else None
        if not isinstance(report, dict) or status is None:
            if not response.is_success:
                return super().judge(response, metadata)
            return Outcome(
                Status.UNHEALTHY,
                {**metadata, "error": f"no known status in the answer: {http_error(response)}"},
            )
        metadata = {**{k: v for k, v in report.items() if k != "status"}, **metadata}
        if status is not Status.HEALTHY:
            metadata["error"] = "; ".join(self.reasons(report)) or f"reports {report['status']}"
        return Outcome(status, metadata)

    def reasons(self, report: dict[str, Any]) -> list[str]:
        """Why ``report`` is not healthy, one phrase per problem."""
        return []


class ProcessorsCheck(ReportedStatusCheck):
    """The processors host: degraded while a plugin is stuck or failed to load, or while its
    next hop is down; unhealthy while it does not serve OTLP."""

    def reasons(self, report: dict[str, Any]) -> list[str]:
        found = []
        grpc = report.get("grpc") or {}
        if grpc.get("status") == "fail":
            found.append(f"not serving OTLP/gRPC on {grpc.get('endpoint')}")
        hop = report.get("next_hop") or {}
        if hop.get("status", "pass") != "pass":
            failure = hop.get("last_failure")
            found.append(
                f"next hop {hop.get('endpoint')} is {hop.get('state')}"
                + (f" (last failure: {failure})" if failure else "")
            )
        for plugin in report.get("plugins") or []:
            if plugin.get("load_error"):
                found.append(f"plugin {plugin.get('name')} failed to load: {plugin['load_error']}")
            elif plugin.get("stuck_seconds") is not None:
                found.append(f"plugin {plugin.get('name')} stuck for {plugin['stuck_seconds']} s")
        return found


class AlertBridgeCheck(ReportedStatusCheck):
    """The alert bridge's ``/health/detailed``: degraded while alerts wait in its outbox."""

    def judge(self, response: httpx.Response, metadata: dict[str, Any]) -> Outcome:
        if response.status_code == 401:  # the bridge runs; our token is wrong
            error = (
                f"HTTP 401: the bridge refuses {ENV_PREFIX}ALERT_BRIDGE_TOKEN; set it to the "
                "bridge's ALERT_BRIDGE_TOKEN"
            )
            return Outcome(Status.DEGRADED, {**metadata, "error": error})
        return super().judge(response, metadata)

    def reasons(self, report: dict[str, Any]) -> list[str]:
        return [
            f"{report.get('outbox_pending')} alert(s) waiting in the outbox, the oldest for "
            f"{report.get('outbox_oldest_age_seconds', 0):.0f} s (is Telegram reachable?)"
        ]


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def prometheus_check(settings: HealthSettings) -> Check:
    return HttpCheck(_join(settings.prometheus_url, "/-/ready"))


def alertmanager_check(settings: HealthSettings) -> Check:
    return HttpCheck(_join(settings.alertmanager_url, "/-/ready"))


def jaeger_check(settings: HealthSettings) -> Check:
    return HttpCheck(settings.jaeger_url)


def log_store_check(settings: HealthSettings) -> Check:
    return HttpCheck(settings.log_store_url)


def alert_bridge_check(settings: HealthSettings) -> Check:
    # Its /health is a constant "ok"; the outbox backlog needs the bridge's own token.
    if settings.alert_bridge_token is None:
        return HttpCheck(_join(settings.alert_bridge_url, "/health"))
    token = settings.alert_bridge_token.get_secret_value()
    return AlertBridgeCheck(
        _join(settings.alert_bridge_url, "/health/detailed"),
        headers={"Authorization": f"Bearer {token}"},
    )


def processors_check(settings: HealthSettings) -> Check:
    return ProcessorsCheck(_join(settings.processors_url, "/health"))


def exchange_api_check(settings: HealthSettings) -> Check:
    if settings.exchange_api_url is None:
        raise NotConfigured(f"{EXCHANGE_API_URL} is not set")
    return ExchangeCheck(settings.exchange_api_url)
