"""Every environment variable the tbmon instrumentation reads, with its default.

As in ``opentelemetry.sdk.environment_variables``: one named constant per variable, documented
where it is defined. The ``OTEL_*`` defaults the distro sets are listed in
:data:`tbmon.instrumentation.distro.OTEL_DEFAULTS`; these are tbmon's own. The default OTLP
endpoint also follows the local stack's ``TBMON_BIND_HOST``, ``TBMON_OTLP_GRPC_PORT`` and
``TBMON_OTLP_HTTP_PORT`` (``127.0.0.1``, ``4317``, ``4318``), which are
:class:`tbmon.settings.StackSettings` fields: one setting moves the collector and its bots.
"""

from __future__ import annotations

TBMON_STRATEGY = "TBMON_STRATEGY"
"""
.. envvar:: TBMON_STRATEGY

The trading strategy's name, exported as the resource attribute ``tbmon.strategy`` and used as
the ``strategy`` label of :class:`~tbmon.instrumentation.TradingMetrics` when none is passed.
Default: ``default``.
"""

TBMON_ENVIRONMENT = "TBMON_ENVIRONMENT"
"""
.. envvar:: TBMON_ENVIRONMENT

Where the bot runs (``production``, ``paper``, ``development``...), exported as the resource
attributes ``deployment.environment.name`` and ``deployment.environment``. Default:
``development``.
"""

TBMON_BOT_VERSION = "TBMON_BOT_VERSION"
"""
.. envvar:: TBMON_BOT_VERSION

The bot's own version, exported as ``service.version``. Default: unset (no attribute).
"""

EXCHANGE_API_URL = "EXCHANGE_API_URL"
"""
.. envvar:: EXCHANGE_API_URL

The exchange endpoint whose round trip ``system_network_latency_ms`` measures (the seed's
variable, shared with the health service). Default: unset (no latency probe).
"""

TBMON_EXCHANGE = "TBMON_EXCHANGE"
"""
.. envvar:: TBMON_EXCHANGE

The ``exchange`` label of ``system_network_latency_ms``. Default: the host name of
:envvar:`EXCHANGE_API_URL`.
"""

TBMON_LATENCY_PROBE_INTERVAL = "TBMON_LATENCY_PROBE_INTERVAL"
"""
.. envvar:: TBMON_LATENCY_PROBE_INTERVAL

Seconds between two latency probes of :envvar:`EXCHANGE_API_URL` (a TCP connect, no request).
Default: ``15``.
"""

TBMON_ANALYTICS_PERIOD_SECONDS = "TBMON_ANALYTICS_PERIOD_SECONDS"
"""
.. envvar:: TBMON_ANALYTICS_PERIOD_SECONDS

Length of one return period: portfolio values are binned into periods of this many seconds (the
latest value of each counts) before returns, Sharpe ratio, drawdown and VaR are derived.
Default: ``86400`` (daily returns).
"""

TBMON_PERIODS_PER_YEAR = "TBMON_PERIODS_PER_YEAR"
"""
.. envvar:: TBMON_PERIODS_PER_YEAR

Annualisation factor of the Sharpe, Sortino and Calmar ratios: periods of
:envvar:`TBMON_ANALYTICS_PERIOD_SECONDS` in a year. Default: a calendar year of them
(``365 * 86400 / TBMON_ANALYTICS_PERIOD_SECONDS``: 365 for daily periods, 8760 for hourly ones,
as crypto trades every day); set 252 for daily periods of a market with trading days.
"""

TBMON_ANALYTICS_WINDOW = "TBMON_ANALYTICS_WINDOW"
"""
.. envvar:: TBMON_ANALYTICS_WINDOW

Return periods (and closed trades) kept for the derived metrics. Default: ``365``.
"""

TBMON_RISK_FREE_RATE = "TBMON_RISK_FREE_RATE"
"""
.. envvar:: TBMON_RISK_FREE_RATE

Annual risk-free rate subtracted in the Sharpe ratio, as a fraction. Default: ``0``.
"""
