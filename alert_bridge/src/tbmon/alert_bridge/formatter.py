"""Alerts as Telegram HTML, in the seed's layout: a severity header, then one block per alert.

Every label and annotation value is cleaned (broken surrogates, and control and format
characters such as U+202E, removed) and escaped, so no value can break the markup or disguise
itself. A block always fits one message: if a value is huge (a 10,000-character description),
the longest values are shortened with an ellipsis until the block fits, never cut inside an
entity or a tag.

The "Labels" line shows what tells a trader which bot and market it is about (job, strategy,
symbol, exchange... first), never the OpenTelemetry scope, the stack's own external label or a
process's instance id. "View in Grafana" opens the alert's ``dashboard`` annotation (a path such
as ``/d/tbmon-risk-metrics?var-job=bot``, or a full URL) from an hour before the alert started
until now, or until a little after it resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tbmon.alert_bridge.html import MESSAGE_LIMIT, escape, utf16_length, visible_length
from tbmon.alert_bridge.models import Alert
from tbmon.alert_bridge.sanitize import undisguised

#: Room left for the header of a message holding a single block.
BLOCK_BUDGET = MESSAGE_LIMIT - 160
#: Between two alert blocks of one message.
SEPARATOR = "\n\n━━━━━━━━━━\n\n"
#: Shown on their own lines, so left out of the "Labels" line.
_SHOWN_LABELS = frozenset({"alertname", "severity", "component"})
#: Labels that tell a trader nothing: the instrumentation scope, the stack's external label.
_NOISE_LABELS = frozenset({"monitor"})
_NOISE_PREFIXES = ("otel_scope_",)
#: ``instance`` of a bot is its process's service.instance.id, new at every restart.
_PROCESS_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
#: Labels a trader looks for first, in this order; the others follow alphabetically.
_FIRST_LABELS = ("job", "strategy", "symbol", "exchange", "endpoint", "agent", "model")
#: The dashboard's time range around the alert.
_BEFORE = timedelta(hours=1)
_AFTER_RESOLVED = timedelta(minutes=15)
#: Successive caps on each value's length until a block fits its budget.
_VALUE_LIMITS: tuple[int | None, ...] = (None, 2000, 800, 300, 100)
_URL_LIMIT = 2000


def clean(value: str, limit: int | None = None) -> str:
    """``value`` without lone surrogates, nor control or format characters that could disguise
    it (:func:`~tbmon.alert_bridge.sanitize.undisguised`), at most ``limit`` characters."""
    value = undisguised(value.encode("utf-8", "replace").decode("utf-8"))
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def text(value: str, limit: int | None = None) -> str:
    """A value ready to go between tags: cleaned, shortened, escaped."""
    return escape(clean(value, limit))


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" * bool(days), f"{hours}h" * bool(hours), f"{minutes}m" * bool(minutes)]
    return " ".join(part for part in parts if part) or f"{seconds}s"


def header(severity: str, status: str, count: int) -> str:
    """The first line of a message: what kind of alerts follow, and how many."""
    severity = clean(severity, 20).upper() or "UNKNOWN"
    if status == "resolved":
        icon, title = "✅", f"RESOLVED {severity} TRADING BOT ALERT"
    else:
        icon = {"CRITICAL": "🚨", "WARNING": "⚠️"}.get(severity, "ℹ️")  # noqa: RUF001
        title = f"{severity} TRADING BOT ALERT"
    if count > 1:
        return f"{icon} <b>{escape(title)}S</b> ({count})"
    return f"{icon} <b>{escape(title)}</b>"


def header_length(severity: str, status: str, count: int) -> int:
    return visible_length(header(severity, status, count))


def message(head: str, blocks: Sequence[str]) -> str:
    return head + "\n\n" + SEPARATOR.join(blocks)


def message_length(head_length: int, block_lengths: Sequence[int]) -> int:
    """The visible length of :func:`message` without rendering it (parts add up exactly)."""
    separators = utf16_length(SEPARATOR) * (len(block_lengths) - 1)
    return head_length + 2 + sum(block_lengths) + separators


def alert_block(alert: Alert, grafana_url: str) -> tuple[str, int]:
    """One alert as HTML, and its visible length (always within :data:`BLOCK_BUDGET`)."""
    for limit in _VALUE_LIMITS:
        html = _render(alert, grafana_url, limit)
        length = visible_length(html)
        if length <= BLOCK_BUDGET:
            return html, length
    raise AssertionError("an alert block with 100-character values cannot exceed the budget")


def _render(alert: Alert, grafana_url: str, limit: int | None) -> str:
    labels = alert.labels
    annotations = alert.annotations
    lines = [
        f"<b>Alert:</b> {text(alert.name, limit)}",
        f"<b>Severity:</b> {text(alert.severity.upper(), limit)}",
        f"<b>Component:</b> {text(labels.get('component', 'unknown').upper(), limit)}",
    ]
    others = ", ".join(f"{k}={v}" for k, v in trader_labels(labels))
    if others:
        lines.append(f"<b>Labels:</b> <code>{text(others, limit)}</code>")
    lines.append("")
    for title, key in (("Summary", "summary"), ("Description", "description")):
        if annotations.get(key):
            lines.append(f"<b>{title}:</b> {text(annotations[key], limit)}")
    if annotations.get("action"):
        lines.append(f"<b>Action Required:</b> {text(annotations['action'], limit)}")
    lines.append(f"<b>Time:</b> {timestamp(alert.starts_at)}")
    if alert.status == "resolved" and alert.ends_at is not None and alert.ends_at.year > 1:
        lasted = duration((alert.ends_at - alert.starts_at).total_seconds())
        lines.append(f"<b>Resolved:</b> {timestamp(alert.ends_at)} (after {lasted})")
    links = [
        ("View in Grafana", grafana_link(grafana_url, alert)),
        ("View in Prometheus", alert.generator_url),
    ]
    shown = [f'🔗 <a href="{escape(url)}">{title}</a>' for title, url in links if _linkable(url)]
    if shown:
        lines.extend(["", *shown])
    return "\n".join(lines)


def trader_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The labels worth a trader's attention, the most telling first."""
    shown = {
        name: value
        for name, value in labels.items()
        if name not in _SHOWN_LABELS
        and name not in _NOISE_LABELS
        and not name.startswith(_NOISE_PREFIXES)
        and not (name == "instance" and _PROCESS_ID.fullmatch(value))
    }
    first = [(name, shown.pop(name)) for name in _FIRST_LABELS if name in shown]
    return first + sorted(shown.items())


def grafana_link(base: str, alert: Alert) -> str:
    """Grafana at the alert's ``dashboard`` (Grafana's home without one), at the alert's time."""
    dashboard = alert.annotations.get("dashboard", "")
    if _linkable(dashboard):
        url = dashboard
    elif dashboard.startswith("/"):
        url = base.rstrip("/") + dashboard
    else:
        return base
    if re.search(r"[?&]from=", url):
        return url
    start = int((alert.starts_at - _BEFORE).timestamp() * 1000)
    end = "now"
    if alert.status == "resolved" and alert.ends_at is not None and alert.ends_at.year > 1:
        end = str(int((alert.ends_at + _AFTER_RESOLVED).timestamp() * 1000))
    return f"{url}{'&' if '?' in url else '?'}from={start}&to={end}"


def _linkable(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) <= _URL_LIMIT and clean(url) == url


# -- command replies -------------------------------------------------------------------------


def alert_lines(alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """`/alerts`: Alertmanager's active alerts (API v2 objects), most severe and oldest first."""
    if not alerts:
        return ["✅ No alert is firing."]
    ordered = sorted(
        alerts,
        key=lambda a: (a["labels"].get("severity") != "critical", a.get("startsAt", "")),
    )
    lines = [f"🔥 <b>{len(alerts)} firing alert{'s' * (len(alerts) != 1)}</b>"]
    for alert in ordered:
        labels = alert["labels"]
        icon = "🚨" if labels.get("severity") == "critical" else "⚠️"
        where = ", ".join(f"{k}={v}" for k, v in trader_labels(labels))
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(
            f"{icon} <b>{text(labels.get('alertname', '?'), 100)}</b> "
            f"({text(labels.get('component', '?'), 30)}) <code>{text(where, 200)}</code> "
            f"since {text(str(alert.get('startsAt', ''))[:16].replace('T', ' '), 20)} UTC"
            + (f" — {text(summary, 200)}" if summary else "")
        )
    return lines


def silence_lines(silences: Sequence[Mapping[str, Any]]) -> list[str]:
    """`/silences`: the active silences (API v2 objects)."""
    active = [s for s in silences if s.get("status", {}).get("state") == "active"]
    if not active:
        return ["🔔 No active silence."]
    lines = [f"🔕 <b>{len(active)} active silence{'s' * (len(active) != 1)}</b>"]
    for silence in sorted(active, key=lambda s: str(s.get("endsAt", ""))):
        matchers = ", ".join(
            f"{m['name']}{'=~' if m.get('isRegex') else '='}{m['value']}"
            if m.get("isEqual", True)
            else f"{m['name']}!{'~' if m.get('isRegex') else '='}{m['value']}"
            for m in silence.get("matchers", [])
        )
        lines.append(
            f"• <code>{text(str(silence.get('id', ''))[:8], 8)}</code> until "
            f"{text(str(silence.get('endsAt', ''))[:16].replace('T', ' '), 20)} UTC by "
            f"{text(str(silence.get('createdBy', '')), 60)}: <code>{text(matchers, 300)}</code>"
        )
    return lines
