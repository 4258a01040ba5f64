"""The redaction rules as the collector's transform statements: secrets masked before they rest.

The collector writes what it accepted to its ingest queue on disk before the processors host
sees it, so the host's redaction alone would leave every secret readable in the queue files.
``transform/redact`` in ``otel-collector/config.yaml`` runs the same rules first, in the
receiving pipeline (synchronously, before the queue). It is rendered from this package's one
definition of them (:data:`~tbmon.processors.redaction.SENSITIVE_KEY_WORDS`,
:data:`~tbmon.processors.redaction.VALUE_RULES`), never edited by hand:

    python -m tbmon.processors.collector_rules     # rewrites the block in the config
    tests/test_collector_redaction.py              # fails when the block is stale

The value patterns are written in the common ground of Python's ``re`` and RE2 (no look-arounds
or back-references), so each means the same in both; the rendering only changes what RE2 spells
differently: a repetition above RE2's limit of 1,000 is made unbounded (RE2 needs no bound: it
runs in linear time), each top-level alternative becomes a statement of its own, and the text
around the ``secret`` group is kept through named groups.
The sensitive keys (a key whose last words, split at separators and camelCase humps, are one of
the words) become one RE2 pattern over the raw key.

Covered before the queue: resource, scope, span, span event, log record and data point
attributes (masked by key, then by value), span and event names, span status messages and log
bodies (strings, and the values of map bodies). Not covered there (the host's pass, which
remains the reference, masks them before any backend): values nested in maps or arrays, span
links, bytes bodies, and the host's PROCESSORS_REDACTION_EXTRA_* settings.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from tbmon.processors.redaction import (
    _KEY_COMPOUND,
    KEY_WORDS,
    SENSITIVE_KEY_WORDS,
    VALUE_RULES,
    Rule,
)

#: The mask the collector writes (the host's default; the host keeps a mask it finds).
MASK = "[REDACTED]"
#: RE2's largest repetition count.
_RE2_MAX_REPEAT = 1000
BEGIN = "# @redaction-begin"
END = "# @redaction-end"


@dataclass(frozen=True)
class Replacement:
    """One RE2 pattern and what replaces its matches (Go's ``Expand`` syntax)."""

    rule: str
    pattern: str
    replacement: str


# -- value rules ------------------------------------------------------------------------------


def _structure(pattern: str) -> Iterator[tuple[int, str, int]]:
    """Each character of ``pattern`` outside escapes and character classes, with its index and
    the group depth before it."""
    depth, in_class, escaped = 0, False, False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]" or pattern[index - 1] == "["
        elif char == "[":
            in_class = True
        else:
            yield index, char, depth
            depth += {"(": 1, ")": -1}.get(char, 0)


def _top_level(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|`` (outside groups, classes and escapes)."""
    cuts = [index for index, char, depth in _structure(pattern) if char == "|" and depth == 0]
    bounds = [-1, *cuts, len(pattern)]
    return [pattern[a + 1 : b] for a, b in pairwise(bounds)]


def _group_end(pattern: str, start: int) -> int:
    """The index just past the group that opens at ``pattern[start]``."""
    for index, char, depth in _structure(pattern[start:]):
        if char == ")" and depth == 1:
            return start + index + 1
    raise ValueError(f"unbalanced group in {pattern!r}")


_CLASS_REPEAT = re.compile(r"(\[(?:\\.|[^\]\\])+\])\{(\d+),(\d+)\}(\??)")


def _re2_repeats(pattern: str) -> str:
    """Character-class repetitions above RE2's 1,000 (which it refuses, nested or not) made
    unbounded: ``C{m,n}`` becomes ``C{m,}``. Python's bounds only guard its backtracking against
    huge values; RE2 runs in linear time whatever the pattern, and masks at least as much."""

    def unbounded(match: re.Match[str]) -> str:
        char_class, low, high, lazy = match.group(1), *map(int, match.group(2, 3)), match.group(4)
        if high <= _RE2_MAX_REPEAT:
            return match.group(0)
        return f"{char_class}{{{low},}}{lazy}"

    return _CLASS_REPEAT.sub(unbounded, pattern)


def value_replacements(rules: Sequence[Rule] = VALUE_RULES, mask: str = MASK) -> list[Replacement]:
    """Each value rule as one RE2 replacement: every top-level alternative keeps the text around
    its ``secret`` group in groups of its own (a group that took no part expands to nothing), so
    the alternatives stay one pattern, as in Python (a value one alternative masked is not
    matched again by another)."""
    replacements = []
    for rule in rules:
        flags = "(?i)" if rule.pattern.flags & re.IGNORECASE else ""
        alternatives, heads, tails = [], [], []
        for index, alternative in enumerate(_top_level(rule.pattern.pattern)):
            opening = re.search(r"\(\?P<secret\w*>", alternative)
            if opening is None:  # the whole match is the secret
                alternatives.append(f"(?:{alternative})")
                continue
            end = _group_end(alternative, opening.start())
            before, secret = alternative[: opening.start()], alternative[opening.end() : end - 1]
            # The text around the secret, kept through named groups; other groups made plain.
            before, after = (
                re.sub(r"\(\?P<\w+>", "(?:", part) for part in (before, alternative[end:])
            )
            head, tail = f"head{index}", f"tail{index}"
            alternatives.append(f"(?P<{head}>{before})(?:{secret})(?P<{tail}>{after})")
            heads.append("${" + head + "}")
            tails.append("${" + tail + "}")
        pattern = flags + _re2_repeats("|".join(alternatives))
        replacements.append(Replacement(rule.name, pattern, "".join(heads) + mask + "".join(tails)))
    return replacements


def gate_pattern(rules: Sequence[Rule] = VALUE_RULES) -> str:
    """What every string a rule would change, and every sensitive key, contains: the host's
    byte-level pre-check (:class:`~tbmon.processors.redaction.Prefilter`: its words in any case,
    the "key" compounds, each rule's candidate pattern), as one RE2 pattern. A statement group
    runs only for an item with a string or key that matches it, so most spans cost one scan."""
    words = "|".join(re.escape(word) for word in KEY_WORDS)
    parts = [f"(?i:{words})", f"(?i:{_KEY_COMPOUND.pattern.decode()})"]
    for rule in rules:
        if rule.prefilter is not None:
            flags = "(?i)" if rule.prefilter.flags & re.IGNORECASE else ""
            parts.append(f"(?:{flags}{_re2_repeats(rule.prefilter.pattern.decode())})")
    return "|".join(parts)


# -- sensitive keys ---------------------------------------------------------------------------

_ALNUM = "A-Za-z0-9"


def _spellings(word: str, starts_upper: bool, ends_lower: bool) -> str:
    """The spellings of one lower-case word that normalise to it without a camelCase hump
    inside (an upper-case head, a lower-case tail), as an alternation."""
    first = 1 if starts_upper else 0
    last = len(word) - 1 if ends_lower else len(word)
    return "(?:" + "|".join(word[:i].upper() + word[i:] for i in range(first, last + 1)) + ")"


def _word_patterns(word: str) -> Iterator[str]:
    """Raw-key patterns whose normalisation ends in ``word`` (parts joined by "_")."""
    parts = word.split("_")
    # Between parts: separators, or a camelCase hump (a lower-case end, an upper-case start).
    for joins in _products(("sep", "hump"), len(parts) - 1):
        for boundary in ("start", "hump"):
            pieces = [f"(?:^|[^{_ALNUM}])" if boundary == "start" else "[a-z0-9]"]
            for index, part in enumerate(parts):
                starts_upper = (boundary == "hump") if index == 0 else joins[index - 1] == "hump"
                ends_lower = index < len(parts) - 1 and joins[index] == "hump"
                pieces.append(_spellings(part, starts_upper, ends_lower))
                if index < len(parts) - 1 and joins[index] == "sep":
                    pieces.append(f"[^{_ALNUM}]+")
            yield "".join(pieces)


def _products(choices: tuple[str, ...], count: int) -> list[tuple[str, ...]]:
    result: list[tuple[str, ...]] = [()]
    for _ in range(count):
        result = [(*prefix, choice) for prefix in result for choice in choices]
    return result


def key_pattern(words: Sequence[str] = SENSITIVE_KEY_WORDS) -> str:
    """An RE2 (and Python) pattern matching the raw keys the host masks by key."""
    alternatives = [pattern for word in words for pattern in _word_patterns(word)]
    return f"(?:{'|'.join(alternatives)})[^{_ALNUM}]*$"


# -- the transform processor ------------------------------------------------------------------


def _ottl(text: str) -> str:
    """A string literal of OTTL, for the collector's config (``$`` doubled: ``${...}`` would be
    read as a variable)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("$", "$$") + '"'


def _statements(maps: Sequence[str], strings: Sequence[tuple[str, str]]) -> list[str]:
    """Mask by key in each attribute map, then by value in the maps and the strings; each
    string is ``(path, condition)``."""
    key = _ottl(key_pattern())
    mask = _ottl(MASK)
    statements = [
        f"set({path}, MapEach({path}, (k, v) => When(() => IsMatch(k, {key}), {mask}, v)))"
        f" where Any({path}, (k, _) => IsMatch(k, {key}))"
        for path in maps
    ]
    for replacement in value_replacements():
        pattern, to = _ottl(replacement.pattern), _ottl(replacement.replacement)
        statements += [f'replace_all_patterns({path}, "value", {pattern}, {to})' for path in maps]
        statements += [
            f"replace_pattern({path}, {pattern}, {to})" + (f" where {where}" if where else "")
            for path, where in strings
        ]
    return statements


def _gate(maps: Sequence[str], strings: Sequence[tuple[str, str]]) -> str:
    """The condition of a statement group: a key or value of its maps, or one of its strings,
    may hold something to mask."""
    gate = _ottl(gate_pattern())
    tests = [f"Any({path}, (k, v) => IsMatch(k, {gate}) or IsMatch(v, {gate}))" for path in maps]
    tests += [f"IsMatch({path}, {gate})" for path, _ in strings]
    return " or ".join(tests)


def transform_processor() -> dict[str, Any]:
    """The ``transform/redact`` processor's configuration."""

    def groups(*contexts: tuple[Sequence[str], Sequence[tuple[str, str]]]) -> list[Any]:
        return [
            {"conditions": [_gate(maps, strings)], "statements": _statements(maps, strings)}
            for maps, strings in contexts
        ]

    return {
        "error_mode": "ignore",
        "trace_statements": groups(
            (["resource.attributes"], []),
            (["scope.attributes"], []),
            (["span.attributes"], [("span.name", ""), ("span.status.message", "")]),
            (["spanevent.attributes"], [("spanevent.name", "")]),
        ),
        "log_statements": groups(
            (["resource.attributes"], []),
            (["scope.attributes"], []),
            (["log.attributes"], [("log.body", "IsString(log.body)")]),
            (["log.body"], []),
        ),
        "metric_statements": groups(
            (["resource.attributes"], []),
            (["scope.attributes"], []),
            (["datapoint.attributes"], []),
        ),
    }


def render_block() -> str:
    """The lines between the config's markers."""
    document = {"transform/redact": transform_processor()}
    text = yaml.safe_dump(document, sort_keys=False, width=10_000, allow_unicode=True)
    return "".join(f"  {line}\n" for line in text.splitlines())


def rendered_config(config: str) -> str:
    """``config`` (the collector's YAML) with the block between the markers rendered anew."""
    start, end = config.index(BEGIN), config.index(END)
    head = config[: config.index("\n", start) + 1]
    return head + render_block() + config[end:]


def main(argv: Sequence[str] = ()) -> int:
    """Rewrite the block in ``otel-collector/config.yaml`` (or the file given)."""
    from tbmon.settings import PROJECT_ROOT  # noqa: PLC0415 - only for the command

    path = Path(argv[0]) if argv else PROJECT_ROOT / "otel-collector" / "config.yaml"
    path.write_text(rendered_config(path.read_text()))
    print(f"rendered transform/redact into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
