"""The four Grafana dashboards as code: `tbmon stack dashboards` writes stack/grafana/dashboards/.

Every panel queries the seed's metric names (the bots' metrics as the collector exports them, the
health service's ``health_*`` series, the collector's own ``otelcol_*`` telemetry, node exporter).
Datasources are named by the fixed uids that ``stack/grafana/provisioning/datasources`` gives
them. Thresholds mirror the seed's alert thresholds, so a panel turns red when its alert fires.
Edit this file, run ``tbmon stack dashboards``, and commit the JSON; a test fails while the JSON
is stale, and another runs every query against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tbmon.settings import PROJECT_ROOT

Json = dict[str, Any]

#: Where the generated dashboards live (mounted into Grafana by the Compose file).
DASHBOARD_DIR = PROJECT_ROOT / "stack" / "grafana" / "dashboards"

#: The seed's alert thresholds, shown as panel thresholds (fractions unless named otherwise).
DRAWDOWN_WARNING, DRAWDOWN_CRITICAL = 0.15, 0.25
VAR95_CRITICAL = 0.10
ACCURACY_CRITICAL, ACCURACY_WARNING = 0.50, 0.60
LEVERAGE_WARNING = 3.0
CONCENTRATION_WARNING = 0.5
CPU_MEMORY_WARNING_PERCENT, CPU_MEMORY_CRITICAL_PERCENT = 80, 90
API_SLOW_SECONDS = 1.0
BOT_SILENT_SECONDS = 120

#: Order statuses that count as failed executions.
FAILED_STATUSES = "failed|rejected|error"
#: The collector's own telemetry, as Prometheus scrapes it (stack/prometheus/prometheus.yml).
COLLECTOR = 'job="otel-collector-internal"'
#: The dashboards' bot selector: the `job` variable (a bot's service.name).
BOT = 'job=~"$job"'


@dataclass(frozen=True)
class Datasource:
    type: str
    uid: str

    def ref(self) -> Json:
        return {"type": self.type, "uid": self.uid}


PROMETHEUS = Datasource("prometheus", "prometheus")
LOKI = Datasource("loki", "loki")
#: Grafana's built-in datasource, used by the built-in annotations.
GRAFANA = Datasource("grafana", "-- Grafana --")


# -- queries -------------------------------------------------------------------------------------


def prom(expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False) -> Json:
    """A PromQL target; ``exemplar`` shows trace-id exemplars that link to Jaeger."""
    return {
        "datasource": PROMETHEUS.ref(),
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "exemplar": exemplar,
        "format": "table" if instant else "time_series",
        "refId": "",
    }


def logql(expr: str) -> Json:
    return {"datasource": LOKI.ref(), "expr": expr, "queryType": "range", "refId": ""}


def quantiles(metric: str, selector: str, by: str = "") -> list[Json]:
    """p50, p95 and p99 of a histogram, with exemplars (each links to the trace it came from)."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        prom(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
            f"p{round(q * 100)}{suffix}",
            exemplar=True,
        )
        for q in (0.5, 0.95, 0.99)
    ]


def zero_if_absent(expr: str) -> str:
    """Counters of failures exist only after the first failure: show 0, not "No data"."""
    return f"({expr}) or vector(0)"


def collector_rate(counter: str) -> str:
    """Items per second of a collector counter, over spans, metric points and log records."""
    return " + ".join(
        f"({zero_if_absent(f'sum(rate(otelcol_{counter}_{kind}{{{COLLECTOR}}}[$__rate_interval]))')})"
        for kind in ("spans", "metric_points", "log_records")
    )


# -- panels --------------------------------------------------------------------------------------


@dataclass
class Panel:
    """One panel before layout: Grafana's JSON minus its position and id."""

    kind: str
    title: str
    targets: list[Json]
    description: str
    width: int = 8
    height: int = 8
    unit: str | None = None
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    mappings: list[Json] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    options: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)
    transformations: list[Json] = field(default_factory=list)
    #: What the panel says when its query has no data (Grafana's "No data" otherwise).
    no_value: str | None = None

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {
            "color": {"mode": "thresholds" if self.kind != "timeseries" else "palette-classic"},
            "custom": self.custom,
            "mappings": self.mappings,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": color, "value": value} for value, color in self.thresholds],
            },
        }
        if self.unit:
            defaults["unit"] = self.unit
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.no_value is not None:
            defaults["noValue"] = self.no_value
        datasource = self.targets[0]["datasource"]
        targets = [
            {**target, "refId": chr(ord("A") + index)} for index, target in enumerate(self.targets)
        ]
        document: Json = {
            "type": self.kind,
            "id": panel_id,
            "title": self.title,
            "description": self.description,
            "datasource": datasource,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
        }
        if self.transformations:
            document["transformations"] = self.transformations
        return document


def _legend(placement: str = "bottom", calcs: Iterable[str] = ()) -> Json:
    return {
        "displayMode": "table" if calcs else "list",
        "placement": placement,
        "showLegend": True,
        "calcs": list(calcs),
    }


def _tooltip() -> Json:
    return {"mode": "multi", "sort": "desc"}


def _reduce(calc: str = "lastNotNull") -> Json:
    return {"values": False, "calcs": [calc], "fields": ""}


def timeseries(
    title: str,
    targets: list[Json],
    description: str,
    *,
    unit: str | None = None,
    width: int = 12,
    thresholds: list[tuple[float | None, str]] | None = None,
    stacked: bool = False,
    calcs: Iterable[str] = ("lastNotNull", "max"),
    minimum: float | None = None,
    maximum: float | None = None,
) -> Panel:
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": True,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if thresholds else "off"},
    }
    return Panel(
        "timeseries",
        title,
        targets,
        description,
        width=width,
        unit=unit,
        thresholds=thresholds or [(None, "green")],
        minimum=minimum,
        maximum=maximum,
        custom=custom,
        options={"legend": _legend("bottom", calcs), "tooltip": _tooltip()},
    )


def stat(
    title: str,
    targets: list[Json],
    description: str,
    *,
    unit: str | None = None,
    width: int = 4,
    height: int = 5,
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[Json] | None = None,
    graph: bool = True,
) -> Panel:
    return Panel(
        "stat",
        title,
        targets,
        description,
        width=width,
        height=height,
        unit=unit,
        thresholds=thresholds or [(None, "green")],
        mappings=mappings or [],
        options={
            "reduceOptions": _reduce(),
            "graphMode": "area" if graph else "none",
            "colorMode": "value",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        },
    )


def gauge(
    title: str,
    targets: list[Json],
    description: str,
    *,
    unit: str,
    thresholds: list[tuple[float | None, str]],
    maximum: float,
    width: int = 6,
) -> Panel:
    return Panel(
        "gauge",
        title,
        targets,
        description,
        width=width,
        unit=unit,
        thresholds=thresholds,
        minimum=0,
        maximum=maximum,
        options={
            "reduceOptions": _reduce(),
            "orientation": "auto",
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
            "sizing": "auto",
            "minVizHeight": 75,
            "minVizWidth": 75,
        },
    )


def bargauge(
    title: str,
    targets: list[Json],
    description: str,
    *,
    unit: str | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    maximum: float | None = None,
    width: int = 8,
) -> Panel:
    return Panel(
        "bargauge",
        title,
        targets,
        description,
        width=width,
        unit=unit,
        thresholds=thresholds or [(None, "green")],
        minimum=0,
        maximum=maximum,
        options={
            "reduceOptions": _reduce(),
            "orientation": "horizontal",
            "displayMode": "gradient",
            "valueMode": "color",
            "namePlacement": "auto",
            "showUnfilled": True,
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
            "legend": _legend(),
        },
    )


def state_timeline(
    title: str,
    targets: list[Json],
    description: str,
    *,
    mappings: list[Json],
    thresholds: list[tuple[float | None, str]],
    width: int = 24,
) -> Panel:
    return Panel(
        "state-timeline",
        title,
        targets,
        description,
        width=width,
        thresholds=thresholds,
        mappings=mappings,
        custom={"fillOpacity": 80, "lineWidth": 0},
        options={
            "mergeValues": True,
            "showValue": "never",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": _legend(),
            "tooltip": _tooltip(),
        },
    )


def table(
    title: str,
    targets: list[Json],
    description: str,
    *,
    transformations: list[Json],
    width: int = 12,
    mappings: list[Json] | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> Panel:
    return Panel(
        "table",
        title,
        targets,
        description,
        width=width,
        mappings=mappings or [],
        thresholds=thresholds or [(None, "green")],
        transformations=transformations,
        options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0},
    )


def logs(title: str, expr: str, description: str, *, width: int = 24, height: int = 10) -> Panel:
    return Panel(
        "logs",
        title,
        [logql(expr)],
        description,
        width=width,
        height=height,
        options={
            "showTime": True,
            "showLabels": False,
            "showCommonLabels": False,
            "wrapLogMessage": True,
            "prettifyLogMessage": False,
            "enableLogDetails": True,
            "dedupStrategy": "none",
            "sortOrder": "Descending",
        },
    )


def _value_map(values: dict[int, tuple[str, str]]) -> list[Json]:
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(sorted(values.items()))
    }
    return [{"type": "value", "options": options}]


HEALTH_STATES = _value_map(
    {0: ("unhealthy", "red"), 1: ("degraded", "yellow"), 2: ("healthy", "green")}
)
BREACH_STATES = _value_map({0: ("within limit", "green"), 1: ("breach", "red")})
UP_STATES = _value_map({0: ("down", "red"), 1: ("up", "green")})


# -- dashboards ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[tuple[str, list[Panel]]]

    @property
    def file_name(self) -> str:
        return f"{self.uid}.json"

    def to_json(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["tbmon"],
            "timezone": "utc",
            "editable": False,
            "graphTooltip": 1,
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
            "refresh": "10s",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "schemaVersion": 41,
            "version": 1,
            "links": [
                {
                    "title": "tbmon dashboards",
                    "type": "dashboards",
                    "tags": ["tbmon"],
                    "asDropdown": True,
                    "includeVars": True,
                    "keepTime": True,
                    "icon": "external link",
                    "targetBlank": False,
                    "tooltip": "",
                    "url": "",
                }
            ],
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": GRAFANA.ref(),
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "templating": {"list": [_bot_variable()]},
            "panels": _layout(self.rows),
        }


def _bot_variable() -> Json:
    """`$job`: the bots (service.name) that reported a heartbeat; All means every bot."""
    query = "label_values(trading_bot_heartbeat_timestamp_seconds, job)"
    return {
        "name": "job",
        "label": "Bot",
        "description": "The bot's service.name (Prometheus job, Loki service_name).",
        "type": "query",
        "datasource": PROMETHEUS.ref(),
        "query": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
        "options": [],
    }


def _layout(rows: list[tuple[str, list[Panel]]]) -> list[Json]:
    """Grafana's grid: 24 columns; each row header, then its panels left to right, wrapping."""
    placed: list[Json] = []
    y = 0
    for title, panels in rows:
        placed.append(
            {
                "type": "row",
                "id": len(placed) + 1,
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x, line_height = 0, 0
        for panel in panels:
            if x + panel.width > 24:
                y, x, line_height = y + line_height, 0, 0
            placed.append(panel.to_json(len(placed) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return placed


def _percent_thresholds(warning: float, critical: float) -> list[tuple[float | None, str]]:
    return [(None, "green"), (warning, "yellow"), (critical, "red")]


def trading_performance() -> Dashboard:
    orders = f"trading_orders_total{{{BOT}}}"
    failed = f'trading_orders_total{{{BOT}, status=~"{FAILED_STATUSES}"}}'
    return Dashboard(
        "tbmon-trading-performance",
        "Trading Performance",
        "Portfolio value and P&L, performance ratios, trade execution, strategies, live activity.",
        [
            (
                "Portfolio",
                [
                    stat(
                        "Portfolio value",
                        [prom(f"sum(trading_portfolio_value_usd{{{BOT}}})", "value")],
                        "Current value of every selected bot's portfolio, in USD.",
                        unit="currencyUSD",
                        width=5,
                    ),
                    stat(
                        "P&L over the time range",
                        [prom(f"sum(delta(trading_portfolio_value_usd{{{BOT}}}[$__range]))")],
                        "Change in portfolio value between the start and end of the time range.",
                        unit="currencyUSD",
                        width=5,
                        thresholds=[(None, "red"), (0, "green")],
                    ),
                    stat(
                        "Total return",
                        [prom(f"avg(trading_total_return{{{BOT}}})", "return")],
                        "Total return since the bot started (average over strategies).",
                        unit="percentunit",
                        width=5,
                        thresholds=[(None, "red"), (0, "green")],
                    ),
                    stat(
                        "Open positions",
                        [prom(f"sum(trading_open_positions{{{BOT}}})", "positions")],
                        "Positions open now.",
                        width=4,
                    ),
                    stat(
                        "Last report",
                        [
                            prom(
                                f"time() - max(trading_bot_heartbeat_timestamp_seconds{{{BOT}}})",
                                "age",
                            )
                        ],
                        "Seconds since the bot last exported metrics: a dead bot sends nothing, "
                        "so a growing age is how its death shows.",
                        unit="s",
                        width=5,
                        graph=False,
                        thresholds=[(None, "green"), (BOT_SILENT_SECONDS, "red")],
                    ),
                    timeseries(
                        "Portfolio value",
                        [
                            prom(
                                f"sum by (strategy) (trading_portfolio_value_usd{{{BOT}}})",
                                "{{strategy}}",
                            )
                        ],
                        "Portfolio value per strategy.",
                        unit="currencyUSD",
                        stacked=True,
                    ),
                    timeseries(
                        "P&L (rolling 1 h)",
                        [
                            prom(
                                "sum by (strategy) "
                                f"(delta(trading_portfolio_value_usd{{{BOT}}}[1h]))",
                                "{{strategy}}",
                            )
                        ],
                        "Profit or loss over the preceding hour, per strategy.",
                        unit="currencyUSD",
                    ),
                ],
            ),
            (
                "Performance",
                [
                    timeseries(
                        "Sharpe ratio",
                        [prom(f"trading_sharpe_ratio{{{BOT}}}", "{{job}} {{strategy}}")],
                        "Risk-adjusted return (annualised mean return over its deviation).",
                        width=8,
                        thresholds=[(None, "red"), (1, "green")],
                    ),
                    timeseries(
                        "Max drawdown",
                        [prom(f"trading_max_drawdown{{{BOT}}}", "{{job}} {{strategy}}")],
                        "Largest fall from a peak; alerts at 15% (warning) and 25% (critical).",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        thresholds=_percent_thresholds(DRAWDOWN_WARNING, DRAWDOWN_CRITICAL),
                    ),
                    timeseries(
                        "Win rate",
                        [prom(f"trading_win_rate{{{BOT}}}", "{{job}} {{strategy}}")],
                        "Share of closed trades that made a profit.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                    ),
                ],
            ),
            (
                "Trade execution",
                [
                    timeseries(
                        "Orders per second by status",
                        [
                            prom(
                                f"sum by (status) (rate({orders}[$__rate_interval]))",
                                "{{status}}",
                            )
                        ],
                        "Order outcomes reported by the exchange.",
                        unit="reqps",
                        width=8,
                        stacked=True,
                    ),
                    timeseries(
                        "Execution failure ratio",
                        [
                            prom(
                                zero_if_absent(
                                    f"sum(rate({failed}[5m])) / sum(rate({orders}[5m]))"
                                ),
                                "failed",
                            )
                        ],
                        "Failed, rejected or errored orders as a share of all orders.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        thresholds=[(None, "green"), (0.05, "red")],
                    ),
                    timeseries(
                        "Exchange API latency",
                        quantiles("api_request_duration_seconds", BOT),
                        "Exchange request latency; each dot is an exemplar: click it to open the "
                        "order's trace in Jaeger.",
                        unit="s",
                        width=8,
                        thresholds=[(None, "green"), (API_SLOW_SECONDS, "red")],
                    ),
                    bargauge(
                        "Orders by strategy and side",
                        [
                            prom(
                                f"sum by (strategy, side) (increase({orders}[$__range]))",
                                "{{strategy}} {{side}}",
                            )
                        ],
                        "Orders placed in the time range, per strategy and side.",
                        width=12,
                    ),
                    bargauge(
                        "Orders by exchange",
                        [
                            prom(
                                f"sum by (exchange) (increase({orders}[$__range]))",
                                "{{exchange}}",
                            )
                        ],
                        "Orders placed in the time range, per exchange.",
                        width=12,
                    ),
                ],
            ),
            (
                "Strategy comparison",
                [
                    table(
                        "Strategies",
                        [
                            prom(
                                f"avg by (strategy) (trading_total_return{{{BOT}}})", instant=True
                            ),
                            prom(
                                f"avg by (strategy) (trading_sharpe_ratio{{{BOT}}})", instant=True
                            ),
                            prom(
                                f"max by (strategy) (trading_max_drawdown{{{BOT}}})", instant=True
                            ),
                            prom(f"avg by (strategy) (trading_win_rate{{{BOT}}})", instant=True),
                        ],
                        "Each strategy's latest return, Sharpe ratio, drawdown and win rate.",
                        transformations=[
                            {"id": "merge", "options": {}},
                            {
                                "id": "organize",
                                "options": {
                                    "excludeByName": {"Time": True},
                                    "renameByName": {
                                        "Value #A": "Total return",
                                        "Value #B": "Sharpe ratio",
                                        "Value #C": "Max drawdown",
                                        "Value #D": "Win rate",
                                    },
                                },
                            },
                        ],
                    ),
                    timeseries(
                        "Total return by strategy",
                        [
                            prom(
                                f"avg by (strategy) (trading_total_return{{{BOT}}})",
                                "{{strategy}}",
                            )
                        ],
                        "Total return of each strategy over time.",
                        unit="percentunit",
                    ),
                ],
            ),
            (
                "Live activity",
                [
                    timeseries(
                        "Orders per minute by side",
                        [prom(f"sum by (side) (rate({orders}[1m])) * 60", "{{side}}")],
                        "Trading activity right now.",
                        unit="short",
                        width=8,
                    ),
                    logs(
                        "Bot logs",
                        '{service_name=~"$job"}',
                        "The bots' log records. Open one: its trace_id links to the trace.",
                        width=16,
                        height=8,
                    ),
                ],
            ),
        ],
    )


def system_health() -> Dashboard:
    return Dashboard(
        "tbmon-system-health",
        "System Health",
        "Bot host resources, network latency, API response times, services, errors, pipeline.",
        [
            (
                "Bot host",
                [
                    gauge(
                        "CPU",
                        [prom(f"max(system_cpu_usage_percent{{{BOT}}})", "cpu")],
                        "CPU use on the bot's host.",
                        unit="percent",
                        maximum=100,
                        thresholds=_percent_thresholds(
                            CPU_MEMORY_WARNING_PERCENT, CPU_MEMORY_CRITICAL_PERCENT
                        ),
                    ),
                    gauge(
                        "Memory",
                        [prom(f"max(system_memory_usage_percent{{{BOT}}})", "memory")],
                        "Memory use on the bot's host.",
                        unit="percent",
                        maximum=100,
                        thresholds=_percent_thresholds(
                            CPU_MEMORY_WARNING_PERCENT, CPU_MEMORY_CRITICAL_PERCENT
                        ),
                    ),
                    gauge(
                        "Disk",
                        [prom(f"max(system_disk_usage_percent{{{BOT}}})", "disk")],
                        "Disk use on the bot's host.",
                        unit="percent",
                        maximum=100,
                        thresholds=_percent_thresholds(80, 90),
                    ),
                    stat(
                        "Network latency to the exchange",
                        [prom(f"max(system_network_latency_ms{{{BOT}}})", "latency")],
                        "Round trip to the configured exchange endpoint.",
                        unit="ms",
                        width=6,
                        height=8,
                        thresholds=[(None, "green"), (200, "yellow"), (500, "red")],
                    ),
                    timeseries(
                        "CPU, memory and disk",
                        [
                            prom(f"system_cpu_usage_percent{{{BOT}}}", "cpu {{job}}"),
                            prom(f"system_memory_usage_percent{{{BOT}}}", "memory {{job}}"),
                            prom(f"system_disk_usage_percent{{{BOT}}}", "disk {{job}}"),
                        ],
                        "Resource use of each bot's host over time.",
                        unit="percent",
                        minimum=0,
                        maximum=100,
                        thresholds=_percent_thresholds(
                            CPU_MEMORY_WARNING_PERCENT, CPU_MEMORY_CRITICAL_PERCENT
                        ),
                    ),
                    timeseries(
                        "Network latency",
                        [prom(f"system_network_latency_ms{{{BOT}}}", "{{job}} {{exchange}}")],
                        "Round trip from each bot to its exchange.",
                        unit="ms",
                    ),
                ],
            ),
            (
                "API response times and errors",
                [
                    timeseries(
                        "API response time",
                        quantiles("api_request_duration_seconds", BOT, by="exchange"),
                        "Exchange API latency per exchange; exemplars link to traces.",
                        unit="s",
                        thresholds=[(None, "green"), (API_SLOW_SECONDS, "red")],
                    ),
                    timeseries(
                        "Error rate",
                        [
                            prom(
                                zero_if_absent(
                                    f"sum(rate(trading_orders_total"
                                    f'{{{BOT}, status=~"{FAILED_STATUSES}"}}'
                                    "[$__rate_interval]))"
                                ),
                                "failed orders",
                            ),
                            prom(
                                collector_rate("exporter_send_failed"), "telemetry export failures"
                            ),
                        ],
                        "Failed orders and telemetry that could not be exported, per second.",
                        unit="reqps",
                    ),
                ],
            ),
            (
                "Services",
                [
                    state_timeline(
                        "Service health",
                        [prom("health_component_status", "{{component}}")],
                        "Each component's status from the health service (healthy, degraded, "
                        "unhealthy).",
                        mappings=HEALTH_STATES,
                        thresholds=[(None, "red"), (1, "yellow"), (2, "green")],
                    ),
                    timeseries(
                        "Health check duration",
                        [prom("health_check_duration_seconds", "{{component}}")],
                        "How long each health check took.",
                        unit="s",
                    ),
                    timeseries(
                        "Time since last health check",
                        [prom("time() - health_check_timestamp_seconds", "{{component}}")],
                        "A growing age means the health service stopped checking.",
                        unit="s",
                    ),
                    table(
                        "Scrape targets",
                        [prom("up", instant=True)],
                        "Every target Prometheus scrapes: up or down.",
                        width=24,
                        mappings=UP_STATES,
                        thresholds=[(None, "red"), (1, "green")],
                        transformations=[
                            {
                                "id": "organize",
                                "options": {
                                    "excludeByName": {"Time": True, "__name__": True},
                                    "renameByName": {"Value": "state"},
                                },
                            }
                        ],
                    ),
                ],
            ),
            (
                "Monitoring host (node exporter)",
                [
                    timeseries(
                        "CPU busy",
                        [
                            prom(
                                '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}'
                                "[$__rate_interval]))",
                                "{{instance}}",
                            )
                        ],
                        "Share of CPU time not idle on the monitoring host.",
                        unit="percentunit",
                        width=8,
                    ),
                    timeseries(
                        "Memory available",
                        [
                            prom(
                                "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                                "{{instance}}",
                            )
                        ],
                        "Share of memory still available on the monitoring host.",
                        unit="percentunit",
                        width=8,
                    ),
                    timeseries(
                        "Filesystem free",
                        [
                            prom(
                                "min by (instance, mountpoint) "
                                '(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"}'
                                ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay"})',
                                "{{mountpoint}}",
                            )
                        ],
                        "Free space per filesystem: Prometheus, Loki and Jaeger data live here.",
                        unit="percentunit",
                        width=8,
                        thresholds=[(None, "red"), (0.1, "yellow"), (0.2, "green")],
                    ),
                ],
            ),
            (
                "Telemetry pipeline (collector)",
                [
                    timeseries(
                        "Throughput",
                        [
                            prom(
                                f"sum(rate(otelcol_receiver_accepted_spans{{{COLLECTOR}}}"
                                "[$__rate_interval]))",
                                "spans in",
                            ),
                            prom(
                                f"sum(rate(otelcol_receiver_accepted_metric_points{{{COLLECTOR}}}"
                                "[$__rate_interval]))",
                                "metric points in",
                            ),
                            prom(
                                f"sum(rate(otelcol_receiver_accepted_log_records{{{COLLECTOR}}}"
                                "[$__rate_interval]))",
                                "log records in",
                            ),
                            prom(
                                "sum by (exporter) "
                                f"(rate(otelcol_exporter_sent_spans{{{COLLECTOR}}}"
                                "[$__rate_interval]))",
                                "spans out {{exporter}}",
                            ),
                        ],
                        "Items per second received from bots and sent on by each exporter.",
                        unit="short",
                        width=8,
                    ),
                    timeseries(
                        "Drops and refusals",
                        [
                            prom(collector_rate("receiver_refused"), "refused (memory limit)"),
                            prom(collector_rate("exporter_enqueue_failed"), "dropped (queue full)"),
                            prom(
                                collector_rate("exporter_send_failed"), "export failures (given up)"
                            ),
                        ],
                        "Should stay at zero. Refused: the collector is over its memory limit. "
                        "Dropped: a sending queue was full. Export failures: requests the "
                        "exporter gave up on (not retryable); a backend that is down shows as "
                        "queue usage instead, since retries never give up.",
                        unit="short",
                        width=8,
                        thresholds=[(None, "green"), (1, "red")],
                    ),
                    timeseries(
                        "Sending queue usage",
                        [
                            prom(
                                f"max by (exporter) (otelcol_exporter_queue_size{{{COLLECTOR}}}"
                                f" / otelcol_exporter_queue_capacity{{{COLLECTOR}}})",
                                "{{exporter}}",
                            )
                        ],
                        "How full each exporter's persistent queue is: a backend that is down "
                        "fills its queue.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                        thresholds=_percent_thresholds(0.5, 0.8),
                    ),
                ],
            ),
        ],
    )


def risk_metrics() -> Dashboard:
    breaches = [
        prom(f"max(risk_var_95_percent{{{BOT}}}) > bool {VAR95_CRITICAL}", "VaR 95% > 10%"),
        prom(
            f"max(trading_max_drawdown{{{BOT}}}) > bool {DRAWDOWN_WARNING}",
            "Drawdown > 15%",
        ),
        prom(
            f"max(risk_leverage_ratio{{{BOT}}}) > bool {LEVERAGE_WARNING}",
            f"Leverage > {LEVERAGE_WARNING:g}x",
        ),
        prom(
            f"max(risk_position_concentration{{{BOT}}}) > bool {CONCENTRATION_WARNING}",
            "Concentration > 50%",
        ),
    ]
    return Dashboard(
        "tbmon-risk-metrics",
        "Risk Metrics",
        "Value at Risk, position concentration, leverage, correlation and liquidity, breaches.",
        [
            (
                "Value at Risk",
                [
                    stat(
                        "VaR 95%",
                        [prom(f"max(risk_var_95_percent{{{BOT}}})", "VaR 95%")],
                        "One-day loss not exceeded with 95% confidence; critical above 10%.",
                        unit="percentunit",
                        width=6,
                        thresholds=[
                            (None, "green"),
                            (VAR95_CRITICAL * 0.8, "yellow"),
                            (VAR95_CRITICAL, "red"),
                        ],
                    ),
                    stat(
                        "VaR 99%",
                        [prom(f"max(risk_var_99_percent{{{BOT}}})", "VaR 99%")],
                        "One-day loss not exceeded with 99% confidence.",
                        unit="percentunit",
                        width=6,
                    ),
                    timeseries(
                        "Value at Risk",
                        [
                            prom(f"risk_var_95_percent{{{BOT}}}", "95% {{job}} {{strategy}}"),
                            prom(f"risk_var_99_percent{{{BOT}}}", "99% {{job}} {{strategy}}"),
                        ],
                        "VaR at 95% and 99% as a fraction of portfolio value.",
                        unit="percentunit",
                        thresholds=[(None, "green"), (VAR95_CRITICAL, "red")],
                    ),
                ],
            ),
            (
                "Concentration and leverage",
                [
                    bargauge(
                        "Position concentration",
                        [
                            prom(
                                f"max by (strategy) (risk_position_concentration{{{BOT}}})",
                                "{{strategy}}",
                            )
                        ],
                        "Share of the portfolio in the largest position.",
                        unit="percentunit",
                        maximum=1,
                        thresholds=_percent_thresholds(CONCENTRATION_WARNING, 0.75),
                    ),
                    timeseries(
                        "Position concentration",
                        [
                            prom(
                                f"risk_position_concentration{{{BOT}}}",
                                "{{job}} {{strategy}}",
                            )
                        ],
                        "Concentration over time.",
                        unit="percentunit",
                        width=8,
                        thresholds=[(None, "green"), (CONCENTRATION_WARNING, "red")],
                    ),
                    timeseries(
                        "Leverage",
                        [prom(f"risk_leverage_ratio{{{BOT}}}", "{{job}} {{strategy}}")],
                        "Gross exposure over equity.",
                        unit="x",
                        width=8,
                        thresholds=[(None, "green"), (LEVERAGE_WARNING, "red")],
                    ),
                ],
            ),
            (
                "Correlation and liquidity",
                [
                    timeseries(
                        "Correlation risk",
                        [prom(f"risk_correlation_score{{{BOT}}}", "{{job}} {{strategy}}")],
                        "How strongly the open positions move together (1 = all as one).",
                        minimum=0,
                        maximum=1,
                    ),
                    timeseries(
                        "Liquidity: open positions against order flow",
                        [
                            prom(f"sum(trading_open_positions{{{BOT}}})", "open positions"),
                            prom(
                                f"sum(rate(trading_orders_total{{{BOT}}}[5m])) * 60",
                                "orders per minute",
                            ),
                        ],
                        "Positions that could not be closed quickly show as open positions "
                        "rising while order flow falls.",
                        unit="short",
                    ),
                ],
            ),
            (
                "Risk breach timeline",
                [
                    state_timeline(
                        "Risk limit breaches",
                        breaches,
                        "When each risk limit was breached in the time range.",
                        mappings=BREACH_STATES,
                        thresholds=[(None, "green"), (1, "red")],
                    ),
                ],
            ),
        ],
    )


#: What an agent panel says without data: most bots have no agents (docs/instrumentation.md).
NO_AGENTS = (
    "No agents reported: this bot has no ML agents (freqtrade without FreqAI, a plain ccxt bot)"
)
NO_MODELS = "No model predictions reported (freqtrade: only with FreqAI)"


def _saying(text: str, panels: list[Panel]) -> list[Panel]:
    """``panels`` saying ``text`` instead of showing blank when their queries find nothing."""
    for panel in panels:
        panel.no_value = text
    return panels


def agent_performance() -> Dashboard:
    dashboard = _agent_performance()
    for title, panels in dashboard.rows:
        _saying(NO_MODELS if title == "Inference" else NO_AGENTS, panels)
    return dashboard


def _agent_performance() -> Dashboard:
    return Dashboard(
        "tbmon-agent-performance",
        "Agent Performance",
        "Model accuracy, ensemble consensus, agent rewards, inference speed, training progress. "
        "A bot without ML agents reports none of these, and the panels say so.",
        [
            (
                "Accuracy and consensus",
                [
                    bargauge(
                        "Prediction accuracy now",
                        [
                            prom(
                                f"avg by (agent) (agent_prediction_accuracy{{{BOT}}})",
                                "{{agent}}",
                            )
                        ],
                        "Each agent's accuracy; critical under 50%, low under 60%.",
                        unit="percentunit",
                        maximum=1,
                        thresholds=[
                            (None, "red"),
                            (ACCURACY_CRITICAL, "yellow"),
                            (ACCURACY_WARNING, "green"),
                        ],
                    ),
                    timeseries(
                        "Prediction accuracy",
                        [prom(f"agent_prediction_accuracy{{{BOT}}}", "{{job}} {{agent}}")],
                        "Accuracy of each ML model over time.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                        thresholds=[(None, "red"), (ACCURACY_CRITICAL, "green")],
                    ),
                    timeseries(
                        "Ensemble consensus",
                        [prom(f"ensemble_consensus_score{{{BOT}}}", "{{job}}")],
                        "How much the agents agree; low consensus means conflicting signals.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                    ),
                ],
            ),
            (
                "Rewards",
                [
                    timeseries(
                        "Cumulative reward",
                        [prom(f"agent_cumulative_reward{{{BOT}}}", "{{job}} {{agent}}")],
                        "Each RL agent's cumulative reward.",
                    ),
                    timeseries(
                        "Reward per hour",
                        [
                            prom(
                                f"deriv(agent_cumulative_reward{{{BOT}}}[15m]) * 3600",
                                "{{job}} {{agent}}",
                            )
                        ],
                        "Slope of the cumulative reward: falling means the agent is earning less.",
                    ),
                ],
            ),
            (
                "Inference",
                [
                    timeseries(
                        "Inference latency",
                        quantiles("model_inference_duration_seconds", BOT, by="model"),
                        "Prediction time per model; exemplars link to the traces.",
                        unit="s",
                    ),
                    timeseries(
                        "Predictions per second",
                        [
                            prom(
                                "sum by (model) (rate(model_inference_duration_seconds_count"
                                f"{{{BOT}}}[$__rate_interval]))",
                                "{{model}}",
                            )
                        ],
                        "How often each model predicts.",
                        unit="reqps",
                    ),
                ],
            ),
            (
                "Training progress",
                [
                    timeseries(
                        "Accuracy trend (1 h average)",
                        [
                            prom(
                                "avg by (agent) "
                                f"(avg_over_time(agent_prediction_accuracy{{{BOT}}}[1h]))",
                                "{{agent}}",
                            )
                        ],
                        "Smoothed accuracy: rising means the models are learning.",
                        unit="percentunit",
                        minimum=0,
                        maximum=1,
                    ),
                    timeseries(
                        "Reward trend (1 h average)",
                        [
                            prom(
                                "avg by (agent) "
                                f"(avg_over_time(agent_cumulative_reward{{{BOT}}}[1h]))",
                                "{{agent}}",
                            )
                        ],
                        "Smoothed cumulative reward per agent.",
                    ),
                ],
            ),
        ],
    )


DASHBOARDS = (trading_performance, system_health, risk_metrics, agent_performance)


def render() -> dict[str, str]:
    """Each dashboard's file name and its JSON text, as written to DASHBOARD_DIR."""
    rendered = {}
    for build in DASHBOARDS:
        dashboard = build()
        rendered[dashboard.file_name] = json.dumps(dashboard.to_json(), indent=2) + "\n"
    return rendered


def stale(directory: Path = DASHBOARD_DIR) -> list[str]:
    """File names whose JSON differs from what this module generates (or that are missing)."""
    found = {path.name for path in directory.glob("*.json")}
    rendered = render()
    changed = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    return sorted(changed + sorted(found - rendered.keys()))


def write(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Write every dashboard, remove JSON files no dashboard generates; returns changed names."""
    changed = stale(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render()
    for name, text in rendered.items():
        (directory / name).write_text(text)
    for path in directory.glob("*.json"):
        if path.name not in rendered:
            path.unlink()
    return changed
