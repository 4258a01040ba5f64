"""The collector's transform/redact: rendered from the host's rules, in sync, and the same rules.

The rendered RE2 patterns are written in the common ground of Python's ``re`` and RE2, so Python
runs them here with the collector's meaning; the collector itself compiles them in
``test_stack.py::test_collector_validates_its_own_config`` and applies them in
``test_fault_tolerance.py::test_secrets_never_rest_on_disk_unmasked``.
"""

from __future__ import annotations

import random
import re

import pytest
from test_processors_redaction import HARMLESS_KEYS, SENSITIVE_KEYS, TEXTS, WHOLE_VALUES

from tbmon.processors import collector_rules
from tbmon.processors.redaction import SENSITIVE_KEY_WORDS, RedactionProcessor, RedactionSettings
from tbmon.settings import PROJECT_ROOT

MASK = collector_rules.MASK
CONFIG = PROJECT_ROOT / "otel-collector" / "config.yaml"


@pytest.fixture(scope="module")
def redactor() -> RedactionProcessor:
    return RedactionProcessor(RedactionSettings(mask=MASK))


def test_the_config_holds_the_rendered_rules() -> None:
    current = CONFIG.read_text()
    assert collector_rules.rendered_config(current) == current, (
        "otel-collector/config.yaml's transform/redact is stale: run "
        "`python -m tbmon.processors.collector_rules`"
    )
    for pipeline in ("traces/ingest", "metrics/ingest", "logs/ingest"):
        assert "transform/redact" in current.split(f"    {pipeline}:")[1].split("\n    ")[2]


def _collector_redact(text: str) -> str:
    """What the collector's statements make of one string, in order."""
    for replacement in collector_rules.value_replacements():
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


def test_the_gate_lets_through_everything_there_is_to_mask(redactor: RedactionProcessor) -> None:
    """A statement group runs only when the gate matches one of its strings or keys: it must
    match every string a rule changes and every sensitive key (and, to be worth it, not plain
    ccxt-like values)."""
    gate = re.compile(collector_rules.gate_pattern())
    texts = [text for text, _, _ in TEXTS] + [text for text, _ in WHOLE_VALUES]
    assert all(gate.search(text) for text in texts if redactor.redact_text(text) != text)
    keys = SENSITIVE_KEYS + _random_keys(5000)
    assert all(gate.search(key) for key in keys if redactor.key_is_sensitive(key))
    plain = ["https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT", "BTC/USDT", "momentum"]
    assert not any(gate.search(text) for text in plain)
