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

Length of one return period: portfolio values (and prices) are put on a calendar grid of periods
this long, the latest value of each counting and a period without one carrying the value before
it, before returns, Sharpe ratio, drawdown and VaR are derived. Default: unset, the grid is
chosen from the data: the finest of 1 min, 5 min, 15 min, 1 h, 4 h and 1 day that is at least
as long as nine in ten of the spacings between the bot's reports (a bot reporting every few
seconds gets minutes, one reporting once a day gets days). See :class:`tbmon.analytics.ReturnGrid`.
"""

TBMON_PERIODS_PER_YEAR = "TBMON_PERIODS_PER_YEAR"
"""
.. envvar:: TBMON_PERIODS_PER_YEAR

Annualisation factor of the Sharpe, Sortino and Calmar ratios, and the periods in a year that
make VaR one day's: only with :envvar:`TBMON_ANALYTICS_PERIOD_SECONDS` (a compressed clock, as
the demo's: one-second periods, 365 a year). Default: a calendar year of the grid's periods
(525,600 by the minute, 365 daily), right for markets that close too, since the grid is
calendar time.
"""

TBMON_ANALYTICS_WINDOW = "TBMON_ANALYTICS_WINDOW"
"""
.. envvar:: TBMON_ANALYTICS_WINDOW

Return periods (and closed trades) the derived metrics look back on. Default: ``1440`` (a day
of minutes, four years of days).
"""

TBMON_RISK_FREE_RATE = "TBMON_RISK_FREE_RATE"
"""
.. envvar:: TBMON_RISK_FREE_RATE

Annual risk-free rate subtracted in the Sharpe ratio, as a fraction. Default: ``0``.
"""

TBMON_SDK_MIRRORS = "TBMON_SDK_MIRRORS"
"""
.. envvar:: TBMON_SDK_MIRRORS

``off`` (or ``false``, ``0``, ``no``) keeps tbmon away from the OpenTelemetry SDK's private
members even on the releases it mirrors (:mod:`tbmon.instrumentation._internal.pinned`): the
SDK's own span, metric and log paths, its exporters' encoding, and no count of items dropped from
a full queue, as on any other SDK release (one warning says so). An escape hatch, and how the
tests exercise the fallback. Default: ``on``.
"""

TBMON_STATE_DIR = "TBMON_STATE_DIR"
"""
.. envvar:: TBMON_STATE_DIR

Where a bot keeps what must survive its restart: the high-water mark of each strategy's
portfolio (``<service>.high-water-marks.json``), so ``trading_current_drawdown`` (and the
HighDrawdown alert) measure from the highest value since the bot first ran, not since its
latest process started. Keep it on a volume in a container. ``off`` keeps the marks in memory
only (a restart then starts them afresh). Default: ``$XDG_STATE_HOME/tbmon``, else
``~/.local/state/tbmon``.
"""
