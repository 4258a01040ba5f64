"""Turn the Compose stack's Prometheus and Alertmanager configs into the local stack's.

Prometheus 2.42 and Alertmanager 0.25 do not expand environment variables, so one file cannot
serve both deployments the way the collector's config does. The files under ``stack/`` are
written for Compose (service names, container paths); here the local stack rewrites them:
every ``service:port`` of a Compose service becomes ``<bind host>:<local port>``, every
container mount path becomes the checkout's folder, and scrape targets that only exist in
Compose (cAdvisor, say) are left out.

Alertmanager's config is rendered for both deployments (``tbmon stack render alertmanager``):
the routes' timings come from the TBMON_ALERT_* settings, the bridge's bearer token and the SMTP
password go to files it reads (never into the config), and the email receiver exists only when
SMTP_HOST is set.

The alert rules are rendered for both deployments too (``tbmon stack render rules``): the files
in ``tbmon/stack/prometheus/rules/`` hold the seed's thresholds as defaults, and each rule named in
:data:`RULE_THRESHOLDS` gets the operator's TBMON_THRESHOLD_* value instead, in the comparison
of its ``expr`` and in the ``{{ $threshold := ... }}`` its annotations show. A strategy given
its own value in TBMON_THRESHOLD_BY_STRATEGY gets a copy of the rule limited to that strategy
(``and on (strategy) ...``), and the deployment's rule leaves it out (``unless on (strategy)``);
a strategy whose value is null has the alert off. Rendering the defaults reproduces the source
files rule for rule (a test checks), so the source's promtool tests test what runs.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field, SecretStr, model_validator

from tbmon.settings import InvalidSettingsError, StackSettings, TbmonSettings, read_settings
from tbmon.stack.resources import STACK_DATA

if TYPE_CHECKING:
    from tbmon.stack.components import Layout

#: Compose ``service:port`` -> the StackSettings port field serving it in the local stack.
COMPOSE_ADDRESSES: dict[str, str] = {
    "otel-collector:8000": "metrics_port",
    "otel-collector:8888": "collector_telemetry_port",
    "otel-collector:13133": "collector_health_port",
    "prometheus:9090": "prometheus_port",
    "alertmanager:9093": "alertmanager_port",
    "node-exporter:9100": "node_exporter_port",
    "jaeger:14269": "jaeger_telemetry_port",
    "jaeger:16686": "jaeger_query_port",
    "loki:3100": "victorialogs_port",
    "health:8080": "health_port",
    "processors:8091": "processors_http_port",
    "alert-bridge:8090": "bridge_port",
}

#: Container paths of the Compose file's config mounts -> folders of the checkout.
COMPOSE_MOUNTS: dict[str, Path] = {
    "/etc/prometheus/": STACK_DATA / "prometheus",
    "/etc/alertmanager/": STACK_DATA / "alertmanager",
}

_ADDRESS = re.compile(r"\b([a-z][a-z0-9-]*):(\d{2,5})\b")


def localize(value: Any, settings: StackSettings) -> Any:
    """Rewrite every Compose address and mount path inside a parsed YAML document."""
    if isinstance(value, dict):
        return {key: localize(item, settings) for key, item in value.items()}
    if isinstance(value, list):
        return [localize(item, settings) for item in value]
    if not isinstance(value, str):
        return value

    def address(match: re.Match[str]) -> str:
        port_field = COMPOSE_ADDRESSES.get(match.group(0))
        if port_field is None:
            return match.group(0)
        return f"{settings.bind_host}:{getattr(settings, port_field)}"

    text = _ADDRESS.sub(address, value)
    for container_path, folder in COMPOSE_MOUNTS.items():
        if text.startswith(container_path):
            text = str(folder) + "/" + text[len(container_path) :]
    return text


def prometheus_document(settings: StackSettings, rules_dir: Path | None = None) -> dict[str, Any]:
    """The local Prometheus config, as a document; it reads the rules rendered into
    ``rules_dir`` (default: the source files, as they are)."""
    source = yaml.safe_load((STACK_DATA / "prometheus" / "prometheus.yml").read_text())
    jobs = []
    for job in source.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            static["targets"] = [t for t in static["targets"] if t in COMPOSE_ADDRESSES]
        job["static_configs"] = [s for s in job.get("static_configs", []) if s["targets"]]
        if job["static_configs"]:
            jobs.append(job)
    source["scrape_configs"] = jobs
    document: dict[str, Any] = localize(source, settings)
    if rules_dir is not None:
        document["rule_files"] = [str(rules_dir / "*.yml")]
    return document


def prometheus_config(layout: Layout) -> None:
    """The local Prometheus's config, and its rules rendered with this stack's thresholds."""
    rules_dir = layout.data / "rules"
    render_rules(layout.settings, rules_dir)
    _write(layout, "prometheus.yml", prometheus_document(layout.settings, rules_dir))


def alertmanager_config(layout: Layout) -> None:
    render_alertmanager(layout.settings, layout.data / "alertmanager.yml", compose=False)


# -- Alertmanager: timings, the bridge's token, the optional email receiver -------------------

#: Alertmanager reads the bridge's bearer token from this file (``credentials_file``).
BRIDGE_TOKEN_FILE = "alert-bridge-token"  # noqa: S105 - a file name
SMTP_PASSWORD_FILE = "smtp-password"  # noqa: S105 - a file name


class EmailSettings(TbmonSettings):
    """The seed's SMTP_* variables; with SMTP_HOST set, critical alerts are also emailed."""

    host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    user: str | None = Field(default=None, validation_alias="SMTP_USER")
    password: SecretStr | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    sender: str | None = Field(default=None, validation_alias="SMTP_FROM")
    to: str | None = Field(
        default=None,
        validation_alias="TBMON_ALERT_EMAIL_TO",
        description="Who receives alert emails (default: SMTP_FROM).",
    )

    @model_validator(mode="after")
    def _complete(self) -> EmailSettings:
        if self.host is None:
            return self
        if not re.fullmatch(r"[^\s:]+:\d{1,5}", self.host):
            raise ValueError(f"SMTP_HOST={self.host!r} must be host:port (smtp.gmail.com:587)")
        if not self.sender:
            raise ValueError("SMTP_HOST is set but SMTP_FROM is not: set the sender address")
        return self


class RenderError(ValueError):
    """A config cannot be rendered from these settings; the message names the variable."""


def email_settings() -> EmailSettings:
    try:
        return read_settings(EmailSettings)
    except InvalidSettingsError as error:
        raise RenderError(str(error)) from None


def bridge_token_file(settings: StackSettings) -> Path:
    """Where the local stack keeps the bridge's bearer token."""
    return settings.data_dir / "secrets" / BRIDGE_TOKEN_FILE


def bridge_token(layout: Layout) -> None:
    """Prepare the bridge: make sure its token file exists."""
    write_bridge_token(bridge_token_file(layout.settings))


def write_bridge_token(path: Path) -> None:
    """ALERT_BRIDGE_TOKEN into ``path`` (mode 0600), or a random token kept across restarts."""
    token = os.environ.get("ALERT_BRIDGE_TOKEN") or None
    if token is None and path.is_file() and path.read_text().strip():
        return
    _write_secret(path, token or secrets.token_urlsafe(32))


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    path.chmod(0o600)


def alertmanager_document(
    settings: StackSettings, secrets_dir: Path, email: EmailSettings | None = None
) -> dict[str, Any]:
    """Alertmanager's config with this stack's timings, token file and (optional) email.

    The addresses stay Compose's; :func:`render_alertmanager` localizes them for the local
    stack. ``secrets_dir`` is where Alertmanager finds the token and SMTP password files.
    """
    email = email or email_settings()
    document: dict[str, Any] = yaml.safe_load(
        (STACK_DATA / "alertmanager" / "alertmanager.yml").read_text()
    )
    route = document["route"]
    for child in route["routes"]:
        severity = _severity_of(child)
        for timing in ("group_wait", "group_interval", "repeat_interval"):
            child[timing] = getattr(settings, f"alert_{severity}_{timing}")
    for receiver in document["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            authorization = webhook["http_config"]["authorization"]
            authorization["credentials_file"] = str(secrets_dir / BRIDGE_TOKEN_FILE)
    if email.host is not None:
        critical = next(child for child in route["routes"] if _severity_of(child) == "critical")
        route["routes"].insert(0, {**critical, "receiver": "email", "continue": True})
        config: dict[str, Any] = {
            "to": email.to or email.sender,
            "from": email.sender,
            "smarthost": email.host,
            "send_resolved": True,
        }
        if email.user:
            config["auth_username"] = email.user
        if email.password is not None:
            config["auth_password_file"] = str(secrets_dir / SMTP_PASSWORD_FILE)
        document["receivers"].append({"name": "email", "email_configs": [config]})
    return document


def _severity_of(route: dict[str, Any]) -> str:
    for matcher in route.get("matchers", []):
        match = re.fullmatch(r'severity\s*=\s*"?(critical|warning)"?', matcher)
        if match:
            return match.group(1)
    raise ValueError(
        f"{STACK_DATA / 'alertmanager' / 'alertmanager.yml'}: a route without a severity: {route}"
    )


def render_alertmanager(settings: StackSettings, out: Path, *, compose: bool) -> Path:
    """Write Alertmanager's config to ``out``, and the secret files it reads.

    Locally the secrets live in ``<data>/secrets``; for Compose they are written next to
    ``out``, which Alertmanager must see at the same path.
    """
    secrets_dir = out.parent if compose else bridge_token_file(settings).parent
    email = email_settings()
    document = alertmanager_document(settings, secrets_dir, email)
    write_bridge_token(secrets_dir / BRIDGE_TOKEN_FILE)
    if email.host is not None and email.password is not None:
        _write_secret(secrets_dir / SMTP_PASSWORD_FILE, email.password.get_secret_value())
    if not compose:
        document = localize(document, settings)
    where = "Docker Compose" if compose else "the local stack"
    _write_file(out, document, where)
    return out


def _write(layout: Layout, name: str, document: dict[str, Any]) -> None:
    _write_file(layout.data / name, document, "the local stack")


def _write_file(path: Path, document: dict[str, Any], where: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Rendered by tbmon from stack/ for {where}; edit the source, not this.\n"
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))


# -- alert rules: the operator's thresholds ----------------------------------------------------

#: Where the rules' source lives (mounted as /etc/prometheus/rules in Compose, through the
#: renderer).
RULES_DIR = STACK_DATA / "prometheus" / "rules"

#: (alert, severity) -> the threshold (``StackSettings.threshold_<name>``) its rule compares with.
RULE_THRESHOLDS: dict[tuple[str, str], str] = {
    ("HighDrawdown", "warning"): "drawdown_warning",
    ("HighDrawdown", "critical"): "drawdown_critical",
    ("HighVaR", "warning"): "var_warning",
    ("HighVaR", "critical"): "var_critical",
    ("HighLeverage", "warning"): "leverage_warning",
    ("HighPositionConcentration", "warning"): "concentration_warning",
    ("TradingExecutionFailures", "critical"): "execution_failures_critical",
    ("SlowAPIResponses", "warning"): "api_latency_warning_seconds",
    ("LowModelAccuracy", "warning"): "accuracy_warning",
    ("LowModelAccuracy", "critical"): "accuracy_critical",
    ("HighCPUUsage", "warning"): "cpu_warning_percent",
    ("HighMemoryUsage", "warning"): "memory_warning_percent",
    ("HighDiskUsage", "warning"): "disk_warning_percent",
}

#: A comparison with a number in PromQL (``> 0.25``, ``>= 3``), not part of ``==``/``!=``.
_COMPARISON = re.compile(
    r"(?<![<>=!])(?P<op>[<>]=?)\s*(?:bool\s+)?(?P<number>\d+(?:\.\d+)?)(?![\d.])"
)
#: The variable an annotation shows the threshold with.
_THRESHOLD_VARIABLE = re.compile(r"\{\{ \$threshold := (?P<number>[^ }]+) \}\}")


@dataclass(frozen=True)
class Threshold:
    """What a rule compares its value with: ``op`` is ``>``, ``>=``, ``<`` or ``<=``."""

    op: str
    value: float

    @property
    def above(self) -> bool:
        return self.op.startswith(">")


def threshold_default(name: str) -> float:
    """The seed's value of threshold ``name``: the one the rule files hold."""
    default = StackSettings.model_fields[f"threshold_{name}"].default
    assert isinstance(default, float | int), name
    return float(default)


def rule_key(rule: dict[str, Any]) -> tuple[str, str] | None:
    """(alert, severity) of an alerting rule; None for a recording rule."""
    if "alert" not in rule:
        return None
    return str(rule["alert"]), str(rule.get("labels", {}).get("severity", ""))


def rule_threshold(rule: dict[str, Any], value: float) -> Threshold:
    """The one comparison of ``rule``'s expr with ``value``; a RenderError if there is not
    exactly one (the table and the rule file disagree)."""
    found = [
        Threshold(match["op"], float(match["number"]))
        for match in _COMPARISON.finditer(str(rule["expr"]))
        if float(match["number"]) == value
    ]
    if len(found) != 1:
        raise RenderError(
            f"rule {rule_key(rule)}: expected one comparison with {value:g} in its expr, "
            f"found {len(found)}"
        )
    return found[0]


def _number(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _with_threshold(rule: dict[str, Any], default: float, value: float) -> dict[str, Any]:
    """A copy of ``rule`` comparing with ``value`` instead of ``default``, and showing it."""
    rule_threshold(rule, default)  # exactly one comparison to move
    rendered = copy.deepcopy(rule)

    def compare(match: re.Match[str]) -> str:
        if float(match["number"]) != default:
            return match.group(0)
        return match.group(0)[: match.start("number") - match.start()] + _number(value)

    rendered["expr"] = _COMPARISON.sub(compare, str(rule["expr"]))
    for key, text in rule.get("annotations", {}).items():
        for shown in _THRESHOLD_VARIABLE.finditer(str(text)):
            if float(shown["number"]) != default:
                raise RenderError(
                    f"rule {rule_key(rule)}: annotation {key} shows {shown['number']}, but the "
                    f"rule compares with {default:g}"
                )
        rendered["annotations"][key] = _THRESHOLD_VARIABLE.sub(
            "{{ $threshold := " + _number(value) + " }}", str(text)
        )
    return rendered


def _strategy_vector(strategy: str) -> str:
    """A one-series vector with label ``strategy`` (names are checked by StackSettings)."""
    return f'label_replace(vector(1), "strategy", "{strategy}", "", "")'


def _scoped(expr: str, operator: str, strategies: str) -> str:
    body = "\n".join(f"  {line}" for line in expr.strip().splitlines())
    return f"(\n{body}\n)\n{operator} on (strategy)\n  {strategies}\n"


def render_rule(rule: dict[str, Any], settings: StackSettings) -> list[dict[str, Any]]:
    """``rule`` with this deployment's threshold, and a copy per strategy with its own."""
    key = rule_key(rule)
    name = RULE_THRESHOLDS.get(key) if key else None
    if name is None:
        return [rule]
    default = threshold_default(name)
    deployment = getattr(settings, f"threshold_{name}")
    rendered = _with_threshold(rule, default, deployment)
    overrides = {
        strategy: values[name]
        for strategy, values in settings.threshold_by_strategy.items()
        if name in values
    }
    if not overrides:
        return [rendered]
    # Parenthesised: `or` binds looser than `unless`.
    others = "(" + " or ".join(_strategy_vector(strategy) for strategy in overrides) + ")"
    rules = [{**rendered, "expr": _scoped(rendered["expr"], "unless", others)}]
    for strategy, value in overrides.items():
        if value is None:
            continue  # off for this strategy
        own = _with_threshold(rule, default, value)
        own["expr"] = _scoped(own["expr"], "and", _strategy_vector(strategy))
        # The label the series have anyway; it tells the copies apart (promtool's lint).
        own["labels"] = {**own.get("labels", {}), "strategy": strategy}
        rules.append(own)
    return rules


def rules_documents(settings: StackSettings) -> dict[str, dict[str, Any]]:
    """Each rule file's name and its document, rendered with ``settings``' thresholds."""
    documents = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            group["rules"] = [
                rendered for rule in group["rules"] for rendered in render_rule(rule, settings)
            ]
        documents[path.name] = document
    return documents


def rendered_rules(settings: StackSettings) -> Iterator[dict[str, Any]]:
    """Every rule as rendered with ``settings``, file by file, group by group."""
    for document in rules_documents(settings).values():
        for group in document["groups"]:
            yield from group["rules"]


def render_rules(settings: StackSettings, out: Path) -> list[Path]:
    """Write the rendered rule files into the folder ``out`` (and remove stale ones there)."""
    out.mkdir(parents=True, exist_ok=True)
    documents = rules_documents(settings)
    for stale in out.glob("*.yml"):
        if stale.name not in documents:
            stale.unlink()
    written = []
    for name, document in documents.items():
        path = out / name
        header = (
            f"# Rendered by tbmon from tbmon/stack/prometheus/rules/{name} with the "
            "TBMON_THRESHOLD_* "
            "settings; edit the source, not this.\n"
        )
        path.write_text(
            header + yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=100)
        )
        written.append(path)
    return written


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (expressions) as ``|`` blocks, as they are written in the source."""


def _block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _block)


def deployment_thresholds(settings: StackSettings) -> dict[tuple[str, str], Threshold]:
    """(alert, severity) -> what its rendered rule compares with for the whole deployment (not
    a strategy's copy): the operator's threshold for a rule of :data:`RULE_THRESHOLDS`, the one
    number compared in any other rule's expr. What the dashboards' panels colour by."""
    found: dict[tuple[str, str], Threshold] = {}
    for rule in rendered_rules(settings):
        key = rule_key(rule)
        if key is None or key in found:
            continue
        if key in RULE_THRESHOLDS:
            value = getattr(settings, f"threshold_{RULE_THRESHOLDS[key]}")
            found[key] = rule_threshold(rule, value)
            continue
        compared = list(_COMPARISON.finditer(str(rule["expr"])))
        if len(compared) == 1:
            found[key] = Threshold(compared[0]["op"], float(compared[0]["number"]))
    return found
