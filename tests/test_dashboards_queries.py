"""Every PromQL expression of the dashboards, the datasources and the alert rules, run against
the real local Prometheus after the demo bot traded, returns data; and Explore's correlation
path (exemplar -> trace -> logs) holds on the real backends, with the provisioned field names."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sized
from typing import Any

import httpx
import pytest
import yaml
from support import Backends, dashboard_queries, demo_bot, wait_until

from tbmon.stack import dashboards
from tbmon.stack.resources import STACK_DATA

pytestmark = pytest.mark.stack

BOT = "tbmon-demo-dashboards"
DATASOURCES = {
    source["uid"]: source
    for source in yaml.safe_load(
        (STACK_DATA / "grafana/provisioning/datasources/datasources.yaml").read_text()
    )["datasources"]
}
#: cAdvisor's series, which only the Compose stack has (their rules have promtool unit tests).
COMPOSE_ONLY = re.compile(r"\bcontainer_\w+")
#: Prometheus's own series of firing alerts: it exists once an alert has fired.
GENERATED = {"ALERTS"}


@pytest.fixture(scope="module")
def traded(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo bot (``tbmon demo`` under opentelemetry-instrument), trading while the module's
    tests run; yields its service name."""
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with demo_bot(backends.settings, BOT, log):
        wait_until(  # the last derived metric to come: a 99 % VaR needs 250 one-second days
            lambda: backends.prometheus(f'risk_var_99_percent{{job="{BOT}"}}'),
            f"the demo bot's derived metrics in Prometheus (its output: {log})",
            timeout=330,
        )
        yield BOT


def _with_bool(expr: str) -> str:
    """An alert condition made to return every series it compares (``a > 1`` -> ``a > bool 1``),
    so a rule that is not firing still shows that its metrics exist."""
    out, depth, quote, index = [], 0, "", 0
    while index < len(expr):
        char = expr[index]
        if quote:
            quote = "" if char == quote and expr[index - 1] != "\\" else quote
        elif char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0:
            match = re.match(r"(==|!=|>=|<=|>|<)(\s*bool\b)?\s*", expr[index:])
            if match:
                out.append(match.group(0) if match.group(2) else f"{match.group(1)} bool ")
                index += match.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _datasource_queries() -> list[tuple[str, str]]:
    tags = DATASOURCES["jaeger"]["jsonData"]["tracesToMetrics"]
    matcher = ", ".join(f'{tag["value"]}="{BOT}"' for tag in tags["tags"])
    return [
        (f"trace to metrics / {query['name']}", query["query"].replace("$$__tags", matcher))
        for query in tags["queries"]
    ]


def _rule_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted((STACK_DATA / "prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                found.append((f"{path.name} / {name}", _with_bool(str(rule["expr"]))))
    return found


def test_with_bool_keeps_label_matchers_and_strings() -> None:
    assert _with_bool('a{b!="c>d"} > 0.25') == 'a{b!="c>d"} > bool 0.25'
    assert _with_bool("time() - x > bool 60 and y<=1") == "time() - x > bool 60 and y<= bool 1"


def test_every_promql_expression_returns_data(traded: str, backends: Backends) -> None:
    queries = dashboard_queries() + _datasource_queries() + _rule_queries()
    assert len(queries) > 60
    queries = [(where, expr) for where, expr in queries if not COMPOSE_ONLY.search(expr)]

    def problem(expr: str) -> str | None:
        try:
            return None if backends.prometheus(expr) else "no data"
        except httpx.HTTPStatusError as error:  # Prometheus refused the query: say why
            return str(error.response.json().get("error", error))

    def empty() -> list[str]:
        found = ((where, expr, problem(expr)) for where, expr in queries)
        return [f"{where}: {why}: {expr}" for where, expr, why in found if why]

    assert _settled(empty) == []


def _settled(problems: Callable[[], Sized]) -> Sized:
    """``problems()`` once it is empty, or as it stands after 30 s: rates need two scrapes of a
    series, so late series get a few scrape intervals."""
    found = problems()
    deadline = time.monotonic() + 30
    while found and time.monotonic() < deadline:
        time.sleep(2)
        found = problems()
    return found


#: A metric selector with label matchers: its name, outside any braces or quotes.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def _metric_names(expr: str) -> set[str]:
    """The metric names an expression selects with matchers (``name{...}``)."""
    return {match.group(1) for match in _SELECTOR.finditer(re.sub(r'"[^"]*"', '""', expr))}


def test_metric_names_are_read_from_selectors_only() -> None:
    assert _metric_names('sum(rate(a_total{x="b{c}"}[5m])) / b{y="1"} or vector(0)') == {
        "a_total",
        "b",
    }


#: Collector failure counters, which the collector creates at its first failure: one is known when
#: its success counterpart is (``..._send_failed_spans`` when ``otelcol_exporter_sent_spans``).
_FIRST_FAILURE = re.compile(r"^otelcol_exporter_(send|enqueue)_failed_(?P<kind>\w+)$")


def test_every_metric_a_query_names_exists(traded: str, backends: Backends) -> None:
    """``or vector(0)`` makes a panel return data even when its metric is misspelt: the names
    themselves must be ones Prometheus holds."""
    queries = dashboard_queries() + _datasource_queries() + _rule_queries()
    names = {name for _, expr in queries for name in _metric_names(expr)}
    assert len(names) > 30
    names = {name for name in names if not COMPOSE_ONLY.match(name)} - GENERATED

    def unknown() -> set[str]:
        response = httpx.get(
            backends.settings.url(
                backends.settings.prometheus_port, "/api/v1/label/__name__/values"
            ),
            timeout=10,
        )
        response.raise_for_status()
        known = set(response.json()["data"])
        missing = set()
        for name in names - known:
            failure = _FIRST_FAILURE.match(name)
            if failure is None or f"otelcol_exporter_sent_{failure['kind']}" not in known:
                missing.add(name)
        return missing

    assert _settled(unknown) == set()


def test_the_bot_variable_lists_the_bot(traded: str, backends: Backends) -> None:
    query = dashboards.trading_performance().to_json()["templating"]["list"][0]["query"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", query).groups()  # type: ignore[union-attr]
    response = httpx.get(
        backends.settings.url(backends.settings.prometheus_port, f"/api/v1/label/{label}/values"),
        params={"match[]": metric},
        timeout=10,
    )
    assert BOT in response.json()["data"]


def _exemplars(backends: Backends, name: str) -> list[dict[str, Any]]:
    now = time.time()
    response = httpx.get(
        backends.settings.url(backends.settings.prometheus_port, "/api/v1/query_exemplars"),
        params={
            "query": f'api_request_duration_seconds_bucket{{job="{BOT}", endpoint="create_order"}}',
            "start": now - 600,
            "end": now,
        },
        timeout=10,
    )
    response.raise_for_status()
    return [
        exemplar
        for series in response.json()["data"]
        for exemplar in series["exemplars"]
        if name in exemplar["labels"]
    ]


def test_a_slow_orders_exemplar_leads_to_its_trace_and_the_trace_to_its_logs(
    traded: str, backends: Backends
) -> None:
    # Grafana reads the exemplar label that the Prometheus datasource names...
    label = DATASOURCES["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["name"]
    exemplars = wait_until(lambda: _exemplars(backends, label), "exemplars with trace ids")
    slowest = max(exemplars, key=lambda exemplar: float(exemplar["value"]))
    trace_id = slowest["labels"][label]
    # ...opens that trace in Jaeger: an order's...
    spans = wait_until(lambda: backends.jaeger_trace(trace_id), f"trace {trace_id} in Jaeger")
    assert {"signal", "risk_check", "create_order"} <= {span["operationName"] for span in spans}
    # ...and from the trace, the logs carrying its id (the field the Loki queries filter on).
    logs = DATASOURCES["jaeger"]["jsonData"]["tracesToLogsV2"]
    field = re.search(r"\| (\w+)=\"\$\$\{__trace\.traceId\}\"", logs["query"]).group(1)  # type: ignore[union-attr]
    assert field == DATASOURCES["loki"]["jsonData"]["derivedFields"][0]["matcherRegex"]
    records = wait_until(
        lambda: backends.logs(f'{field}:="{trace_id}"'), f"the logs of trace {trace_id}"
    )
    assert {record["service.name"] for record in records} == {BOT}
    assert json.dumps(records).count(trace_id) >= 1
