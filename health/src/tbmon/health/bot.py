"""The bot itself: how long ago it last reported, from its heartbeat gauge in Prometheus.

The instrumentation exports ``trading_bot_heartbeat_timestamp_seconds`` (Unix time of the bot's
latest metric collection) for every bot, labelled ``job`` = the bot's service.name. The age of
the newest value per bot is what the "bot stopped reporting" alert watches too.
"""

from __future__ import annotations

from tbmon.health.check import Check, Outcome, Status
from tbmon.health.endpoints import HttpClientCheck, http_error
from tbmon.health.settings import HealthSettings

HEARTBEAT_METRIC = "trading_bot_heartbeat_timestamp_seconds"
#: How far back a bot counts as existing; older silence means "no bot" (as the alert's window).
LOOKBACK = "1h"
AGE_QUERY = f"time() - max by (job) (max_over_time({HEARTBEAT_METRIC}[{LOOKBACK}]))"


class BotCheck(HttpClientCheck):
    """Degraded or unhealthy when a bot's newest heartbeat is older than the thresholds."""

    def __init__(self, prometheus_url: str, degraded_after: float, unhealthy_after: float) -> None:
        super().__init__()
        self.query_url = prometheus_url.rstrip("/") + "/api/v1/query"
        self.degraded_after = degraded_after
        self.unhealthy_after = unhealthy_after

    async def check(self) -> Outcome:
        response = await self.get(self.query_url, query=AGE_QUERY)
        if not response.is_success:
            return Outcome(
                Status.UNHEALTHY, {"error": f"querying Prometheus: {http_error(response)}"}
            )
        result = response.json()["data"]["result"]
        thresholds = {
            "degraded_after_seconds": self.degraded_after,
            "unhealthy_after_seconds": self.unhealthy_after,
        }
        if not result:
            return Outcome(
                Status.UNHEALTHY,
                {
                    **thresholds,
                    "error": f"no bot reported {HEARTBEAT_METRIC} in the last {LOOKBACK}: is a "
                    "bot running under opentelemetry-instrument, sending to the collector?",
                },
            )
        ages = {
            series["metric"].get("job", ""): max(0.0, round(float(series["value"][1]), 1))
            for series in result
        }
        oldest = max(ages.values())
        metadata = {"heartbeat_age_seconds": dict(sorted(ages.items())), **thresholds}
        if oldest < self.degraded_after:
            return Outcome(Status.HEALTHY, metadata)
        late = ", ".join(
            f"{job} {age:g} s" for job, age in ages.items() if age >= self.degraded_after
        )
        metadata["error"] = f"no heartbeat for: {late}"
        status = Status.UNHEALTHY if oldest >= self.unhealthy_after else Status.DEGRADED
        return Outcome(status, metadata)


def bot_check(settings: HealthSettings) -> Check:
    return BotCheck(
        settings.prometheus_url, settings.bot_degraded_after, settings.bot_unhealthy_after
    )
