"""The redaction rules as the collector's transform statements: secrets masked before they rest.

The collector writes what it accepted to its ingest queue on disk before the processors host
sees it, so the host's redaction alone would leave every secret readable in the queue files.
``transform/redact`` in the collector config (``tbmon.collector``) runs the same rules first, in the
receiving pipeline (synchronously, before the queue). It is rendered from this package's one
definition of them (:data:`~tbmon.processors.redaction.SENSITIVE_KEY_WORDS`,
:data:`~tbmon.processors.redaction.VALUE_RULES`), never edited by hand:

    python -m tbmon.processors.collector_rules otel-collector/src/tbmon/collector/config.yaml
    tests/test_collector_redaction.py              # fails when the block is stale

The value patterns are written in the common ground of Python's ``re`` and RE2 (no look-arounds
or back-references), so each means the same in both; the rendering only changes what RE2 spells
differently: a repetition above RE2's limit of 1,000 is made unbounded (RE2 needs no bound: it
runs in linear time), and the text around the ``secret`` group is kept through named groups (one
pattern a rule, its alternatives together, as in Python). The sensitive keys (a key whose last
words, split at separators and camelCase humps, are one of the words) become one RE2 pattern
over the raw key, its spellings factored into a trie.

Speed: Go's ``regexp`` has no DFA, so an alternation costs it time for every alternative at
every position (about 200 times a literal's search), and a rule run over every value of every
item is what made this stage cost 115 us of collector CPU a span. So each item is screened
first, with the host's own pre-checks: its strings, keys and values are joined once and
lower-cased, then one literal search per word and one literal-prefixed pattern per rule
(:class:`Screen`) say which steps may change something; the others are skipped. A clean
ccxt-like span costs about 9 us, one with a sensitive key about 25 us more (the key pattern runs
over each of its keys): 16 us a span in ``python -m bench ingest`` (docs/performance.md).

Covered before the queue: resource, scope, span, span event, log record and data point
attributes (masked by key, then by value), span and event names, span status messages and log
bodies (strings, and the values of map bodies), and values nested in maps or arrays (attribute
values and body values that are maps or arrays, array bodies). OTTL has no recursion, so a
nested value in which the item's screen found something (and that itself holds a word or a
rule's screen) is replaced by its JSON text, where the value rules then run as on any string,
and a member whose key the host masks has its scalar value masked (:func:`nested_key_pattern`):
such a value reaches the host as a string, masked, its structure lost; values without a
candidate keep theirs. Not covered there (the host's pass, which remains the reference, masks
them before any backend): span links, bytes bodies, a map or array under a sensitive key inside
a nested value (its strings are still masked by value), and the host's
PROCESSORS_REDACTION_EXTRA_* settings.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import yaml

from tbmon.processors.redaction import (
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


_BOUNDED = re.compile(r"\{(\d+),\d+\}")


def _unbounded(pattern: str) -> str:
    """``pattern`` with every ``{m,n}`` made ``{m,}``: it matches wherever ``pattern`` does, and
    in a text whose characters were escaped (a value quoted in the concatenation) too."""
    return _BOUNDED.sub(r"{\1,}", pattern)


@dataclass(frozen=True)
class Screen:
    """What an item's text must hold for a step to be worth running: one of ``literals``
    (lower case) in the text lower-cased, or a match of ``pattern`` (RE2) in the text as it is.

    Each pattern starts with a literal, and literals are searched one by one: RE2 in Go's
    ``regexp`` has no DFA (an alternation costs it time for every alternative at every
    position, about 200 times a literal's), but it jumps to a literal prefix with
    ``strings.Index``. So a clean item costs a few string searches, not every rule over every
    value."""

    literals: tuple[str, ...] = ()
    pattern: str | None = None


def _shortest(literals: Iterable[str]) -> tuple[str, ...]:
    """``literals`` without those that contain another (found wherever the other is)."""
    unique = set(literals)
    return tuple(sorted(w for w in unique if not any(o != w and o in w for o in unique)))


def key_screen(words: Sequence[str] = SENSITIVE_KEY_WORDS) -> Screen:
    """Every sensitive key, lower-cased, contains the last part of its word (the key ends in the
    word, and the normalisation only puts separators between parts): ``key`` for api_key,
    accessKey...; ``pass`` for password, passphrase..."""
    return Screen(_shortest(word.split("_")[-1] for word in words))


def rule_screen(rule: Rule) -> Screen:
    """The host's own screening of a rule: its byte-level pre-check when it has one (it matches
    wherever the rule does), else its needles (the host skips a string without any)."""
    if rule.prefilter is None:
        return Screen(_shortest(rule.needles))
    flags = "(?i)" if rule.prefilter.flags & re.IGNORECASE else ""
    return Screen(pattern=flags + _unbounded(rule.prefilter.pattern.decode()))


def words_screen(rules: Sequence[Rule] = VALUE_RULES) -> Screen:
    """The words of the key screen and of the rules screened by needles: an item without any
    skips those steps after one search per word."""
    literals = [*key_screen().literals]
    literals += [needle for rule in rules if rule.prefilter is None for needle in rule.needles]
    return Screen(_shortest(literals))


# -- sensitive keys ---------------------------------------------------------------------------

_ALNUM = "A-Za-z0-9"


_SEPARATORS = f"[^{_ALNUM}]+"
#: A word's parts (and humps) follow the start of the key or a separator, or a camelCase hump.
_BOUNDARIES = {"start": f"(?:^|[^{_ALNUM}])", "hump": "[a-z0-9]"}


def _spellings(word: str, starts_upper: bool, ends_lower: bool) -> list[str]:
    """The spellings of one lower-case word that normalise to it without a camelCase hump
    inside (an upper-case head, a lower-case tail)."""
    first = 1 if starts_upper else 0
    last = len(word) - 1 if ends_lower else len(word)
    return [word[:i].upper() + word[i:] for i in range(first, last + 1)]


def _word_spellings(word: str, boundary: str) -> Iterator[tuple[str, ...]]:
    """The raw-key endings whose normalisation ends in ``word`` (parts joined by "_") after
    ``boundary``, as tokens: characters, and runs of separators."""
    parts = word.split("_")
    # Between parts: separators, or a camelCase hump (a lower-case end, an upper-case start).
    for joins in product(("sep", "hump"), repeat=len(parts) - 1):
        choices: list[list[tuple[str, ...]]] = []
        for index, part in enumerate(parts):
            starts_upper = (boundary == "hump") if index == 0 else joins[index - 1] == "hump"
            ends_lower = index < len(parts) - 1 and joins[index] == "hump"
            separator = (_SEPARATORS,) if index < len(parts) - 1 and joins[index] == "sep" else ()
            choices.append(
                [(*spelling, *separator) for spelling in _spellings(part, starts_upper, ends_lower)]
            )
        for pieces in product(*choices):
            yield tuple(token for piece in pieces for token in piece)


def _trie_pattern(spellings: Iterable[tuple[str, ...]]) -> str:
    """The spellings as one alternation factored into a trie: RE2 (Go's ``regexp``, an NFA
    without a DFA) then follows a few branches at each position of a key instead of every
    spelling (about 12 times faster on a 32-character key: 2.8 us against 33)."""
    trie: dict[str, Any] = {}
    for tokens in spellings:
        node = trie
        for token in tokens:
            node = node.setdefault(token, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [
            (token if token == _SEPARATORS else re.escape(token)) + render(child)
            for token, child in sorted(node.items())
            if token
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        if "" in node:
            return f"(?:{body})?"
        return body

    return render(trie)


def key_pattern(words: Sequence[str] = SENSITIVE_KEY_WORDS) -> str:
    """An RE2 (and Python) pattern matching the raw keys the host masks by key."""
    alternatives = [
        prefix + _trie_pattern(s for word in words for s in _word_spellings(word, boundary))
        for boundary, prefix in _BOUNDARIES.items()
    ]
    return f"(?:{'|'.join(alternatives)})[^{_ALNUM}]*$"


#: A JSON string, or a scalar, as a member's value in the JSON text OTTL makes of a map.
_JSON_SCALAR = r'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false'
#: A separator inside a JSON key (a quote or a backslash would leave the key).
_KEY_SEPARATORS = '[^A-Za-z0-9"\\\\]+'


def nested_key_pattern(words: Sequence[str] = SENSITIVE_KEY_WORDS) -> str:
    """An RE2 (and Python) pattern matching, in the JSON text of a map or array, a member whose
    key the host masks (:func:`key_pattern`'s spellings, within the quotes) with its scalar
    value; ``head`` keeps the key, the value goes. A member whose value is itself a map or an
    array does not match."""
    tries = {
        boundary: _trie_pattern(
            s for word in words for s in _word_spellings(word, boundary)
        ).replace(_SEPARATORS, _KEY_SEPARATORS)
        for boundary in _BOUNDARIES
    }
    inside = '[^"\\\\]*'
    key = (
        f'"(?:(?:{inside}[^A-Za-z0-9"\\\\])?{tries["start"]}|{inside}[a-z0-9]{tries["hump"]})'
        f'[^A-Za-z0-9"\\\\]*"'
    )
    return f"(?P<head>{key}\\s*:\\s*)(?:{_JSON_SCALAR})"


def nested_screen(rules: Sequence[Rule] = VALUE_RULES) -> str:
    """One RE2 pattern over a nested value's JSON text: whether it holds a word of
    :func:`words_screen` (any case) or a match of a rule's screen. A nested value without one
    keeps its structure."""
    words = words_screen(rules).literals
    alternatives = [f"(?i:{'|'.join(re.escape(word) for word in words)})"]
    for rule in rules:
        pattern = rule_screen(rule).pattern
        if pattern is not None:
            flagged = pattern.startswith("(?i)")
            body = pattern.removeprefix("(?i)")
            alternatives.append(f"(?i:{body})" if flagged else f"(?:{body})")
    return "|".join(alternatives)


# -- the transform processor ------------------------------------------------------------------


def _ottl(text: str) -> str:
    """A string literal of OTTL, for the collector's config (``$`` doubled: ``${...}`` would be
    read as a variable)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("$", "$$") + '"'


@dataclass(frozen=True)
class Context:
    """One OTTL context's statement group: its attribute maps and its strings, each with the
    condition under which it is one (a log body is a string or a map)."""

    name: str
    maps: tuple[tuple[str, str], ...]
    strings: tuple[tuple[str, str], ...] = ()
    #: Values that may be an array as a whole (a log body): made their JSON text when nested
    #: values would be.
    arrays: tuple[str, ...] = ()

    def cache(self, key: str) -> str:
        return f'{self.name}.cache["{key}"]'


#: The contexts masked before the queue, by signal.
CONTEXTS = {
    "trace_statements": (
        Context("resource", (("resource.attributes", ""),)),
        Context("scope", (("scope.attributes", ""),)),
        Context(
            "span",
            (("span.attributes", ""),),
            (("span.name", ""), ("span.status.message", "")),
        ),
        Context("spanevent", (("spanevent.attributes", ""),), (("spanevent.name", ""),)),
    ),
    "log_statements": (
        Context("resource", (("resource.attributes", ""),)),
        Context("scope", (("scope.attributes", ""),)),
        Context(
            "log",
            (("log.attributes", ""), ("log.body", "IsMap(log.body)")),
            (("log.body", "IsString(log.body)"),),
            ("log.body",),
        ),
    ),
    "metric_statements": (
        Context("resource", (("resource.attributes", ""),)),
        Context("scope", (("scope.attributes", ""),)),
        Context("datapoint", (("datapoint.attributes", ""),)),
    ),
}


def _any(context: Context, screen: Screen, lower: str) -> str:
    """Whether ``screen`` finds something in the context's cached texts (``lower``: the
    lower-cased one its literals are searched in)."""
    tests = [f"IsMatch({lower}, {_ottl(re.escape(literal))})" for literal in screen.literals]
    if screen.pattern is not None:
        tests.append(f"IsMatch({context.cache('text')}, {_ottl(screen.pattern)})")
    return tests[0] if len(tests) == 1 else f"({' or '.join(tests)})"


def _where(*conditions: str) -> str:
    present = [condition for condition in conditions if condition]
    return f" where {' and '.join(present)}" if present else ""


def statements(context: Context) -> list[str]:
    """The context's statements.

    First the item's text: its strings and its maps' keys and values, joined (``text``) and
    lower-cased (``lower``). Then what it may hold (``found.*``), from cheap searches of the
    text: the words (the sensitive keys' and those of the key=value and bearer rules), each
    rule's screen; only an item with a word has its values alone (``values``: the keys say
    nothing of them) searched for the needles of key=value and bearer. Then mask by key in each
    map, and by value in the maps and the strings, each step only when found. A text that could
    not be made finds everything (every step runs); a clean item costs the text, a search per
    screen and a look-up per step, and sets nothing (a cache write costs more than a search).
    """
    cache = context.cache
    text, lower, values = cache("text"), cache("lower"), cache("values")
    parts = [path for path, _ in context.strings]
    parts += [path if where else f"ToKeyValueString({path})" for path, where in context.maps]
    value_parts = [path for path, _ in context.strings]
    value_parts += [path if where else f"String(Values({path}))" for path, where in context.maps]
    found = {name: cache(f"found.{name}") for name in ("words", "keys")}
    found.update({rule.name: cache(f"found.{rule.name}") for rule in VALUE_RULES})
    words = f"{found['words']} == true"
    result = [
        f'set({text}, Concat([{", ".join(dict.fromkeys(parts))}], " "))',
        f"set({lower}, ToLowerCase({text}))",
        f"set({found['words']}, true) where {lower} == nil"
        f" or {_any(context, words_screen(), lower)}",
    ]
    result += [
        f"set({found[rule.name]}, true) where {text} == nil"
        f" or {_any(context, rule_screen(rule), lower)}"
        for rule in VALUE_RULES
        if rule.prefilter is not None
    ]
    result += [
        f'set({values}, ToLowerCase(Concat([{", ".join(dict.fromkeys(value_parts))}], " ")))'
        f" where {words}",
        f"set({found['keys']}, true) where {words}"
        f" and ({lower} == nil or {_any(context, key_screen(), lower)})",
    ]
    result += [
        f"set({found[rule.name]}, true) where {words}"
        f" and ({values} == nil or {_any(context, rule_screen(rule), values)})"
        for rule in VALUE_RULES
        if rule.prefilter is None
    ]
    # Nested values (maps, arrays) in which something may be found: their JSON text, which
    # the steps below mask as any string (a clean one keeps its structure).
    anything = " or ".join(
        f"{found[name]} == true"
        for name in ("words", *(rule.name for rule in VALUE_RULES if rule.prefilter is not None))
    )
    # Only in an item whose text has a bracket (a map or an array is JSON there).
    screen, nested, bodies = _ottl(nested_screen()), cache("found.nested"), cache("nested")
    result += [
        f"set({nested}, true) where ({anything})"
        f" and ({text} == nil or IsMatch({text}, {_ottl('[[{]')}))"
    ]
    result += [
        f"set({path}, MapEach({path}, (k, v) => When(() => (IsMap(v) or IsList(v))"
        f" and IsMatch(String(v), {screen}), String(v), v)))" + _where(where, f"{nested} == true")
        for path, where in context.maps
    ]
    for path in context.arrays:
        result += [
            f"set({bodies}, true) where {nested} == true and IsList({path})"
            f" and IsMatch(String({path}), {screen})",
            f"set({path}, String({path})) where {bodies} == true",
        ]
    key, mask = _ottl(key_pattern()), _ottl(MASK)
    result += [
        f"set({path}, MapEach({path}, (k, v) => When(() => IsMatch(k, {key}), {mask}, v)))"
        + _where(where, f"{found['keys']} == true")
        for path, where in context.maps
    ]
    # Inside JSON texts: members whose key is sensitive (only where the text has such a key
    # and a bracket).
    member, masked = _ottl(nested_key_pattern()), _ottl(f'${{head}}"{MASK}"')
    result += [
        f'replace_all_patterns({path}, "value", {member}, {masked})'
        + _where(where, f"{nested} == true", f"{found['keys']} == true")
        for path, where in context.maps
    ]
    result += [
        f"replace_pattern({path}, {member}, {masked}) where {bodies} == true"
        f" and {found['keys']} == true"
        for path in context.arrays
    ]
    for replacement in value_replacements():
        pattern, to = _ottl(replacement.pattern), _ottl(replacement.replacement)
        ready = f"{found[replacement.rule]} == true"
        result += [
            f'replace_all_patterns({path}, "value", {pattern}, {to})' + _where(where, ready)
            for path, where in context.maps
        ]
        result += [
            f"replace_pattern({path}, {pattern}, {to})" + _where(where, ready)
            for path, where in context.strings
        ]
    return result


def transform_processor() -> dict[str, Any]:
    """The ``transform/redact`` processor's configuration."""
    document: dict[str, Any] = {"error_mode": "ignore"}
    for signal, contexts in CONTEXTS.items():
        document[signal] = [{"statements": statements(context)} for context in contexts]
    return document


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
    """Rewrite the block in the collector config given
    (``otel-collector/src/tbmon/collector/config.yaml``)."""
    if len(argv) != 1:
        print(f"usage: python -m tbmon.processors.collector_rules CONFIG (got {list(argv)})")
        return 2
    path = Path(argv[0])
    path.write_text(rendered_config(path.read_text()))
    print(f"rendered transform/redact into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
