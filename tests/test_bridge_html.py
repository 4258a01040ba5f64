"""Telegram HTML: parsing as Telegram does, escaping hostile values, formatting and splitting."""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime

import pytest
from bridge_support import DISGUISES

from tbmon.alert_bridge.formatter import (
    BLOCK_BUDGET,
    alert_block,
    header,
    header_length,
    message,
    message_length,
)
from tbmon.alert_bridge.html import (
    MESSAGE_LIMIT,
    EntityParseError,
    escape,
    parse,
    plain_text,
    utf16_length,
    visible_length,
)
from tbmon.alert_bridge.models import Alert
from tbmon.alert_bridge.splitter import blocks_that_fit, split_lines

HOSTILE = [
    "<script>alert(1)</script>",
    "a < b && c > d",
    "AT&T &amp; &lt;b&gt; &#60; &#x3C; &nbsp; &unknown; &",
    "\"quoted\" 'single' `back`",
    "</b></i></code>",
    "<b>unclosed",
    "<a href='javascript:alert(1)'>x</a>",
    "Ценовой риск 📉 превышен — 风险 — リスク — مخاطرة",
    "👨‍👩‍👧‍👦 🇺🇦 🏳️‍🌈 x\u0301",
    "tabs\tand\nnew\nlines\r\nand\x00nul\x07bell\x1b[31mansi",
    "lone \ud800 surrogate",
    "x" * 10_000,
    "invoice\u202egnp.exe",
    "\u2066isolated\u2069 \u202aembedded\u202c \u200emarks\u200f\u061c",
    "zero\u200bwidth\u2060word\ufeffjoiner\u00adsoft \U000e0068\U000e0069 tags",
    # Persian with a zero-width non-joiner, and an emoji sequence with a joiner.
    "\u0646\u06cc\u0645\u200c\u0641\u0627\u0635\u0644\u0647 👩\u200d💻",
]


# -- the parser follows Telegram's rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("price < 100", 'Unsupported start tag "" at byte offset 6'),
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("ünï <x>", 'Unsupported start tag "x" at byte offset 6'),
        ("<b>bold", "Can't find end tag corresponding to start tag b"),
        ("text</b>", "Unexpected end tag at byte offset 4"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<a href="x>y', "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=x/y>z</a>", "Unexpected end of name token at byte offset 8"),
        ("&#xD800;", "Text contains invalid Unicode characters"),
    ],
)
def test_invalid_html_is_refused_like_telegram(html: str, error: str) -> None:
    with pytest.raises(EntityParseError, match="^" + error.replace("(", r"\(")):
        parse(html)


def test_valid_html_decodes_entities_and_finds_tags() -> None:
    parsed = parse(
        "<b>Alert:</b> AT&T &lt;x&gt; &quot;q&quot; &#128200; &#x41; &nbsp; "
        '<a href="https://e.x/?a=1&amp;b=2">link</a> <span class="tg-spoiler">s</span>'
    )
    assert parsed.text == 'Alert: AT&T <x> "q" 📈 A &nbsp; link s'
    assert ("b", 0, 6, "") in parsed.entities
    link = parsed.text.index("link")
    assert ("a", link, link + 4, "https://e.x/?a=1&b=2") in parsed.entities


def test_length_counts_utf16_units_of_the_visible_text() -> None:
    assert utf16_length("📈a") == 3
    assert visible_length("<b>ab</b> &amp; 📈") == len("ab & ") + 2


# -- every value is escaped ------------------------------------------------------------------


def _alert(**overrides: object) -> Alert:
    data: dict[str, object] = {
        "status": "firing",
        "labels": {"alertname": "HighDrawdown", "severity": "critical", "component": "trading"},
        "annotations": {
            "summary": "High portfolio drawdown detected",
            "description": "Portfolio drawdown is 18.5%, exceeding the 15% warning threshold",
            "action": "Review strategy performance and consider position sizing adjustments",
        },
        "startsAt": "2024-01-15T14:30:45Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x&g0.tab=1",
        "fingerprint": "f1",
    }
    data.update(overrides)
    return Alert.model_validate(data)


def test_block_follows_the_seed_layout() -> None:
    html, length = alert_block(_alert(), "http://localhost:3000")
    text = plain_text(message(header("critical", "firing", 1), [html]))
    assert text.splitlines() == [
        "🚨 CRITICAL TRADING BOT ALERT",
        "",
        "Alert: HighDrawdown",
        "Severity: CRITICAL",
        "Component: TRADING",
        "",
        "Summary: High portfolio drawdown detected",
        "Description: Portfolio drawdown is 18.5%, exceeding the 15% warning threshold",
        "Action Required: Review strategy performance and consider position sizing adjustments",
        "Time: 2024-01-15 14:30:45 UTC",
        "",
        "🔗 View in Grafana",
        "🔗 View in Prometheus",
    ]
    parsed = parse(html)
    links = [
        (parsed.text[start:end], url) for tag, start, end, url in parsed.entities if tag == "a"
    ]
    assert links == [
        ("View in Grafana", "http://localhost:3000"),
        ("View in Prometheus", "http://prometheus:9090/graph?g0.expr=x&g0.tab=1"),
    ]
    assert length == visible_length(html)


def _links(html: str) -> dict[str, str]:
    parsed = parse(html)
    return {parsed.text[start:end]: url for tag, start, end, url in parsed.entities if tag == "a"}


def test_labels_show_what_helps_a_trader_first_and_no_otel_or_process_ids() -> None:
    labels = {
        "alertname": "HighPositionConcentration",
        "severity": "warning",
        "component": "risk",
        "instance": "851623d7-6853-4e72-ae0d-dd510eb9b08f",
        "job": "momentum-bot",
        "monitor": "tbmon",
        "otel_scope_name": "tbmon.instrumentation",
        "otel_scope_schema_url": "",
        "otel_scope_version": "0.1.0",
        "strategy": "momentum",
        "symbol": "BTC/USDT",
        "exchange": "binance",
        "venue": "spot",
    }
    text = plain_text(alert_block(_alert(labels=labels), "http://g")[0])
    assert (
        "Labels: job=momentum-bot, strategy=momentum, symbol=BTC/USDT, exchange=binance, "
        "venue=spot\n" in text
    )
    for hidden in ("otel_scope", "851623d7", "monitor", "alertname="):
        assert hidden not in text
    # A backend's instance is its address, which says which one is down: it stays.
    backend = {"alertname": "BackendDown", "severity": "critical", "component": "infrastructure"}
    down = _alert(labels={**backend, "job": "jaeger", "instance": "jaeger:14269"})
    assert "Labels: job=jaeger, instance=jaeger:14269\n" in plain_text(
        alert_block(down, "http://g")[0]
    )


def test_view_in_grafana_opens_the_rules_dashboard_for_the_bot_at_the_alerts_time() -> None:
    dashboard = "/d/tbmon-risk-metrics?var-job=momentum-bot"
    annotations = {"summary": "s", "description": "d", "dashboard": dashboard}
    started = datetime(2024, 1, 15, 14, 30, 45, tzinfo=UTC)
    hour_before = int(started.timestamp() * 1000) - 3_600_000
    firing = _alert(annotations=annotations, startsAt=started.isoformat())
    assert _links(alert_block(firing, "https://grafana.example.com/")[0])["View in Grafana"] == (
        f"https://grafana.example.com{dashboard}&from={hour_before}&to=now"
    )
    # Resolved: up to a quarter of an hour after the end, so the recovery shows.
    ended = datetime(2024, 1, 15, 15, 0, 0, tzinfo=UTC)
    resolved = _alert(
        status="resolved",
        annotations=annotations,
        startsAt=started.isoformat(),
        endsAt=ended.isoformat(),
    )
    after = int(ended.timestamp() * 1000) + 900_000
    assert _links(alert_block(resolved, "http://g")[0])["View in Grafana"] == (
        f"http://g{dashboard}&from={hour_before}&to={after}"
    )
    # A full URL as the annotation, with no query yet; no annotation: Grafana's home.
    absolute = _alert(annotations={"dashboard": "https://other.example/d/x"})
    assert _links(alert_block(absolute, "http://g")[0])["View in Grafana"].startswith(
        "https://other.example/d/x?from="
    )
    assert _links(alert_block(_alert(), "http://g")[0])["View in Grafana"] == "http://g"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_always_make_a_valid_block_that_shows_them(value: str) -> None:
    alert = _alert(
        labels={
            "alertname": value,
            "severity": "critical",
            "component": value[:50],
            "job": value,
            value[:20] or "k": "v",
        },
        annotations={"summary": value, "description": value, "action": value},
        generatorURL=value,
    )
    html, length = alert_block(alert, "http://localhost:3000")
    parsed = parse(html)  # raises if Telegram would refuse it
    assert length <= BLOCK_BUDGET
    assert visible_length(message(header("critical", "firing", 1), [html])) <= MESSAGE_LIMIT
    shown = value.encode("utf-8", "replace").decode("utf-8")
    shown = "".join(
        c for c in shown if c in "\n\t\u200c\u200d" or unicodedata.category(c) not in ("Cc", "Cf")
    )
    if len(shown) < 100:
        assert shown in parsed.text
    else:
        assert "…" in parsed.text
        assert shown[:50] in parsed.text


@pytest.mark.parametrize("disguise", DISGUISES, ids=lambda c: f"U+{ord(c):04X}")
def test_no_value_can_disguise_itself(disguise: str) -> None:
    value = f"safe{disguise}gnp.exe"
    alert = _alert(
        labels={
            "alertname": value,
            "severity": "critical",
            "component": value,
            "job": value,
            value: "v",
        },
        annotations={"summary": value, "description": value, "action": value},
        generatorURL="http://prometheus:9090/graph?" + value,
    )
    html, _ = alert_block(alert, "http://localhost:3000")
    page = message(header(value, "firing", 1), [html])
    assert disguise not in page
    assert "safegnp.exe" in plain_text(page)
    # A link whose address holds one is not made a link at all.
    assert "View in Prometheus" not in plain_text(page)


def test_joiners_that_scripts_and_emoji_need_are_kept() -> None:
    value = "\u0646\u06cc\u0645\u200c\u0641\u0627\u0635\u0644\u0647 👩\u200d💻"
    html, _ = alert_block(_alert(annotations={"summary": value}), "http://localhost:3000")
    assert f"Summary: {value}" in plain_text(html)


def test_escape_round_trips_through_the_parser() -> None:
    for value in HOSTILE[:8]:
        assert parse(escape(value)).text == value


# -- splitting -------------------------------------------------------------------------------


def test_packed_messages_stay_under_the_limit_and_keep_every_block() -> None:
    rng = random.Random(7)
    blocks = []
    for index in range(60):
        description = "".join(rng.choice('ab<&>"é📈 ') for _ in range(rng.randint(10, 1500)))
        alert = _alert(
            fingerprint=f"f{index}",
            labels={"alertname": "A", "severity": "warning", "component": "risk", "n": str(index)},
            annotations={"description": description},
        )
        blocks.append(alert_block(alert, "http://g"))
    start, messages = 0, []
    while start < len(blocks):
        lengths = [length for _, length in blocks[start:]]
        count = blocks_that_fit(lambda n: header_length("warning", "firing", n), lengths)
        html = message(header("warning", "firing", count), [b for b, _ in blocks[start:][:count]])
        assert message_length(header_length("warning", "firing", count), lengths[:count]) == (
            visible_length(html)
        )
        messages.append(html)
        start += count
    assert len(messages) > 5
    for html in messages:
        assert visible_length(html) <= MESSAGE_LIMIT
    shown = "".join(plain_text(html) for html in messages)
    assert all(f"n={index}" in shown for index in range(60))


def test_lines_split_only_between_lines() -> None:
    lines = [f"<b>line {n}</b> " + "&amp;" * 300 for n in range(50)]
    parts = split_lines(lines)
    assert len(parts) > 1
    assert all(visible_length(part) <= MESSAGE_LIMIT for part in parts)
    assert "\n".join(parts) == "\n".join(lines)


def test_resolved_header_and_times() -> None:
    alert = _alert(status="resolved", endsAt=datetime(2024, 1, 15, 15, 0, 0, tzinfo=UTC))
    html, _ = alert_block(alert, "http://g")
    text = plain_text(message(header("critical", "resolved", 2), [html, html]))
    assert text.startswith("✅ RESOLVED CRITICAL TRADING BOT ALERTS (2)")
    assert "Resolved: 2024-01-15 15:00:00 UTC (after 29m)" in text
