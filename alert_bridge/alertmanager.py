"""Alertmanager's v2 API, for the silence buttons and the /alerts and /silences commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

_TIMEOUT = 5.0


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
