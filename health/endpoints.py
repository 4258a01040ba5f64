"""Checks that ask a service's own health endpoint over HTTP, and their factories.

Prometheus and Alertmanager answer ``/-/ready``; Jaeger its health extension; the log store
``/health`` (VictoriaLogs) or ``/ready`` (Loki); the alert bridge and the processors host their
``/health``; the exchange API whatever cheap URL ``EXCHANGE_API_URL`` names.
"""

from __future__ import annotations

from typing import Any

import httpx

from tbmon import __version__
from tbmon.health.check import Check, CheckFailed, NotConfigured, Outcome, Status
from tbmon.health.settings import EXCHANGE_API_URL, HealthSettings

#: A safety net only: the scheduler's per-check timeout cancels a request long before this.
_CLIENT_TIMEOUT_SECONDS = 60.0
#: How much of an error response's body an error message quotes.
_BODY_EXCERPT = 200


class HttpClientCheck(Check):
    """A check holding one HTTP client (keep-alive across runs), closed at shutdown."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created on first use, on the scheduler's loop that then owns its connections.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=_CLIENT_TIMEOUT_SECONDS,
                headers={"User-Agent": f"tbmon-health/{__version__}"},
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

    def __init__(self, url: str) -> None:
        super().__init__()
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
    return HttpCheck(_join(settings.alert_bridge_url, "/health"))


def processors_check(settings: HealthSettings) -> Check:
    return HttpCheck(_join(settings.processors_url, "/health"))


def exchange_api_check(settings: HealthSettings) -> Check:
    if settings.exchange_api_url is None:
        raise NotConfigured(f"{EXCHANGE_API_URL} is not set")
    return ExchangeCheck(settings.exchange_api_url)
