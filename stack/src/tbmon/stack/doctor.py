"""`tbmon doctor`: the seed's Troubleshooting list, run as checks, each failure with its fix.

Metrics not appearing (the collector receiving and exporting, Prometheus's targets), alerts not
firing (rules loaded, Alertmanager reachable, the Telegram token), dashboards empty (every
datasource reachable, through Grafana's own datasource health check where Grafana runs),
resources (disk space for data), and the Docker Compose that the Compose stack needs (v2). The
checks read the local stack's addresses (StackSettings), which are also the Compose stack's
published ports, and run concurrently, each with a timeout: a hanging backend makes its own
check fail, never the command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import yaml

from tbmon.settings import ENV_FILE, StackSettings
from tbmon.stack.operations import COMPOSE, OperationsSettings, json_body
from tbmon.stack.render import RULES_DIR
from tbmon.stack.resources import STACK_DATA

#: The collector's own telemetry, as Prometheus scrapes it (PROMETHEUS_CONFIG).
COLLECTOR_JOB = "otel-collector-internal"
#: Free space on the data's filesystem below which checks warn, then fail.
DISK_WARN_FRACTION, DISK_FAIL_FRACTION = 0.15, 0.05
DISK_FAIL_BYTES = 1 << 30
QUEUE_FULL_FRACTION = 0.8
#: The oldest Docker Compose that loads COMPOSE_FILE: `depends_on.required` came in 2.20; Compose
#: v1 (`docker-compose` 1.x) knows neither it nor the top-level `name`.
COMPOSE_MINIMUM = (2, 20)
#: The collector counts each signal separately.
KINDS = ("spans", "metric_points", "log_records")
#: The files a fix tells the user to edit, by their real path: the checkout's (an editable
#: install) or the installed package's, the ones the stack reads either way.
DATASOURCES_FILE = STACK_DATA / "grafana/provisioning/datasources/datasources.yaml"
PROMETHEUS_CONFIG = STACK_DATA / "prometheus/prometheus.yml"
COMPOSE_FILE = STACK_DATA / "docker-compose.monitoring.yml"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, how it went, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


class UnreachableError(Exception):
    """A backend that a check asks did not answer: the check cannot run."""

    def __init__(self, what: str, error: httpx.HTTPError) -> None:
        super().__init__(f"cannot check: {what} did not answer ({type(error).__name__})")
        self.fix = f"fix {what} first (its own row)"


def start_fix(local: str, compose: str) -> str:
    """How to start a component and read its log, on the local stack and in Compose."""
    return (
        f"start it and read its log: `tbmon stack up {local}`, `tbmon stack logs {local}` "
        f"(in Compose: `{COMPOSE} up -d {compose}`, `... logs {compose}`)"
    )


class Doctor:
    """The checks against one stack; :meth:`run` returns every finding, failing ones included."""

    def __init__(self, stack: StackSettings, operations: OperationsSettings) -> None:
        self.stack = stack
        self.operations = operations
        #: Shared by the checks (thread-safe); run() opens a fresh one and closes it.
        self.client = httpx.Client(timeout=operations.timeout)

    @property
    def prometheus(self) -> str:
        return self.stack.url(self.stack.prometheus_port)

    def run(self) -> list[Finding]:
        checks: list[Callable[[], list[Finding]]] = [
            self.prometheus_ready,
            self.prometheus_targets,
            self.alert_rules,
            self.collector_receiving,
            self.collector_exporting,
            self.alertmanager,
            self.telegram_token,
            self.datasources,
            self.health_service,
            self.disk_space,
            self.docker_compose,
        ]
        pool = ThreadPoolExecutor(max_workers=len(checks))
        with httpx.Client(timeout=self.operations.timeout) as self.client, pool:
            return [finding for found in pool.map(_guarded, checks) for finding in found]

    # -- metrics not appearing --------------------------------------------------------------

    def prometheus_ready(self) -> list[Finding]:
        try:
            response = self.client.get(f"{self.prometheus}/-/ready")
        except httpx.HTTPError as error:
            detail = f"{self.prometheus} unreachable: {error}"
            fix = start_fix("prometheus", "prometheus")
            return [Finding("Prometheus", Status.FAIL, detail, fix)]
        if response.is_success:
            return [Finding("Prometheus", Status.OK, f"ready at {self.prometheus}")]
        return [
            Finding(
                "Prometheus",
                Status.FAIL,
                f"{self.prometheus}/-/ready answered {response.status_code}",
                "it is starting or replaying its write-ahead log; wait, then read its log: "
                f"`tbmon stack logs prometheus` or `{COMPOSE} logs prometheus`",
            )
        ]

    def prometheus_targets(self) -> list[Finding]:
        targets = self._prometheus_api("/api/v1/targets")["activeTargets"]
        down = [t for t in targets if t["health"] != "up"]
        if not targets:
            return [
                Finding(
                    "Prometheus targets",
                    Status.FAIL,
                    "no scrape targets",
                    f"check scrape_configs in {PROMETHEUS_CONFIG}",
                )
            ]
        if not down:
            return [Finding("Prometheus targets", Status.OK, f"all {len(targets)} targets up")]
        return [
            Finding(
                "Prometheus targets",
                # "unknown": not scraped yet, as right after Prometheus starts.
                Status.WARN if t["health"] == "unknown" else Status.FAIL,
                f"{t['labels'].get('job')} ({t['scrapeUrl']}) is {t['health']}: "
                f"{t.get('lastError') or 'not scraped yet'}",
                f"start that service (`tbmon stack status`, `{COMPOSE} ps`) or fix its address in "
                f"{PROMETHEUS_CONFIG}; all targets: {self.prometheus}/targets",
            )
            for t in down
        ]

    def collector_receiving(self) -> list[Finding]:
        up = self._query(f'up{{job="{COLLECTOR_JOB}"}}')
        if not up or float(up[0]["value"][1]) != 1:
            return [
                Finding(
                    "Collector receiving",
                    Status.FAIL,
                    "Prometheus cannot scrape the collector's own telemetry (:8888)",
                    start_fix("collector", "otel-collector"),
                )
            ]
        accepted = sum(float(item["value"][1]) for item in self._query(received_query()))
        if accepted <= 0:
            return [
                Finding(
                    "Collector receiving",
                    Status.WARN,
                    "no span, metric point or log record from a bot in the last 5 minutes",
                    "run the bot under `opentelemetry-instrument` with OTEL_EXPORTER_OTLP_ENDPOINT "
                    f"pointing at the collector (port {self.stack.otlp_grpc_port} for gRPC)",
                )
            ]
        return [Finding("Collector receiving", Status.OK, f"{accepted:.0f} items in 5 minutes")]

    def collector_exporting(self) -> list[Finding]:
        failed = [
            item for item in self._query(lost_query()) if item["metric"].get("job") == COLLECTOR_JOB
        ]
        full = self._query(
            f'max by (exporter) (otelcol_exporter_queue_size{{job="{COLLECTOR_JOB}"}}'
            f' / otelcol_exporter_queue_capacity{{job="{COLLECTOR_JOB}"}}) > {QUEUE_FULL_FRACTION}'
        )
        exporter = self._query('up{job="otel-collector"}')
        findings = [_lost(item["metric"], float(item["value"][1])) for item in failed]
        findings += [
            Finding(
                "Collector exporting",
                Status.FAIL,
                f"{item['metric']['exporter']}'s sending queue is "
                f"{float(item['value'][1]):.0%} full",
                "bring its backend back before the queue fills and new data is dropped; raise "
                "TBMON_COLLECTOR_QUEUE_SIZE if outages are long",
            )
            for item in full
        ]
        if not exporter or float(exporter[0]["value"][1]) != 1:
            findings.append(
                Finding(
                    "Collector exporting",
                    Status.FAIL,
                    "Prometheus cannot scrape the bots' metrics from the collector (:8000)",
                    start_fix("collector", "otel-collector"),
                )
            )
        return findings or [
            Finding("Collector exporting", Status.OK, "no send failures in 5 minutes, queues low")
        ]

    # -- alerts not firing ------------------------------------------------------------------

    def alert_rules(self) -> list[Finding]:
        groups = self._prometheus_api("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        broken = [rule for rule in rules if rule.get("health", "ok") != "ok"]
        if not rules:
            return [
                Finding(
                    "Alert rules",
                    Status.FAIL,
                    "no rules loaded",
                    f"put the rules in {RULES_DIR}/*.yml, check them with "
                    f"`promtool check rules {RULES_DIR}/*.yml`, then restart Prometheus",
                )
            ]
        if broken:
            return [
                Finding(
                    "Alert rules",
                    Status.FAIL,
                    f"{rule['name']}: {rule.get('lastError', rule['health'])}",
                    "fix its expression; `promtool check rules` and "
                    f"{self.prometheus}/rules show the error",
                )
                for rule in broken
            ]
        return [Finding("Alert rules", Status.OK, f"{len(rules)} rules in {len(groups)} groups")]

    def alertmanager(self) -> list[Finding]:
        url = self.stack.url(self.stack.alertmanager_port)
        fix = start_fix("alertmanager", "alertmanager")
        try:
            ready = self.client.get(f"{url}/-/ready").is_success
        except httpx.HTTPError as error:
            return [Finding("Alertmanager", Status.FAIL, f"{url} unreachable: {error}", fix)]
        if not ready:
            return [Finding("Alertmanager", Status.FAIL, f"{url} is not ready", fix)]
        active = self._prometheus_api("/api/v1/alertmanagers")["activeAlertmanagers"]
        if not active:
            return [
                Finding(
                    "Alertmanager",
                    Status.FAIL,
                    "Prometheus sends alerts to no Alertmanager",
                    f"check `alerting:` in {PROMETHEUS_CONFIG}",
                )
            ]
        return [Finding("Alertmanager", Status.OK, f"ready at {url}; Prometheus sends to it")]

    def telegram_token(self) -> list[Finding]:
        token = self.operations.telegram_bot_token
        if token is None or not token.get_secret_value():
            return [
                Finding(
                    "Telegram bot token",
                    Status.WARN,
                    "TELEGRAM_BOT_TOKEN is not set: alerts cannot reach Telegram",
                    "create a bot with @BotFather and set TELEGRAM_BOT_TOKEN in the environment "
                    f"or tbmon's .env ({ENV_FILE}, else the working directory's; Compose: "
                    f"{COMPOSE_FILE.with_name('.env')})",
                )
            ]
        base = self.operations.telegram_api_url.rstrip("/")
        try:
            response = self.client.get(f"{base}/bot{token.get_secret_value()}/getMe")
        except httpx.HTTPError as error:
            # The message of an httpx error holds the URL, and the URL holds the token.
            return [
                Finding(
                    "Telegram bot token",
                    Status.FAIL,
                    f"{base} unreachable ({type(error).__name__})",
                    "check this machine's internet access and TELEGRAM_API_URL",
                )
            ]
        body = json_body(response)
        if response.is_success and body.get("ok"):
            return [
                Finding("Telegram bot token", Status.OK, f"valid: @{body['result']['username']}")
            ]
        return [
            Finding(
                "Telegram bot token",
                Status.FAIL,
                f"getMe refused it ({response.status_code}: {body.get('description', '')})",
                "the token is wrong or revoked: get a new one from @BotFather (/token) and set "
                "TELEGRAM_BOT_TOKEN",
            )
        ]

    # -- dashboards empty -------------------------------------------------------------------

    def datasources(self) -> list[Finding]:
        """Through Grafana's datasource health API where Grafana runs, else each backend."""
        grafana = self.operations.grafana_url.rstrip("/")
        try:
            grafana_up = self.client.get(f"{grafana}/api/health").is_success
        except httpx.HTTPError:
            grafana_up = False
        auth = self.operations.grafana_auth()
        if grafana_up and auth is not None:
            return [self._grafana_datasource(grafana, auth, uid) for uid in _provisioned_uids()]
        note = (
            f"Grafana not reachable at {grafana}"
            if not grafana_up
            else "GRAFANA_ADMIN_PASSWORD not set"
        )
        s = self.stack
        direct = [
            (
                "Prometheus",
                s.url(s.prometheus_port, "/api/v1/status/buildinfo"),
                "prometheus",
                "prometheus",
            ),
            ("log store", s.url(s.victorialogs_port, "/health"), "logs", "loki"),
            ("Jaeger", s.url(s.jaeger_query_port, "/api/services"), "jaeger", "jaeger"),
            (
                "Alertmanager",
                s.url(s.alertmanager_port, "/api/v2/status"),
                "alertmanager",
                "alertmanager",
            ),
        ]
        return [self._direct_datasource(note, *source) for source in direct]

    def _grafana_datasource(self, grafana: str, auth: tuple[str, str], uid: str) -> Finding:
        response = self.client.get(f"{grafana}/api/datasources/uid/{uid}/health", auth=auth)
        body = json_body(response)
        message = body.get("message", response.reason_phrase)
        if response.is_success and body.get("status") == "OK":
            return Finding(f"Datasource {uid}", Status.OK, f"Grafana: {message}")
        return Finding(
            f"Datasource {uid}",
            Status.FAIL,
            f"Grafana: {message} ({response.status_code})",
            f"`{COMPOSE} ps` shows whether its service runs; the datasource is provisioned from "
            f"{DATASOURCES_FILE}",
        )

    def _direct_datasource(
        self, note: str, name: str, url: str, local: str, compose: str
    ) -> Finding:
        check = f"Datasource {name}"
        fix = start_fix(local, compose)
        try:
            response = self.client.get(url)
        except httpx.HTTPError as error:
            return Finding(check, Status.FAIL, f"{url}: {error} ({note})", fix)
        if response.is_success:
            return Finding(check, Status.OK, f"{url} answers ({note}; checked directly)")
        return Finding(check, Status.FAIL, f"{url} answered {response.status_code}", fix)

    def health_service(self) -> list[Finding]:
        base = (self.operations.health_url or self.stack.url(self.stack.health_port)).rstrip("/")
        url = f"{base}/health"
        try:
            response = self.client.get(url)
        except httpx.HTTPError:
            return [
                Finding(
                    "Health service",
                    Status.WARN,
                    f"not reachable at {url}",
                    f"start it: `tbmon health serve` or `{COMPOSE} up -d health` (HEALTH_URL "
                    "says where it runs)",
                )
            ]
        status = json_body(response).get("status", "unknown")
        if response.is_success:
            level = Status.OK if status == "healthy" else Status.WARN
            return [Finding("Health service", level, f"{status} ({url})")]
        return [
            Finding(
                "Health service",
                Status.FAIL,
                f"{status} ({response.status_code})",
                f"see which component fails: {base}/health/detailed",
            )
        ]

    # -- resources --------------------------------------------------------------------------

    def disk_space(self) -> list[Finding]:
        folder = _existing(self.stack.data_dir)
        usage = shutil.disk_usage(folder)
        free = usage.free / usage.total
        detail = f"{usage.free / 2**30:.1f} GiB free ({free:.0%}) on the filesystem of {folder}"
        fix = (
            "free space, or lower TBMON_PROMETHEUS_RETENTION_SIZE / _TIME and TBMON_LOG_RETENTION "
            "(in Compose: `docker system df -v` shows the volumes)"
        )
        if free < DISK_FAIL_FRACTION or usage.free < DISK_FAIL_BYTES:
            return [Finding("Disk space for data", Status.FAIL, detail, fix)]
        if free < DISK_WARN_FRACTION:
            return [Finding("Disk space for data", Status.WARN, detail, fix)]
        return [Finding("Disk space for data", Status.OK, detail)]

    def docker_compose(self) -> list[Finding]:
        """Which Docker Compose runs the Compose stack: v2 (`docker compose`) or the seed's v1
        `docker-compose`, which cannot load the file."""
        check = "Docker Compose"
        plugin = _version(["docker", "compose", "version", "--short"])
        standalone = _version(["docker-compose", "version", "--short"])
        upgrade = (
            "install Docker Compose v2 (the `docker compose` plugin, 2.20 or later) and run "
            f"`{COMPOSE} up -d`; the seed's `docker-compose -f ...` is Compose v1"
        )
        found = [
            (v, command)
            for v, command in ((plugin, "docker compose"), (standalone, "docker-compose"))
            if v
        ]
        if not found:
            detail = "not installed: the local stack (`tbmon stack up`) needs none"
            return [Finding(check, Status.OK, detail)]
        version, command = max(found)
        shown = ".".join(map(str, version))
        if version >= COMPOSE_MINIMUM:
            return [Finding(check, Status.OK, f"`{command}` is v{shown}")]
        reason = (
            f"Compose v1 rejects {COMPOSE_FILE} (its top-level `name` and `depends_on.required`)"
            if version < (2,)
            else "older than 2.20, it rejects `depends_on.required`"
        )
        return [Finding(check, Status.FAIL, f"`{command}` is v{shown}: {reason}", upgrade)]

    # -- helpers ----------------------------------------------------------------------------

    def _prometheus_api(self, path: str, **params: str) -> Any:
        try:
            response = self.client.get(f"{self.prometheus}{path}", params=params)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise UnreachableError("Prometheus", error) from error
        return response.json()["data"]

    def _query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._prometheus_api("/api/v1/query", query=expr)["result"]
        return result


def received_query() -> str:
    """PromQL: the items (spans, metric points, log records) the collector's OTLP receiver
    accepted in the last 5 minutes, by signal.

    The same first-loss form as the recording rules in prometheus/rules/pipeline.yml: a series
    born in the window (the collector's first items of a kind, or a restarted collector) counts
    at its full value, since ``increase`` needs two samples; an older one by its increase. Born
    means: its target was scraped successfully (``up``) more often than the series has samples,
    so a scrape gap or a Prometheus restart (both counts short alike) does not make a counter
    that stood still look new (``x unless x offset 5m`` did)."""
    terms = []
    for kind in KINDS:
        series = f'{{__name__=~"otelcol_receiver_accepted_{kind}(_total)?", job="{COLLECTOR_JOB}"}}'
        born = (
            f"({series} and (count_over_time({series}[5m])"
            " < on (job, instance) group_left sum_over_time(up[5m]))) * 1"
        )
        terms.append(
            f'label_replace(sum(({born}) or increase({series}[5m])), "data_type", "{kind}", "", "")'
        )
    return " or ".join(terms)


#: The recording rule that counts the items each exporter lost in the last 5 minutes, by stage
#: (``send``: given up after its retries; ``enqueue``: refused by a full sending queue).
LOST_RULE = "otelcol_exporter_failed:increase5m"


def lost_query() -> str:
    """PromQL: the items each collector exporter lost in the last 5 minutes, its first loss
    included, > 0. The recording rule's own expression, read from the rule file Prometheus
    loads, so the doctor and the CollectorExportFailing alert count alike, and the check works
    where the rules are not loaded (which the Alert rules check reports)."""
    document = yaml.safe_load((RULES_DIR / "pipeline.yml").read_text())
    (expr,) = (
        rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
        if rule.get("record") == LOST_RULE
    )
    return f"sum by (job, exporter, stage) ({expr.strip()}) > 0"


def _lost(labels: dict[str, str], items: float) -> Finding:
    exporter = labels.get("exporter", "an exporter")
    if labels.get("stage") == "enqueue":
        detail = f"{exporter} dropped {items:.0f} items in 5 minutes: its sending queue was full"
        fix = (
            "its backend is too slow or down: bring it back (`tbmon stack status`, "
            f"`{COMPOSE} ps`); raise TBMON_COLLECTOR_QUEUE_SIZE if outages are long"
        )
    else:
        # Retries never end (max_elapsed_time 0): only a permanent error is given up.
        detail = (
            f"{exporter} gave up on {items:.0f} items in 5 minutes: its backend refused them "
            "with a permanent error"
        )
        fix = (
            "the collector's log names the reason (`tbmon stack logs collector`, "
            f"`{COMPOSE} logs otel-collector`)"
        )
    return Finding("Collector exporting", Status.FAIL, detail, fix)


def _version(command: list[str]) -> tuple[int, ...] | None:
    """The version a CLI prints (`2.29.1`, `v2.29.1-desktop.1`, `1.29.2`); None if it is not
    installed or says none."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout) if done.returncode == 0 else None
    return tuple(int(part) for part in match.groups(default="0")) if match else None


def _guarded(check: Callable[[], list[Finding]]) -> list[Finding]:
    """A check that raised is that check failing, with what went wrong; the report goes on."""
    name = check.__name__.replace("_", " ").capitalize()
    try:
        return check()
    except UnreachableError as error:
        return [Finding(name, Status.FAIL, str(error), error.fix)]
    except httpx.HTTPError as error:
        return [Finding(name, Status.FAIL, f"{type(error).__name__}: {error}")]
    except (KeyError, ValueError) as error:
        return [Finding(name, Status.FAIL, f"unexpected answer: {error!r}")]


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _provisioned_uids() -> list[str]:
    document = yaml.safe_load(DATASOURCES_FILE.read_text())
    return [source["uid"] for source in document["datasources"]]
