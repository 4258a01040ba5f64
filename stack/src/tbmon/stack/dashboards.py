"""The four Grafana dashboards as code: `tbmon stack dashboards` writes
tbmon/stack/grafana/dashboards/.

Every panel queries the seed's metric names (the bots' metrics as the collector exports them, the
health service's ``health_*`` series, the collector's own ``otelcol_*`` telemetry, node exporter).
Datasources are named by the fixed uids that ``tbmon/stack/grafana/provisioning/datasources`` gives
them. A panel that shadows alert rules (``shadows``) takes its thresholds from those rules as
the stack renders them (:func:`tbmon.stack.render.deployment_thresholds`, with the operator's
TBMON_THRESHOLD_* settings), so it turns orange where a warning fires and red where a critical
alert fires, and cannot drift from them; the execution panels count the failure statuses that
TradingExecutionFailures counts, read from its rule. A bot is its service and strategy: gauges
leave out the series of a restarted bot's old process (``current``, see
``tbmon/stack/prometheus/rules/bots.yml``), so a restart doubles nothing.

Edit this file, run ``tbmon stack dashboards``, and commit the JSON (rendered with the default
thresholds); a test fails while the JSON is stale, and another runs every query against a real
Prometheus. ``tbmon stack render dashboards --out DIR`` renders them with this deployment's
thresholds (Compose's ``stack-config`` one-shot does, for Grafana).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from tbmon.settings import StackSettings
from tbmon.stack import render as rendering
from tbmon.stack.resources import STACK_DATA

Json = dict[str, Any]

#: Where the generated dashboards live (mounted into Grafana by the Compose file).
DASHBOARD_DIR = STACK_DATA / "grafana" / "dashboards"

#: The collector's own telemetry, as Prometheus scrapes it (tbmon/stack/prometheus/prometheus.yml).
COLLECTOR = 'job="otel-collector-internal"'
#: The dashboards' bot selector: the `job` variable (a bot's service.name).
BOT = 'job=~"$job"'
#: cAdvisor's series of the Compose stack's containers (not the cgroups of the host itself).
CONTAINERS = 'name!=""'
#: The processes of restarted bots that a newer process of the same service replaced
#: (tbmon/stack/prometheus/rules/bots.yml).
SUPERSEDED = "job_instance:trading_bot_heartbeat_timestamp_seconds:superseded"
#: Panel colours by the severity of the alert that fires there.
SEVERITY_COLOURS = {"warning": "orange", "critical": "red"}


#: Panel thresholds: (value from which, colour); the first value is None (from -infinity).
Steps = list[tuple[float | None, str]]


@dataclass(frozen=True)
class Shade:
    """The alerts a panel shadows, and the thresholds they give it."""

    alerts: tuple[str, ...]
    steps: Steps


@dataclass(frozen=True)
class Alerts:
    """The alert rules as the stack renders them: what panels take their thresholds from."""

    thresholds: Mapping[tuple[str, str], rendering.Threshold]
    rules: Mapping[tuple[str, str], Json]

    @classmethod
    def of(cls, settings: StackSettings) -> Alerts:
        rules: dict[tuple[str, str], Json] = {}
        for rule in rendering.rendered_rules(settings):
            key = rendering.rule_key(rule)
            if key is not None:
                rules.setdefault(key, rule)  # the deployment's, not a strategy's copy
        return cls(rendering.deployment_thresholds(settings), rules)

    def shade(self, *alerts: str) -> Shade:
        """The thresholds of a panel that shadows ``alerts``."""
        return Shade(alerts, self.steps(*alerts))

    def steps(self, *alerts: str) -> Steps:
        """Panel thresholds where ``alerts`` fire: orange from a warning's threshold, red from a
        critical one's; downwards for alerts on a value falling below their threshold."""
        found = sorted(
            (threshold.value, threshold.above, SEVERITY_COLOURS[severity])
            for (name, severity), threshold in self.thresholds.items()
            if name in alerts
        )
        if not found or len({above for _, above, _ in found}) != 1:
            raise ValueError(f"{alerts}: no rule, or rules on both sides of their thresholds")
        if found[0][1]:  # fires above: green, then each threshold's colour from it up
            return [(None, "green"), *((value, colour) for value, _, colour in found)]
        colours = [colour for _, _, colour in found]  # fires below: colours run downwards
        values = [value for value, _, _ in found]
        return [(None, colours[0]), *zip(values, [*colours[1:], "green"], strict=True)]

    def matcher(self, alert: str, label: str) -> str:
        """The matcher on ``label`` of ``alert``'s rule (``status=~"failed|..."``)."""
        rule = next(rule for (name, _), rule in self.rules.items() if name == alert)
        found = set(re.findall(rf'\b{label}\s*(=~|!~|!=|=)\s*("[^"]*")', str(rule["expr"])))
        if len(found) != 1:
            raise ValueError(f"{alert}: expected one matcher on {label}, found {found}")
        ((op, value),) = found
        return f"{label}{op}{value}"


@lru_cache(maxsize=1)
def default_alerts() -> Alerts:
    """The rules' own thresholds (the committed JSON's), whatever the environment says."""
    return Alerts.of(StackSettings.model_construct())


@lru_cache(maxsize=1)
def superseded() -> str:
    """The expression of the SUPERSEDED recording rule (bots.yml), on one line. Panels evaluate
    it in place rather than read the recorded series: the record lags up to an evaluation
    interval behind a restart, and in that time a panel would count both processes."""
    for group in yaml.safe_load((rendering.RULES_DIR / "bots.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == SUPERSEDED:
                return " ".join(str(rule["expr"]).split())
    raise ValueError(f"no recording rule {SUPERSEDED} in bots.yml")


def current(selector: str) -> str:
    """A bot gauge's series without those of restarted bots' old processes."""
    return f"({selector} unless on (job, instance) ({superseded()}))"


def per_bot(metric: str, by: str = "job, strategy") -> str:
    """One series per bot (service and strategy) across restarts: the selected bots' gauge."""
    return f"max by ({by}) {current(f'{metric}{{{BOT}}}')}"


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
    thresholds: Steps = field(default_factory=lambda: [(None, "green")])
    #: The alerts whose rules gave ``thresholds`` (not in Grafana's JSON; the tests read it).
    shadows: tuple[str, ...] = ()
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


def _steps(thresholds: Steps | Shade | None) -> Steps:
    if isinstance(thresholds, Shade):
        return thresholds.steps
    return thresholds or [(None, "green")]


def _shadows(thresholds: Steps | Shade | None) -> tuple[str, ...]:
    return thresholds.alerts if isinstance(thresholds, Shade) else ()


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
    thresholds: Steps | Shade | None = None,
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
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
    thresholds: Steps | Shade | None = None,
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
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
    thresholds: Steps | Shade,
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
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
    thresholds: Steps | Shade | None = None,
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
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
    thresholds: Steps | Shade,
    width: int = 24,
) -> Panel:
    return Panel(
        "state-timeline",
        title,
        targets,
        description,
        width=width,
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
    thresholds: Steps | Shade | None = None,
) -> Panel:
    return Panel(
        "table",
        title,
        targets,
        description,
        width=width,
        mappings=mappings or [],
        thresholds=_steps(thresholds),
        shadows=_shadows(thresholds),
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
BREACH_STATES = _value_map(
    {0: ("within limits", "green"), 1: ("warning", "orange"), 2: ("critical", "red")}
)
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


def trading_performance(alerts: Alerts | None = None) -> Dashboard:
    alerts = alerts or default_alerts()
    orders = f"trading_orders_total{{{BOT}}}"
    failures = alerts.matcher("TradingExecutionFailures", "status")
    failed = f"trading_orders_total{{{BOT}, {failures}}}"
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
                        [prom(f"sum({current(f'trading_portfolio_value_usd{{{BOT}}}')})", "value")],
                        "Current value of every selected bot's portfolio, in USD (a restarted "
                        "bot's old process is not counted).",
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
                        [prom(f"avg({current(f'trading_total_return{{{BOT}}}')})", "return")],
                        "Total return since the bot started (average over strategies).",
                        unit="percentunit",
                        width=5,
                        thresholds=[(None, "red"), (0, "green")],
                    ),
                    stat(
                        "Open positions",
                        [prom(f"sum({current(f'trading_open_positions{{{BOT}}}')})", "positions")],
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
                        "so a growing age is how its death shows (BotStoppedReporting).",
                        unit="s",
                        width=5,
                        graph=False,
                        thresholds=alerts.shade("BotStoppedReporting"),
                    ),
                    timeseries(
                        "Portfolio value",
                        [
                            prom(
                                "sum by (strategy) "
                                f"{current(f'trading_portfolio_value_usd{{{BOT}}}')}",
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
                        [prom(per_bot("trading_sharpe_ratio"), "{{job}} {{strategy}}")],
                        "Risk-adjusted return (annualised mean return over its deviation).",
                        width=6,
                        thresholds=[(None, "red"), (1, "green")],
                    ),
                    timeseries(
                        "Current drawdown",
                        [prom(per_bot("trading_current_drawdown"), "{{job}} {{strategy}}")],
                        "How far each portfolio is below its high-water mark now (the highest "
                        "value since the bot first ran, kept beyond the analytics window and "
                        "across restarts): HighDrawdown fires on this, and resolves only once "
                        "the portfolio recovers.",
                        unit="percentunit",
                        width=6,
                        minimum=0,
                        thresholds=alerts.shade("HighDrawdown"),
                    ),
                    timeseries(
                        "Max drawdown",
                        [prom(per_bot("trading_max_drawdown"), "{{job}} {{strategy}}")],
                        "Largest fall from a peak within the analytics window "
                        "(TBMON_ANALYTICS_WINDOW periods): it stays up after a recovery until "
                        "the fall leaves the window. The alert follows the current drawdown.",
                        unit="percentunit",
                        width=6,
                        minimum=0,
                    ),
                    timeseries(
                        "Win rate",
                        [prom(per_bot("trading_win_rate"), "{{job}} {{strategy}}")],
                        "Share of closed trades that made a profit.",
                        unit="percentunit",
                        width=6,
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
                                # 0 where nothing failed (no failure series exists there yet).
                                f"(sum by (job, strategy, exchange) (rate({failed}[5m])) "
                                f"or sum by (job, strategy, exchange) (rate({orders}[5m])) * 0)"
                                f" / sum by (job, strategy, exchange) (rate({orders}[5m]))",
                                "{{job}} {{strategy}} {{exchange}}",
                            )
                        ],
                        "Orders that failed, were rejected or errored, as a share of each bot's "
                        "orders on each exchange over 5 minutes: what TradingExecutionFailures "
                        "compares (it also waits for 3 failures).",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        thresholds=alerts.shade("TradingExecutionFailures"),
                    ),
                    timeseries(
                        "Exchange API latency",
                        quantiles("api_request_duration_seconds", BOT),
                        "Exchange request latency; each dot is an exemplar: click it to open the "
                        "order's trace in Jaeger. SlowAPIResponses fires on an endpoint's p95.",
                        unit="s",
                        width=8,
                        thresholds=alerts.shade("SlowAPIResponses"),
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
                                f"avg by (strategy) {current(f'trading_total_return{{{BOT}}}')}",
                                instant=True,
                            ),
                            prom(
                                f"avg by (strategy) {current(f'trading_sharpe_ratio{{{BOT}}}')}",
                                instant=True,
                            ),
                            prom(
                                "max by (strategy) "
                                f"{current(f'trading_current_drawdown{{{BOT}}}')}",
                                instant=True,
                            ),
                            prom(
                                f"max by (strategy) {current(f'trading_max_drawdown{{{BOT}}}')}",
                                instant=True,
                            ),
                            prom(
                                f"avg by (strategy) {current(f'trading_win_rate{{{BOT}}}')}",
                                instant=True,
                            ),
                        ],
                        "Each strategy's latest return, Sharpe ratio, drawdown now and in the "
                        "window, and win rate.",
                        transformations=[
                            {"id": "merge", "options": {}},
                            {
                                "id": "organize",
                                "options": {
                                    "excludeByName": {"Time": True},
                                    "renameByName": {
                                        "Value #A": "Total return",
                                        "Value #B": "Sharpe ratio",
                                        "Value #C": "Current drawdown",
                                        "Value #D": "Max drawdown",
                                        "Value #E": "Win rate",
                                    },
                                },
                            },
                        ],
                    ),
                    timeseries(
                        "Total return by strategy",
                        [
                            prom(
                                f"avg by (strategy) {current(f'trading_total_return{{{BOT}}}')}",
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


def system_health(alerts: Alerts | None = None) -> Dashboard:
    alerts = alerts or default_alerts()
    failures = alerts.matcher("TradingExecutionFailures", "status")
    return Dashboard(
        "tbmon-system-health",
        "System Health",
        "Bot host resources, network latency, API response times, services, errors, "
        "containers, pipeline.",
        [
            (
                "Bot host",
                [
                    gauge(
                        "CPU",
                        [prom(f"max{current(f'system_cpu_usage_percent{{{BOT}}}')}", "cpu")],
                        "CPU use on the bot's host (HighCPUUsage).",
                        unit="percent",
                        maximum=100,
                        thresholds=alerts.shade("HighCPUUsage"),
                    ),
                    gauge(
                        "Memory",
                        [prom(f"max{current(f'system_memory_usage_percent{{{BOT}}}')}", "memory")],
                        "Memory use on the bot's host (HighMemoryUsage).",
                        unit="percent",
                        maximum=100,
                        thresholds=alerts.shade("HighMemoryUsage"),
                    ),
                    gauge(
                        "Disk",
                        [prom(f"max{current(f'system_disk_usage_percent{{{BOT}}}')}", "disk")],
                        "Disk use on the bot's host (HighDiskUsage).",
                        unit="percent",
                        maximum=100,
                        thresholds=alerts.shade("HighDiskUsage"),
                    ),
                    stat(
                        "Network latency to the exchange",
                        [prom(f"max{current(f'system_network_latency_ms{{{BOT}}}')}", "latency")],
                        "Round trip to the configured exchange endpoint.",
                        unit="ms",
                        width=6,
                        height=8,
                        thresholds=[(None, "green"), (200, "yellow"), (500, "red")],
                    ),
                    timeseries(
                        "CPU, memory and disk",
                        [
                            prom(per_bot("system_cpu_usage_percent", "job"), "cpu {{job}}"),
                            prom(per_bot("system_memory_usage_percent", "job"), "memory {{job}}"),
                            prom(per_bot("system_disk_usage_percent", "job"), "disk {{job}}"),
                        ],
                        "Resource use of each bot's host over time (the gauges above show "
                        "where each alert fires).",
                        unit="percent",
                        minimum=0,
                        maximum=100,
                    ),
                    timeseries(
                        "Network latency",
                        [
                            prom(
                                per_bot("system_network_latency_ms", "job, exchange"),
                                "{{job}} {{exchange}}",
                            )
                        ],
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
                        "Exchange API latency per exchange; exemplars link to traces. "
                        "SlowAPIResponses fires on an endpoint's p95.",
                        unit="s",
                        thresholds=alerts.shade("SlowAPIResponses"),
                    ),
                    timeseries(
                        "Error rate",
                        [
                            prom(
                                zero_if_absent(
                                    f"sum(rate(trading_orders_total{{{BOT}, {failures}}}"
                                    "[$__rate_interval]))"
                                ),
                                "failed orders",
                            ),
                            prom(
                                collector_rate("exporter_send_failed"), "telemetry export failures"
                            ),
                        ],
                        "Orders that failed, were rejected or errored (as TradingExecutionFailures "
                        "counts them) and telemetry that could not be exported, per second.",
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
                        "A growing age means the health service stopped checking "
                        "(HealthChecksStale).",
                        unit="s",
                        thresholds=alerts.shade("HealthChecksStale"),
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
                "Containers (cAdvisor, in Compose)",
                [
                    timeseries(
                        "Container CPU",
                        [
                            prom(
                                "sum by (name) (rate(container_cpu_usage_seconds_total"
                                f"{{{CONTAINERS}}}[$__rate_interval]))",
                                "{{name}}",
                            )
                        ],
                        "CPU each container of the Compose stack uses (1 = one core).",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                    ),
                    timeseries(
                        "Container memory",
                        [
                            prom(
                                "sum by (name) "
                                f"(container_memory_working_set_bytes{{{CONTAINERS}}})",
                                "{{name}}",
                            )
                        ],
                        "Working-set memory of each container (what the kernel's OOM killer "
                        "weighs).",
                        unit="bytes",
                        width=8,
                        minimum=0,
                    ),
                    timeseries(
                        "Container restarts (15 min)",
                        [
                            prom(
                                f"changes(container_start_time_seconds{{{CONTAINERS}}}[15m])",
                                "{{name}}",
                            )
                        ],
                        "How often Docker restarted each container in the last 15 minutes (a "
                        "crash, or a failing healthcheck): what ContainerRestarting counts.",
                        unit="short",
                        width=4,
                        minimum=0,
                        thresholds=alerts.shade("ContainerRestarting"),
                    ),
                    timeseries(
                        "Container OOM kills (15 min)",
                        [
                            prom(
                                f"increase(container_oom_events_total{{{CONTAINERS}}}[15m])",
                                "{{name}}",
                            )
                        ],
                        "Out-of-memory kills in each container in the last 15 minutes: what "
                        "ContainerOOMKilled counts.",
                        unit="short",
                        width=4,
                        minimum=0,
                        thresholds=alerts.shade("ContainerOOMKilled"),
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
                        "Should stay at zero: any drop or refusal fires CollectorExportFailing "
                        "or CollectorRefusingData. Refused: the collector is over its memory "
                        "limit. Dropped: a sending queue was full. Export failures: requests the "
                        "exporter gave up on (not retryable); a backend that is down shows as "
                        "queue usage instead, since retries never give up.",
                        unit="short",
                        width=8,
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
                        "fills its queue (CollectorQueueFilling).",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                        thresholds=alerts.shade("CollectorQueueFilling"),
                    ),
                ],
            ),
            (
                "Telemetry losses and alert delivery (the pipeline's alerts)",
                [
                    timeseries(
                        "Items lost in 5 minutes",
                        [
                            prom(
                                "sum by (exporter, stage) (otelcol_exporter_failed:increase5m)",
                                "collector {{exporter}} ({{stage}})",
                            ),
                            prom(
                                "sum by (job, signal, reason) (tbmon_telemetry_dropped:increase5m)",
                                "bot {{job}} {{signal}} ({{reason}})",
                            ),
                            prom(
                                "sum by (signal, reason) "
                                "(increase(tbmon_processors_dropped_items_total[5m]))",
                                "processors host {{signal}} ({{reason}})",
                            ),
                            prom(
                                "sum by (job, reason) (log_store_dropped:increase5m)",
                                "log store {{job}} ({{reason}})",
                            ),
                        ],
                        "What CollectorExportFailing, BotTelemetryDropped, "
                        "ProcessorsDroppedItems and LogStoreDroppedRecords count (a first loss "
                        "included): above zero, they fire.",
                        unit="short",
                        width=8,
                    ),
                    timeseries(
                        "Refused and sent",
                        [
                            prom(
                                "sum by (receiver, data_type) (otelcol_receiver_refused:rate5m)",
                                "refused {{receiver}} {{data_type}}",
                            ),
                            prom(
                                "sum by (exporter, data_type) (otelcol_exporter_sent:rate5m)",
                                "sent {{exporter}} {{data_type}}",
                            ),
                        ],
                        "Items per second the collector refuses (CollectorRefusingData) and each "
                        "exporter sends: a queue that holds data while its exporter sends "
                        "nothing fires CollectorExportStalled.",
                        unit="short",
                        width=8,
                    ),
                    timeseries(
                        "Processors plugins",
                        [
                            prom(
                                "sum by (plugin) "
                                "(increase(tbmon_processors_plugin_errors_total[5m]))",
                                "errors {{plugin}}",
                            ),
                            prom(
                                "max by (plugin) (tbmon_processors_plugin_stuck)",
                                "stuck {{plugin}}",
                            ),
                        ],
                        "Plugin failures in 5 minutes (ProcessorPluginFailing) and calls that "
                        "overran their budget (ProcessorPluginStuck); critical for redaction.",
                        unit="short",
                        width=8,
                    ),
                    timeseries(
                        "Alert bridge backlog",
                        [
                            prom(
                                "max by (instance) (alert_bridge_outbox_oldest_age_seconds)",
                                "oldest alert waiting {{instance}}",
                            )
                        ],
                        "Age of the oldest alert the bridge has not delivered to Telegram yet "
                        "(AlertDeliveryBacklog above 10 minutes).",
                        unit="s",
                        width=12,
                    ),
                    timeseries(
                        "Alert delivery failures",
                        [
                            prom(
                                "sum by (integration) "
                                "(rate(alertmanager_notifications_failed_total[5m]))",
                                "Alertmanager {{integration}}",
                            ),
                            prom(
                                "sum(rate(prometheus_notifications_errors_total[5m]))"
                                " + sum(rate(prometheus_notifications_dropped_total[5m]))",
                                "Prometheus to Alertmanager",
                            ),
                            prom(
                                "sum by (rule_group) "
                                "(increase(prometheus_rule_evaluation_failures_total[5m]))",
                                "rule evaluations failed {{rule_group}}",
                            ),
                        ],
                        "Should stay at zero: notifications that fail "
                        "(AlertmanagerNotificationsFailing, PrometheusAlertsNotSent) and rule "
                        "groups that fail to evaluate (PrometheusRuleFailures).",
                        unit="short",
                        width=12,
                    ),
                ],
            ),
        ],
    )


#: The risk alerts whose firing the breach timeline shows.
RISK_ALERTS = ("HighVaR", "HighDrawdown", "HighLeverage", "HighPositionConcentration")


def breach(alert: str) -> Json:
    """When ``alert`` fired for the selected bots: 2 critical, 1 warning, 0 neither (Prometheus's
    own ALERTS series, so the timeline is the alerts' and cannot drift from their rules)."""
    firing = f'ALERTS{{alertname="{alert}", alertstate="firing", {BOT}'
    return prom(
        f'max({firing}, severity="critical"}}) * 2 or max({firing}, severity="warning"}}) '
        "or vector(0)",
        alert,
    )


def risk_metrics(alerts: Alerts | None = None) -> Dashboard:
    alerts = alerts or default_alerts()
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
                        [prom(f"max{current(f'risk_var_95_percent{{{BOT}}}')}", "VaR 95%")],
                        "One-day loss not exceeded with 95% confidence, as a share of the "
                        "portfolio (HighVaR: the limit approaching, then above the limit).",
                        unit="percentunit",
                        width=6,
                        thresholds=alerts.shade("HighVaR"),
                    ),
                    stat(
                        "VaR 99%",
                        [prom(f"max{current(f'risk_var_99_percent{{{BOT}}}')}", "VaR 99%")],
                        "One-day loss not exceeded with 99% confidence.",
                        unit="percentunit",
                        width=6,
                    ),
                    timeseries(
                        "Value at Risk",
                        [
                            prom(per_bot("risk_var_95_percent"), "95% {{job}} {{strategy}}"),
                            prom(per_bot("risk_var_99_percent"), "99% {{job}} {{strategy}}"),
                        ],
                        "VaR at 95% and 99% as a fraction of portfolio value; the lines are "
                        "HighVaR's thresholds (on the 95% VaR).",
                        unit="percentunit",
                        thresholds=alerts.shade("HighVaR"),
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
                                per_bot("risk_position_concentration", "strategy"),
                                "{{strategy}}",
                            )
                        ],
                        "The largest position's share of gross exposure, per strategy: 100% is "
                        "everything in one position, 50% two equal ones "
                        "(HighPositionConcentration).",
                        unit="percentunit",
                        maximum=1,
                        thresholds=alerts.shade("HighPositionConcentration"),
                    ),
                    timeseries(
                        "Position concentration",
                        [prom(per_bot("risk_position_concentration"), "{{job}} {{strategy}}")],
                        "The largest position's share of gross exposure over time.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                        thresholds=alerts.shade("HighPositionConcentration"),
                    ),
                    timeseries(
                        "Leverage",
                        [prom(per_bot("risk_leverage_ratio"), "{{job}} {{strategy}}")],
                        "Gross exposure over equity (HighLeverage).",
                        unit="x",
                        width=8,
                        thresholds=alerts.shade("HighLeverage"),
                    ),
                    timeseries(
                        "Diversification (Herfindahl index)",
                        [
                            prom(
                                per_bot("risk_position_herfindahl_index"),
                                "HHI {{job}} {{strategy}}",
                            )
                        ],
                        "The sum of the positions' squared shares of gross exposure: 1 is one "
                        "position, 1/n an even spread over n; 1/HHI is the effective number of "
                        "positions. No alert: concentration alerts on the largest share.",
                        width=24,
                        minimum=0,
                        maximum=1,
                    ),
                ],
            ),
            (
                "Correlation and liquidity",
                [
                    timeseries(
                        "Correlation risk",
                        [prom(per_bot("risk_correlation_score"), "{{job}} {{strategy}}")],
                        "How strongly the open positions move together (1 = all as one).",
                        minimum=0,
                        maximum=1,
                    ),
                    timeseries(
                        "Liquidity: open positions against order flow",
                        [
                            prom(
                                f"sum{current(f'trading_open_positions{{{BOT}}}')}",
                                "open positions",
                            ),
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
                        [breach(alert) for alert in RISK_ALERTS],
                        "When each risk alert fired in the time range, at which severity.",
                        mappings=BREACH_STATES,
                        thresholds=[(None, "green"), (1, "orange"), (2, "red")],
                    ),
                ],
            ),
        ],
    )


#: What an agent panel says without data: most bots have no agents (docs/instrumentation.md).
NO_AGENTS = (
    "No agents reported: this bot has no ML agents (freqtrade, FreqAI included, and a plain "
    "ccxt bot report no accuracy or reward)"
)
NO_MODELS = "No model predictions reported (freqtrade: only with FreqAI)"


def _saying(text: str, panels: list[Panel]) -> list[Panel]:
    """``panels`` saying ``text`` instead of showing blank when their queries find nothing."""
    for panel in panels:
        panel.no_value = text
    return panels


def agent_performance(alerts: Alerts | None = None) -> Dashboard:
    dashboard = _agent_performance(alerts)
    for title, panels in dashboard.rows:
        _saying(NO_MODELS if title == "Inference" else NO_AGENTS, panels)
    return dashboard


def _agent_performance(alerts: Alerts | None = None) -> Dashboard:
    alerts = alerts or default_alerts()
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
                                f"avg by (agent) {current(f'agent_prediction_accuracy{{{BOT}}}')}",
                                "{{agent}}",
                            )
                        ],
                        "Each agent's accuracy (LowModelAccuracy: red critical, orange low).",
                        unit="percentunit",
                        maximum=1,
                        thresholds=alerts.shade("LowModelAccuracy"),
                    ),
                    timeseries(
                        "Prediction accuracy",
                        [
                            prom(
                                per_bot("agent_prediction_accuracy", "job, agent, model"),
                                "{{job}} {{agent}}{{model}}",
                            )
                        ],
                        "Accuracy of each ML model over time.",
                        unit="percentunit",
                        width=8,
                        minimum=0,
                        maximum=1,
                        thresholds=alerts.shade("LowModelAccuracy"),
                    ),
                    timeseries(
                        "Ensemble consensus",
                        [prom(per_bot("ensemble_consensus_score", "job"), "{{job}}")],
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
                        [
                            prom(
                                per_bot("agent_cumulative_reward", "job, agent"),
                                "{{job}} {{agent}}",
                            )
                        ],
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


class Builder(Protocol):
    """A dashboard from the alert rules' thresholds (default: the rules' own)."""

    def __call__(self, alerts: Alerts | None = None) -> Dashboard: ...


DASHBOARDS: tuple[Builder, ...] = (
    trading_performance,
    system_health,
    risk_metrics,
    agent_performance,
)


def render(settings: StackSettings | None = None) -> dict[str, str]:
    """Each dashboard's file name and its JSON text, with the thresholds of the rules as
    ``settings`` render them (default: the rules' own, as committed in DASHBOARD_DIR)."""
    alerts = default_alerts() if settings is None else Alerts.of(settings)
    rendered = {}
    for build in DASHBOARDS:
        dashboard = build(alerts)
        rendered[dashboard.file_name] = json.dumps(dashboard.to_json(), indent=2) + "\n"
    return rendered


def stale(directory: Path = DASHBOARD_DIR, settings: StackSettings | None = None) -> list[str]:
    """File names whose JSON differs from what this module generates (or that are missing)."""
    found = {path.name for path in directory.glob("*.json")}
    rendered = render(settings)
    changed = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    return sorted(changed + sorted(found - rendered.keys()))


def write(directory: Path = DASHBOARD_DIR, settings: StackSettings | None = None) -> list[str]:
    """Write every dashboard, remove JSON files no dashboard generates; returns changed names."""
    changed = stale(directory, settings)
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render(settings)
    for name, text in rendered.items():
        (directory / name).write_text(text)
    for path in directory.glob("*.json"):
        if path.name not in rendered:
            path.unlink()
    return changed
