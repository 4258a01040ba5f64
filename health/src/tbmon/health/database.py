"""The bot's PostgreSQL database (``DATABASE_URL``): query it, report its connection figures.

The check holds a small pool (at least one connection open, ``HEALTH_DATABASE_POOL_SIZE`` at most),
so a run costs a query, not a new backend. Each connection is tested before use, so a pool never
answers for a dead server; when the pool cannot hand one out, a direct connection attempt reports
the server's own error (refused, authentication...) instead of the pool's "timed out". The
figures are the server's: how many of its ``max_connections`` are taken, since running out of
them is how a database fails a bot.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tbmon.health.check import Check, CheckFailed, NotConfigured, Outcome, Status
from tbmon.health.redact import Redactor
from tbmon.health.settings import DATABASE_URL, HealthSettings

#: Share of ``max_connections`` in use from which the database is degraded.
CONNECTIONS_DEGRADED_PERCENT = 90.0
#: Seconds the pool keeps retrying a lost connection before a new run starts afresh; short, so
#: its backoff never delays noticing that the server is back.
RECONNECT_SECONDS = 2.0

_FIGURES = """
SELECT current_setting('max_connections')::int,
       count(*),
       count(*) FILTER (WHERE datname = current_database()),
       count(*) FILTER (WHERE datname = current_database() AND state = 'active')
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""
_CONNECT: dict[str, Any] = {"autocommit": True, "application_name": "tbmon-health"}


class DatabaseCheck(Check):
    """Healthy when a pooled connection answers; degraded near ``max_connections``."""

    def __init__(self, url: str, pool_size: int, wait: float) -> None:
        self._url = url
        self._shown_url = Redactor().text(url)
        self._pool_size = pool_size
        self._wait = wait
        self._pool: AsyncConnectionPool | None = None

    async def _opened_pool(self) -> AsyncConnectionPool:
        # Opened on first use, on the scheduler's loop that then owns its connections.
        if self._pool is None:
            self._pool = AsyncConnectionPool(
                self._url,
                min_size=1,
                max_size=self._pool_size,
                kwargs=_CONNECT,
                check=AsyncConnectionPool.check_connection,
                reconnect_timeout=RECONNECT_SECONDS,
                name="tbmon-health",
                open=False,
            )
            await self._pool.open(wait=False)
        return self._pool

    async def check(self) -> Outcome:
        pool = await self._opened_pool()
        try:
            async with pool.connection(timeout=self._wait) as connection:
                cursor = await connection.execute(_FIGURES)
                row = await cursor.fetchone()
                if row is None:  # an aggregate always returns a row; a proxy might not
                    raise RuntimeError("pg_stat_activity returned no row")
                database = connection.info.dbname
                version = connection.info.parameter_status("server_version")
        except PoolTimeout:
            # Raises the server's own reason, if it has one.
            async with await psycopg.AsyncConnection.connect(self._url, **_CONNECT):
                pass
            raise CheckFailed(
                f"no pooled connection within {self._wait:g} s, although the server accepts "
                "connections"
            ) from None
        max_connections, open_connections, database_connections, active = row
        usage = 100.0 * open_connections / max_connections
        stats = pool.get_stats()
        metadata: dict[str, Any] = {
            "url": self._shown_url,
            "database": database,
            "server_version": version,
            "connection_pool_size": stats["pool_size"],
            "connection_pool_max": self._pool_size,
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

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def database_check(settings: HealthSettings) -> Check:
    if settings.database_url is None:
        raise NotConfigured(f"{DATABASE_URL} is not set")
    return DatabaseCheck(
        settings.database_url.get_secret_value(),
        settings.database_pool_size,
        # Half the check's budget, leaving the rest for the direct attempt that says why.
        settings.timeout_for("database") / 2,
    )
