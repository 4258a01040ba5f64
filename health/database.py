"""The bot's PostgreSQL database (``DATABASE_URL``): connect, query, report its connection figures.

Each run opens a fresh connection, so the check proves what the bot needs (a new connection can
be made and answers) and reports the server's own error (refused, authentication...) rather
than a pool's "timed out waiting for a connection". The figures are the server's: how many of
its ``max_connections`` are taken, since running out of them is how a database fails a bot.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tbmon.health.check import Check, NotConfigured, Outcome, Status
from tbmon.health.redact import Redactor
from tbmon.health.settings import DATABASE_URL, HealthSettings

#: Share of ``max_connections`` in use from which the database is degraded.
CONNECTIONS_DEGRADED_PERCENT = 90.0

_FIGURES = """
SELECT current_setting('max_connections')::int,
       count(*),
       count(*) FILTER (WHERE datname = current_database()),
       count(*) FILTER (WHERE datname = current_database() AND state = 'active')
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""


class DatabaseCheck(Check):
    """Healthy when a new connection answers ``SELECT 1``; degraded near ``max_connections``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._shown_url = Redactor().text(url)

    async def check(self) -> Outcome:
        async with await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name="tbmon-health"
        ) as connection:
            await connection.execute("SELECT 1")
            cursor = await connection.execute(_FIGURES)
            row = await cursor.fetchone()
            if row is None:  # an aggregate always returns a row; a proxy might not
                raise RuntimeError("pg_stat_activity returned no row")
            max_connections, open_connections, database_connections, active = row
            usage = 100.0 * open_connections / max_connections
            metadata: dict[str, Any] = {
                "url": self._shown_url,
                "database": connection.info.dbname,
                "server_version": connection.info.parameter_status("server_version"),
                "max_connections": max_connections,
                "open_connections": open_connections,
                "database_connections": database_connections,
                "active_connections": active,
                "connection_usage_percent": round(usage, 1),
            }
        if usage >= CONNECTIONS_DEGRADED_PERCENT:
            metadata["error"] = (
                f"{open_connections} of max_connections {max_connections} are in use; new "
                "connections will soon be refused"
            )
            return Outcome(Status.DEGRADED, metadata)
        return Outcome(Status.HEALTHY, metadata)


def database_check(settings: HealthSettings) -> Check:
    if settings.database_url is None:
        raise NotConfigured(f"{DATABASE_URL} is not set")
    return DatabaseCheck(settings.database_url.get_secret_value())
