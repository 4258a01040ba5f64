"""Alertmanager's v2 API, for the silence buttons and the /alerts and /silences commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import yaml

_TIMEOUT = 5.0
#: Alertmanager's repeat_interval when a route tree sets none.
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class AlertmanagerError(Exception):
    """Alertmanager could not be reached or refused the request; the message says which."""


class AlertmanagerClient:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._http = httpx.AsyncClient(base_url=f"{base_url}/api/v2/", timeout=_TIMEOUT)

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise AlertmanagerError(
                f"Alertmanager at {self._base_url} is unreachable ({type(error).__name__})"
            ) from None
        if not response.is_success:
            raise AlertmanagerError(
                f"Alertmanager answered {response.status_code}: {response.text[:200]}"
            )
        return response.json()

    async def create_silence(
        self, matchers: dict[str, str], hours: int, created_by: str, comment: str
    ) -> str:
        """Silence alerts with exactly these labels for ``hours``; returns the silence id."""
        now = datetime.now(UTC)
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in sorted(matchers.items())
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=hours)).isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._request("POST", "silences", json=body)
        return str(answer["silenceID"])

    async def alerts(self) -> list[dict[str, Any]]:
        """Alerts that are firing and neither silenced nor inhibited."""
        params = {"active": "true", "silenced": "false", "inhibited": "false"}
        result: list[dict[str, Any]] = await self._request("GET", "alerts", params=params)
        return result

    async def silences(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("GET", "silences")
        return result

    async def repeat_intervals(self) -> list[float]:
        """Seconds between reminders, for each route of Alertmanager's running configuration."""
        status = await self._request("GET", "status")
        config = yaml.safe_load(status["config"]["original"]) or {}
        return list(_route_repeats(config.get("route") or {}, DEFAULT_REPEAT_INTERVAL))


def seconds(duration: str) -> float:
    """A Prometheus duration (``1h30m``, ``90s``) in seconds."""
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(duration))


def _route_repeats(route: dict[str, Any], inherited: float) -> Iterator[float]:
    """The route's repeat interval (its parent's unless set), then its children's."""
    own = route.get("repeat_interval")
    repeat = inherited if own is None else seconds(str(own))
    yield repeat
    for child in route.get("routes") or []:
        yield from _route_repeats(child, repeat)
