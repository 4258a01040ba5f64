"""The collector's transform/redact: rendered from the host's rules, in sync, and the same rules.

The rendered RE2 patterns are written in the common ground of Python's ``re`` and RE2, so Python
runs them here with the collector's meaning, screens included (a rule runs on an item only when
its screen finds something in the item's text); the collector itself compiles them in
``test_stack.py::test_collector_validates_its_own_config``, masks a corpus exactly as the host
does in ``test_the_collector_masks_what_the_host_masks`` (its real ingest output, caught where the
host would be) and keeps secrets off its disk in
``test_fault_tolerance.py::test_secrets_never_rest_on_disk_unmasked``.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fault_support import export
from processors_support import otlp_sink
from support import wait_until
from test_processors_redaction import HARMLESS_KEYS, SENSITIVE_KEYS, TEXTS, WHOLE_VALUES

from tbmon.ports import isolated_settings
from tbmon.processors import Batch, Signal, collector_rules, otlp
from tbmon.processors.otlp import Resource, Value
from tbmon.processors.redaction import (
    SENSITIVE_KEY_WORDS,
    VALUE_RULES,
    RedactionProcessor,
    RedactionSettings,
)
from tbmon.processors.testing import log_record, logs_batch, metrics_batch, run, span, spans_batch
from tbmon.stack.resources import COLLECTOR_CONFIG
from tbmon.stack.supervisor import Supervisor

MASK = collector_rules.MASK
CONFIG = COLLECTOR_CONFIG


@pytest.fixture(scope="module")
def redactor() -> RedactionProcessor:
    return RedactionProcessor(RedactionSettings(mask=MASK))


def test_the_config_holds_the_rendered_rules() -> None:
    current = CONFIG.read_text()
    assert collector_rules.rendered_config(current) == current, (
        f"{CONFIG}'s transform/redact is stale: run "
        f"`python -m tbmon.processors.collector_rules {CONFIG}`"
    )
    for pipeline in ("traces/ingest", "metrics/ingest", "logs/ingest"):
        assert "transform/redact" in current.split(f"    {pipeline}:")[1].split("\n    ")[2]


def _found(screen: collector_rules.Screen, text: str, *, values: bool = False) -> bool:
    """Whether the collector's screen finds something in one item whose only string is
    ``text``: in its text (ToKeyValueString escapes quotes) or, for the needle-screened rules,
    its values (JSON)."""
    joined = json.dumps([text]) if values else text.replace('"', '\\"')
    lower = joined.lower()
    if any(literal in lower for literal in screen.literals):
        return True
    return screen.pattern is not None and re.search(screen.pattern, joined) is not None


def _collector_redact(text: str) -> str:
    """What the collector's statements make of one string, in order, each rule only when its
    screen found something in the string as it came."""
    screens = {rule.name: collector_rules.rule_screen(rule) for rule in VALUE_RULES}
    needles = {rule.name for rule in VALUE_RULES if rule.prefilter is None}
    found = {
        name: (name not in needles or _found(collector_rules.words_screen(), text))
        and _found(screen, text, values=name in needles)
        for name, screen in screens.items()
    }
    for replacement in collector_rules.value_replacements():
        if found[replacement.rule]:
            template = re.sub(r"\$\{(\w+)\}", r"\\g<\1>", replacement.replacement)
            text = re.sub(replacement.pattern, template, text)
    return text


@pytest.mark.parametrize("text", [text for text, _, _ in TEXTS] + [t for t, _ in WHOLE_VALUES])
def test_the_collector_masks_values_as_the_host_does(
    redactor: RedactionProcessor, text: str
) -> None:
    assert _collector_redact(text) == redactor.redact_text(text)


def test_nothing_masked_twice_changes(redactor: RedactionProcessor) -> None:
    """The host runs after the collector: what the collector masked, the host leaves as is."""
    for text, _, _ in TEXTS:
        once = _collector_redact(text)
        assert redactor.redact_text(once) == once


def _random_keys(count: int) -> list[str]:
    rng = random.Random(13)
    words = [*SENSITIVE_KEY_WORDS, "total", "count", "cache", "key", "monkey", "my", "x", "id"]
    separators = ["", ".", "-", "_", "__", " ", "/"]
    keys = []
    for _ in range(count):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 3))]
        spelled = [
            rng.choice([part, part.upper(), part.capitalize(), part[:2].upper() + part[2:]])
            for part in parts
        ]
        key = "".join(p + rng.choice(separators) for p in spelled)
        keys.append(key if rng.random() < 0.8 else key + rng.choice(["s", "2", "_", ""]))
    return keys


@pytest.mark.parametrize("key", SENSITIVE_KEYS + HARMLESS_KEYS + ["passWord", "MYPassword"])
def test_the_key_pattern_agrees_with_the_host(redactor: RedactionProcessor, key: str) -> None:
    pattern = re.compile(collector_rules.key_pattern())
    assert (pattern.search(key) is not None) == redactor.key_is_sensitive(key)


def test_the_key_pattern_agrees_on_random_keys(redactor: RedactionProcessor) -> None:
    pattern = re.compile(collector_rules.key_pattern())
    disagree = [
        key
        for key in _random_keys(5000)
        if (pattern.search(key) is not None) != redactor.key_is_sensitive(key)
    ]
    assert disagree == []


def _json_members_masked(key: str) -> bool:
    """Whether the nested-member pattern masks ``key``'s value in a map's JSON text (as OTTL's
    String() writes it: compact, quotes and backslashes escaped), nested one level down."""
    text = json.dumps({"outer": {key: "v", "n": 1}}, separators=(",", ":"))
    pattern = re.compile(collector_rules.nested_key_pattern())
    masked = pattern.sub(lambda m: m.group("head") + f'"{MASK}"', text)
    assert json.loads(masked)["outer"]["n"] == 1  # the rest of the text intact
    return masked != text


def test_the_nested_member_pattern_agrees_with_the_host(redactor: RedactionProcessor) -> None:
    """Inside a nested value's JSON text, a member is masked exactly when the host masks its
    key (the keys of the key pattern's tests and random ones)."""
    keys = [*SENSITIVE_KEYS, *HARMLESS_KEYS, "passWord", "MYPassword", *_random_keys(2000)]
    disagree = [key for key in keys if _json_members_masked(key) != redactor.key_is_sensitive(key)]
    assert disagree == []


def test_the_nested_screen_finds_what_the_rules_mask() -> None:
    """A nested value is made text (and masked) when its JSON text holds something a rule
    masks: every corpus text that the host changes is found in it."""
    screen = re.compile(collector_rules.nested_screen())
    for text, _, _ in TEXTS:
        assert screen.search(json.dumps({"a": [text]})), text


def test_the_screens_find_everything_there_is_to_mask(redactor: RedactionProcessor) -> None:
    """A step runs only when its screen finds something: each rule's screen finds every string
    the rule changes, the key screen every sensitive key, and the words screen whatever those
    two screens by words find (and, to be worth it, not plain ccxt-like values)."""
    texts = [text for text, _, _ in TEXTS] + [text for text, _ in WHOLE_VALUES]
    for rule in VALUE_RULES:
        changed = [text for text in texts if rule.pattern.sub(redactor._masker, text) != text]
        screen = collector_rules.rule_screen(rule)
        needles = rule.prefilter is None
        assert changed, rule.name
        assert all(_found(screen, text, values=needles) for text in changed), rule.name
        if needles:
            assert all(_found(collector_rules.words_screen(), text) for text in changed)
    keys = SENSITIVE_KEYS + _random_keys(5000)
    for screen in (collector_rules.key_screen(), collector_rules.words_screen()):
        assert all(_found(screen, key) for key in keys if redactor.key_is_sensitive(key))
    plain = ["https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT", "BTC/USDT", "momentum"]
    screens = [collector_rules.words_screen(), collector_rules.key_screen()]
    screens += [collector_rules.rule_screen(rule) for rule in VALUE_RULES]
    assert not any(_found(screen, text) for screen in screens for text in plain)


def test_each_screen_pattern_starts_with_a_literal() -> None:
    """Go's regexp jumps to a pattern's literal prefix with strings.Index; without one it runs
    its NFA from every position (what made the first version cost 150 us a span)."""
    for rule in VALUE_RULES:
        pattern = collector_rules.rule_screen(rule).pattern
        if pattern is not None:
            assert re.escape(pattern[0]) == pattern[0], (rule.name, pattern)


# -- the real collector --------------------------------------------------------------------------

PLAIN = [
    "https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT",
    "order filled at 42000.5 on binance",
    "llm.usage.total_tokens",
]


def _corpus() -> list[str]:
    return [text for text, _, _ in TEXTS] + [text for text, _ in WHOLE_VALUES] + PLAIN


def _attributes(index: int, text: str) -> dict[str, Value]:
    keys = SENSITIVE_KEYS + HARMLESS_KEYS
    return {"n": index, "note": text, keys[index % len(keys)]: text, "ratio": 0.5}


def _requests() -> dict[Signal, Batch[Any]]:
    """Every corpus string in every place the collector masks: span names, status messages,
    event names, resource, span, event, log, data point attributes, string and map bodies."""
    spans, records, points = [], [], []
    for index, text in enumerate(_corpus()):
        item = span(text, _attributes(index, text), events=[(text, {"note": text})])
        item.status.message = text
        spans.append(item)
        records.append(log_record(text, _attributes(index, text)))
        body: dict[str, Value] = {"message": text, "password": text, "n": index}
        records.append(log_record(body, {"n": -index}))
        points.append((_attributes(index, text), 1.0))
    # A map body the collector cannot join into its text (NaN has no JSON): every step runs.
    nan: dict[str, Value] = {"password": "hunter2", "note": "password=hunter2", "ratio": math.nan}
    records.append(log_record(nan, {"n": 10_000}))
    resource: dict[str, Value] = {"service.name": "redaction-e2e", "db.password": "hunter2"}
    return {
        Signal.SPANS: spans_batch(*spans, resource=resource),
        Signal.LOGS: logs_batch(*records, resource=resource),
        Signal.METRICS: metrics_batch(
            otlp.gauge("redaction_probe", points, time.time_ns()), resource=resource
        ),
    }


def _items(signal: Signal, messages: list[Any]) -> dict[int, Any]:
    """The messages' items (with their resource's attributes), by attribute ``n``."""
    found = {}
    for message in messages:
        pairs: list[tuple[Resource, Any]]
        match signal:
            case Signal.SPANS:
                pairs = [(r.resource, s) for r, _, s in otlp.spans(message)]
            case Signal.LOGS:
                pairs = [(r.resource, rec) for r, _, rec in otlp.log_records(message)]
            case Signal.METRICS:
                pairs = [
                    (rm.resource, point)
                    for rm in message.resource_metrics
                    for sm in rm.scope_metrics
                    for metric in sm.metrics
                    for point in otlp.data_points(metric)
                ]
        for resource, item in pairs:
            number = next(a.value.int_value for a in item.attributes if a.key == "n")
            found[number] = (list(resource.attributes), item)
    return found


@pytest.mark.stack
def test_the_collector_masks_what_the_host_masks(
    tmp_path: Path, redactor: RedactionProcessor
) -> None:
    """The real collector's ingest output, caught where the processors host would be, equals
    the host's own redaction of what was sent, item by item (and the host then changes
    nothing): the screens skip nothing the rules would mask."""
    requests = _requests()
    settings = isolated_settings(tmp_path)
    endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
    with otlp_sink(settings.processors_port) as sink:
        supervisor = Supervisor(settings)
        try:
            supervisor.up(["collector"])
            for signal, batch in requests.items():
                export(endpoint, signal, batch.raw)
            for signal, batch in requests.items():
                count = len(_items(signal, [batch.read()]))
                wait_until(
                    lambda s=signal, c=count: len(_items(s, sink.all(s))) == c,  # type: ignore[misc]
                    f"the collector's {signal.name.lower()}",
                    60,
                )
        finally:
            supervisor.down()
    for signal, batch in requests.items():
        expected = _items(signal, [run(redactor, batch).message()])
        arrived = _items(signal, sink.all(signal))
        for number, (resource, item) in expected.items():
            got_resource, got = arrived[number]
            if number == 10_000:  # NaN != NaN: compare the strings
                body = {kv.key: kv.value for kv in got.body.kvlist_value.values}
                assert body["password"].string_value == MASK
                assert body["note"].string_value == f"password={MASK}"
                continue
            assert got_resource == resource, number
            assert got == item, (signal, number, got)
        again = run(redactor, Batch.of(sink.all(signal)[0])).message()
        assert again == sink.all(signal)[0]


@pytest.mark.stack
def test_the_collector_masks_and_cuts_nested_values(tmp_path: Path) -> None:
    """Before its queue, the real collector masks secrets nested in map and array attributes
    and in map and array bodies (a nested value with a candidate arrives as its JSON text,
    masked; a clean one keeps its structure), and cuts nested values whose JSON passes 32 KiB
    (transform/limits), marking the item. Nothing planted reaches the host's side."""
    secrets = ["nested-key-1a", "nested-url-2b", "nested-array-3c", "nested-body-4d"]
    big = "n" * 100_000
    nested: dict[str, Value] = {
        "n": 1,
        "db": {"user": "bot", "password": secrets[0], "port": 5432},
        "hosts": ["db1", f"postgresql://bot:{secrets[1]}@db2/x"],
        "clean": {"side": "buy", "qty": 2},
        "big": {"blob": big},
        "big_list": [big, 1],
    }
    requests: dict[Signal, Batch[Any]] = {
        Signal.SPANS: spans_batch(span("nested", nested)),
        Signal.LOGS: logs_batch(
            log_record({"event": "login", "auth": {"token": secrets[3]}}, {"n": 1}),
            log_record(["login", f"api_key={secrets[2]}"], {"n": 2}),
            log_record({"blob": "m" * 3_000_000}, {"n": 3}),
            log_record("plain", nested | {"n": 4}),
        ),
    }
    settings = isolated_settings(tmp_path)
    endpoint = f"{settings.bind_host}:{settings.otlp_grpc_port}"
    with otlp_sink(settings.processors_port) as sink:
        supervisor = Supervisor(settings)
        try:
            supervisor.up(["collector"])
            for signal, batch in requests.items():
                export(endpoint, signal, batch.raw)
            for signal, batch in requests.items():
                count = len(_items(signal, [batch.read()]))
                wait_until(
                    lambda s=signal, c=count: len(_items(s, sink.all(s))) == c,  # type: ignore[misc]
                    f"the collector's {signal.name.lower()}",
                    60,
                )
        finally:
            supervisor.down()
    raw = b"".join(m.SerializeToString() for s in requests for m in sink.all(s))
    assert [secret for secret in secrets if secret.encode() in raw] == []
    (_, got_span) = _items(Signal.SPANS, sink.all(Signal.SPANS))[1]
    logs = {n: record for n, (_, record) in _items(Signal.LOGS, sink.all(Signal.LOGS)).items()}
    for attributes in (otlp.attributes(got_span.attributes), otlp.attributes(logs[4].attributes)):
        assert attributes["clean"] == {"side": "buy", "qty": 2}  # no candidate: as it came
        assert isinstance(attributes["db"], str)
        assert json.loads(attributes["db"]) == {"user": "bot", "password": MASK, "port": 5432}
        assert json.loads(str(attributes["hosts"])) == ["db1", f"postgresql://bot:{MASK}@db2/x"]
        for key, start in (("big", '{"blob":"nnn'), ("big_list", '["nnn')):
            text = str(attributes[key])
            assert text.startswith(start), (key, text[:40])
            assert len(text.encode()) == 32768, key
        assert attributes["tbmon.truncated"] is True
    # A map body keeps its structure; its nested value with the secret is made text.
    assert otlp.python_value(logs[1].body) == {"event": "login", "auth": f'{{"token":"{MASK}"}}'}
    assert otlp.python_value(logs[2].body) == f'["login","api_key={MASK}"]'
    body = str(otlp.python_value(logs[3].body))
    assert body.startswith('{"blob":"mmm')
    assert len(body.encode()) == 32768
    assert otlp.attributes(logs[3].attributes)["tbmon.truncated"] is True
