"""Secret redaction: credentials are masked in every signal before any backend stores them.

Two kinds of rule:

- **By attribute key**: an attribute (span, span event, link, log, resource, scope, metric data
  point, or a key inside a map value) whose key ends in a sensitive word (``password``,
  ``passphrase``, ``secret``, ``token``, ``api_key``/``apiKey``, ``access_key``, ``private_key``,
  ``authorization``, ``cookie``, ``credentials``, ``signature`` ...; camelCase, dots, dashes
  and underscores all count as separators) has its whole value replaced by the mask.
- **By value pattern**, in every string (attribute values, span and event names, status
  messages, log bodies; bytes values are read as UTF-8 text): passwords in URLs and DSNs
  (``scheme://user:PASSWORD@host``: everything up to the last ``@`` of the URL, as a password
  may hold a raw ``/`` or ``@``), ``password=...``/``"api_key": "..."``/``Authorization: Bearer
  ...`` in text (a quoted value is masked to its closing quote; an unquoted one to the end of
  the token, or, after password/passwd/pwd/passphrase, to the next ``,``/``;``/``&`` or line
  end, because a pass phrase may have spaces), bearer tokens, Telegram bot tokens
  (``123456789:AA...``, 34 or 35 characters after the colon), AWS access key ids, GitHub,
  Slack, Stripe and OpenAI-style keys, JSON Web Tokens and PEM private keys. Only the secret part
  is masked (``postgresql://trader:[REDACTED]@db:5432/bots``).

Speed: a batch is first searched as serialized bytes (every string appears there verbatim) for
anything a rule could match; a batch without a candidate is passed on untouched, without being
parsed. In a batch with candidates, only the spans and log records they fall in are decoded
(only their attributes, when all of an item's candidates are there), and what was masked is
spliced back into the batch's bytes (:mod:`tbmon.processors._items`); the rest is not decoded.
Every pattern has bounded repetition, so a huge value costs linear time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import Counter as PrometheusCounter
from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tbmon import otlp_wire
from tbmon.processors._items import Items
from tbmon.processors._multisearch import compile_search
from tbmon.processors._wire import BODY, END, START, overlapped, rebuilt, subfields
from tbmon.processors._wire import Field as WireField
from tbmon.processors.api import (
    Batch,
    ExportLogsServiceRequest,
    ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
    MalformedBatchError,
    Processor,
)
from tbmon.processors.otlp import data_points
from tbmon.processors.settings import split_list
from tbmon.settings import TbmonSettings, read_settings

REDACTIONS = PrometheusCounter(
    "tbmon_processors_redactions",
    "Values the redaction plugin masked, by signal and rule.",
    ["signal", "rule"],
)

#: Last words of a sensitive attribute key, after normalisation (lower case, separators "_").
SENSITIVE_KEY_WORDS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "secret_key",
    "secretkey",
    "private_key",
    "privatekey",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "signature",
)

#: Lower-case words one of which every sensitive key and every key=value or bearer text
#: contains ("key" compounds are found by _key_compounds).
KEY_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "cookie",
    "credential",
    "signature",
    "bearer",
)
#: What may stand before "key" in a sensitive compound (api_key, accessKey, private-key...).
_KEY_COMPOUND_HEAD = rb"(?:api|access|secret|private)[^a-z0-9]{0,3}"
_KEY_PREFIX = re.compile(_KEY_COMPOUND_HEAD + rb"$")
#: The same compounds for the one-pass search, which has no lower-cased copy to look in.
_KEY_COMPOUND = re.compile(_KEY_COMPOUND_HEAD + rb"key", re.IGNORECASE)

_TEXT_KEYS = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?secret|"
    r"api[_-]?key|apikey|x-api-key|access[_-]?key|secret[_-]?key|private[_-]?key|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|bot[_-]?token|token|"
    r"signature|authorization"
)
#: Keys whose unquoted value may be several words.
_PHRASE_KEYS = r"password|passwd|pwd|passphrase"
#: Between a key and its value ("key": , key = ...), and an optional scheme before a value.
_ASSIGN = r"[\"']?\s{0,3}[:=]\s{0,3}"
_SCHEME = r"(?:(?:bearer|basic|token)\s+)?"
_UNQUOTED = r"\[[^\s\"',;&}\]]{0,1022}\]?|[^\s\"',;&}\]\[][^\s\"',;&}\]]{0,1023}"


@dataclass(frozen=True)
class Rule:
    """A value pattern: masks group ``secret`` when the pattern has one, else the whole match.

    ``needles``: lower-case substrings, one of which every match contains (a string without any
    is skipped without running the pattern). ``prefilter``: the pattern's core as bytes, for
    finding candidates in a serialized batch (None: the text contains one of KEY_WORDS).
    """

    name: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...]
    prefilter: re.Pattern[bytes] | None
    #: Literals one of which every prefilter match starts with: the prefilter then runs only
    #: where ``bytes.find`` finds one. Faster than the regex scan only for long literals (a
    #: 185 KB batch: 43 us against 125 us for "PRIVATE KEY-----"; slower for 3-4 bytes).
    anchors: tuple[bytes, ...] = ()


def _rule(
    name: str,
    pattern: str,
    needles: tuple[str, ...],
    prefilter: bytes | None,
    *,
    flags: int = 0,
    anchors: tuple[bytes, ...] = (),
) -> Rule:
    compiled_prefilter = re.compile(prefilter, flags & re.IGNORECASE) if prefilter else None
    return Rule(name, re.compile(pattern, flags | re.ASCII), needles, compiled_prefilter, anchors)


#: Value rules. Those without a prefilter are found through KEY_WORDS (their text contains one).
VALUE_RULES = (
    _rule(
        "private_key",
        r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[\s\S]{0,20000}?"
        r"(?:-----END[A-Z ]{0,40}PRIVATE KEY-----|$)",
        ("private key-----",),
        rb"PRIVATE KEY-----",
        anchors=(b"PRIVATE KEY-----",),
    ),
    # Up to the last "@" of the URL: a password may hold a raw "/", "?", "#" or "@". Not a port
    # followed by a path (http://host:8080/?mail=a@b is no password).
    _rule(
        "url_password",
        # (Written without look-arounds, so that the collector's RE2 runs the same pattern:
        # the secret starts with a non-digit, with digits not followed by / ? #, with six
        # digits, or is all digits; the "@" is matched and kept.)
        r"://[^:/?#@\s]{0,256}:(?P<secret>(?:[^\s\"'<>0-9]|[0-9]{1,5}[^\s\"'<>0-9/?#]|[0-9]{6})"
        r"[^\s\"'<>]{0,255}|[0-9]{1,5})@",
        ("://",),
        rb"://[^:/?#@\s]{0,256}:[^\s\"'<>]{1,256}@",
    ),
    # One pattern, so that a value one alternative masked is not matched again by another.
    # (Flat alternatives without look-arounds or back-references, for the collector's RE2.)
    _rule(
        "key_value",
        # A pass phrase, unquoted: to the next , ; & or line end, spaces and all (people put
        # spaces in pass phrases; masking the words after one is the safe side).
        rf"(?:{_PHRASE_KEYS}){_ASSIGN}"
        r"(?P<secret_phrase>[^\s,;&\"'](?:[^,;&\r\n]{0,1022}[^\s,;&])?)"
        # Quoted: to the closing quote (or 1024 characters when there is none).
        rf"|(?:{_TEXT_KEYS}){_ASSIGN}\"{_SCHEME}(?P<secret_dq>[^\"]{{1,1024}})"
        rf"|(?:{_TEXT_KEYS}){_ASSIGN}'{_SCHEME}(?P<secret_sq>[^']{{1,1024}})"
        # Any other key, unquoted: to the end of the token; from a "[", to its "]" (so that the
        # mask itself, "[REDACTED]" from the collector's pass, is masked whole: unchanged).
        rf"|(?:{_TEXT_KEYS}){_ASSIGN}{_SCHEME}(?P<secret>{_UNQUOTED})",
        ("pass", "pwd", "secret", "key", "token", "signature", "authorization"),
        None,
        flags=re.IGNORECASE,
    ),
    _rule(
        "bearer",
        r"\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,4096})",
        ("bearer",),
        None,
        flags=re.IGNORECASE,
    ),
    _rule(
        "telegram_bot_token",
        # 35 characters after the colon, or 34 (as in Telegram's own examples).
        r"\d{6,10}:[A-Za-z0-9_-]{34,35}",
        (":",),
        rb":[A-Za-z0-9_-]{34}",
    ),
    _rule(
        "aws_access_key",
        r"(?:AKIA|ASIA)[0-9A-Z]{16}",
        ("akia", "asia"),
        rb"A[KS]IA[0-9A-Z]{16}",
    ),
    _rule(
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{36,255}",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        rb"gh[pousr]_[A-Za-z0-9]{36}",
    ),
    _rule(
        "slack_token",
        r"xox[abposr]-[A-Za-z0-9-]{10,255}",
        ("xox",),
        rb"xox[abposr]-[A-Za-z0-9-]{10}",
    ),
    _rule(
        "stripe_key",
        r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,255}",
        ("k_live_", "k_test_"),
        rb"k_(?:live|test)_[A-Za-z0-9]{16}",
    ),
    _rule(
        "api_key",
        r"sk-[A-Za-z0-9_-]{20,255}",
        ("sk-",),
        rb"sk-[A-Za-z0-9_-]{20}",
    ),
    _rule(
        "jwt",
        r"eyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{0,4096}",
        ("eyj",),
        rb"eyJ[A-Za-z0-9_-]{5,4096}\.eyJ",
    ),
)


class Prefilter:
    """Whether anything in a serialized batch could be a secret, without parsing it.

    Searches for the sensitive words in any case, the "key" compounds and each rule's byte
    pattern. Every string of a batch appears verbatim in its bytes, so this never misses what
    the rules would mask. The built-in searches run in one pass (:mod:`._multisearch`, about
    0.3 ms for a 185 KB batch) when Hyperscan is installed, else one by one (about 2.1 ms);
    ``extra`` rules (the user's own patterns, in Python's regex syntax) always one by one.
    """

    def __init__(
        self,
        words: Iterable[str],
        rules: Iterable[Rule],
        extra: Iterable[Rule] = (),
        *,
        one_pass: bool = True,
    ) -> None:
        self._words = tuple(word.encode() for word in words)
        builtin = tuple(rules)
        prefilters = tuple(rule.prefilter for rule in builtin if rule.prefilter is not None)
        self._search = (
            compile_search(self._words, (*prefilters, _KEY_COMPOUND)) if one_pass else None
        )
        # One by one: the user's rules, and the built-in ones when there is no one-pass search.
        by_one = (builtin if self._search is None else ()) + tuple(extra)
        self._anchored = tuple(
            (rule.prefilter, rule.anchors)
            for rule in by_one
            if rule.prefilter is not None and rule.anchors
        )
        self._scanned = tuple(
            rule.prefilter for rule in by_one if rule.prefilter is not None and not rule.anchors
        )
        self._by_one_patterns = (*(pattern for pattern, _ in self._anchored), *self._scanned)

    @property
    def one_pass(self) -> bool:
        """Whether the built-in searches run in one pass (Hyperscan)."""
        return self._search is not None

    def __call__(self, raw: bytes) -> bool:
        if self._search is not None:
            if self._search.any(raw):
                return True
        else:
            lowered = raw.lower()
            if any(word in lowered for word in self._words):
                return True
            if next(_key_compounds(lowered), None) is not None:
                return True
        return any(pattern.search(raw) for pattern in self._by_one_patterns)

    def positions(self, raw: bytes) -> list[tuple[int, int]]:
        """Where in ``raw`` the candidates lie, (start, end): what ``__call__`` looks for, every
        occurrence. About the cost of ``__call__`` on a batch without any."""
        if self._search is not None:
            found = self._search.spans(raw)
        else:
            lowered = raw.lower()
            found = []
            for word in self._words:  # find() is several times faster than a regex alternation
                position = lowered.find(word)
                while position != -1:
                    found.append((position, position + len(word)))
                    position = lowered.find(word, position + 1)
            found += _key_compounds(lowered)
        for pattern, anchors in self._anchored:
            for anchor in anchors:
                position = raw.find(anchor)
                while position != -1:
                    if match := pattern.match(raw, position):
                        found.append(match.span())
                    position = raw.find(anchor, position + 1)
        for pattern in self._scanned:
            found += [match.span() for match in pattern.finditer(raw)]
        return found


def _key_compounds(lowered: bytes) -> Iterator[tuple[int, int]]:
    """Where "key" follows api, access, secret or private (and a separator)."""
    position = lowered.find(b"key")
    while position != -1:
        if match := _KEY_PREFIX.search(lowered, max(0, position - 10), position):
            yield match.start(), position + 3
        position = lowered.find(b"key", position + 3)


class RedactionSettings(TbmonSettings):
    """``PROCESSORS_REDACTION_*``."""

    model_config = SettingsConfigDict(env_prefix="PROCESSORS_REDACTION_")

    mask: str = Field(default="[REDACTED]", min_length=1, description="What replaces a secret.")
    extra_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More sensitive key last words, comma-separated (e.g. pin,otp).",
    )
    extra_patterns: list[str] = Field(
        default_factory=list,
        description=(
            'More value patterns, a JSON list of regular expressions: ["ACME-[0-9]{12}"]. A group '
            "named secret limits the mask to it. Avoid anchors and look-arounds: the byte-level "
            "pre-check runs the same pattern on the serialized batch."
        ),
    )

    _split = field_validator("extra_keys", mode="before")(split_list)

    @field_validator("extra_keys")
    @classmethod
    def _normalise_keys(cls, keys: list[str]) -> list[str]:
        return [_normalise(key) for key in keys]

    @field_validator("extra_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
                re.compile(pattern.encode())
            except (re.error, UnicodeEncodeError) as error:
                raise ValueError(f"pattern {pattern!r} does not compile: {error}") from error
        return patterns


#: The attributes' field numbers in Span and LogRecord.
_SPAN_ATTRIBUTES = otlp_wire.Span.ATTRIBUTES
_LOG_ATTRIBUTES = otlp_wire.LogRecord.ATTRIBUTES

#: Bounds of the set of strings known clean (about 2 MiB at most).
_CLEAN_MAX_ENTRIES = 8192
_CLEAN_MAX_LENGTH = 256

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def _normalise(key: str) -> str:
    return _SEPARATORS.sub("_", _CAMEL.sub("_", key).lower()).strip("_")


class RedactionProcessor(Processor):
    """Masks secrets in spans, logs and metrics (see the module's docstring for the rules)."""

    #: A batch this plugin could not process may hold secrets: refuse it rather than pass it on.
    fail_closed = True
    #: Linear-time patterns, no I/O: runs on the host's loop (see Processor.runs_inline).
    runs_inline = True

    def __init__(self, settings: RedactionSettings | None = None) -> None:
        self.settings = settings or read_settings(RedactionSettings)
        self.mask = self.settings.mask
        words = [*SENSITIVE_KEY_WORDS, *self.settings.extra_keys]
        self._sensitive = re.compile(rf"(?:^|_)(?:{'|'.join(re.escape(word) for word in words)})$")
        extra = tuple(
            Rule(f"extra_{index}", re.compile(p), (), re.compile(p.encode()))
            for index, p in enumerate(self.settings.extra_patterns)
        )
        self._rules = VALUE_RULES + extra
        extra_words = [part for key in self.settings.extra_keys for part in key.split("_") if part]
        #: Whether a serialized batch may hold a secret (the hooks' cheap first step).
        self.suspect = Prefilter([*KEY_WORDS, *extra_words], VALUE_RULES, extra)
        # Per string, one search for every rule's needles at once: most strings of a batch
        # that holds a secret have none, and skip the rules (those without needles still run).
        needles = sorted({needle for rule in self._rules for needle in rule.needles})
        self._has_needle = re.compile("|".join(re.escape(n) for n in needles)).search
        self._unscreened = tuple(rule for rule in self._rules if not rule.needles)
        #: Strings found to hold nothing to mask (so never a secret): attribute values repeat
        #: (exchange, symbol, URL), and a repeat then costs a set lookup.
        self._clean: set[str] = set()
        self._is_sensitive = lru_cache(maxsize=4096)(self._key_is_sensitive)

    # -- hooks --------------------------------------------------------------------------------

    def process_spans(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        raw = batch.raw
        candidates = self.suspect.positions(raw)
        if not candidates:
            return batch
        try:
            items = Items(raw, Span)
        except DecodeError:
            batch.read()  # names the problem, if protobuf agrees the batch is malformed
            return self._walk_spans_message(batch)
        walk = _Walk(self)
        self._walk_envelope(walk, items)
        for field, _, spans in items.envelope.items_with(candidates):
            if self._walk_attributes_only(walk, items, field, spans, _SPAN_ATTRIBUTES):
                continue
            self._walk_span(walk, items.item(field))
            if walk.take_dirty():
                items.edited(field)
        walk.publish("spans")
        return Batch(batch.message_type, items.result()) if items.changed else batch

    def process_logs(
        self, batch: Batch[ExportLogsServiceRequest]
    ) -> Batch[ExportLogsServiceRequest]:
        raw = batch.raw
        candidates = self.suspect.positions(raw)
        if not candidates:
            return batch
        try:
            items = Items(raw, LogRecord)
        except DecodeError:
            batch.read()
            return self._walk_logs_message(batch)
        walk = _Walk(self)
        self._walk_envelope(walk, items)
        for field, _, spans in items.envelope.items_with(candidates):
            if self._walk_attributes_only(walk, items, field, spans, _LOG_ATTRIBUTES):
                continue
            record = items.item(field)
            walk.value(record.body)
            walk.attributes(record.attributes)
            if walk.take_dirty():
                items.edited(field)
        walk.publish("logs")
        return Batch(batch.message_type, items.result()) if items.changed else batch

    @staticmethod
    def _walk_attributes_only(
        walk: _Walk,
        items: Items[Any],
        item: WireField,
        spans: list[tuple[int, int]],
        attributes: int,
    ) -> bool:
        """When every candidate in an item falls in its attributes (field ``attributes``), walk
        only those attributes, decoded one by one, and splice the masked ones back; False when a
        candidate falls elsewhere (name, events, body...): the caller walks the whole item.

        A string that holds something to mask has a candidate in it, so the attributes no
        candidate falls in are clean.
        """
        raw = items.raw
        try:
            fields = subfields(raw, item, until=max(end for _, end in spans))
        except DecodeError as error:
            raise MalformedBatchError("not a valid item inside the batch") from error
        marked = overlapped(
            [field[START] for _, field in fields], [field[END] for _, field in fields], spans
        )
        touched = [fields[index] for index in sorted(marked)]
        if any(number != attributes for number, _ in touched):
            return False
        masked = {}
        for _, field in touched:
            try:
                key_value = KeyValue.FromString(raw[field[BODY] : field[END]])
            except DecodeError as error:
                raise MalformedBatchError("not a valid attribute inside the batch") from error
            walk.attributes((key_value,))
            if walk.take_dirty():
                masked[field] = key_value.SerializeToString()
        if masked:
            items.replace(item, rebuilt(raw, item, masked))
        return True

    @staticmethod
    def _walk_envelope(walk: _Walk, items: Items[Any]) -> None:
        """Resource and scope attributes are always walked (a candidate there is in no item)."""
        parts: list[tuple[WireField, Resource | InstrumentationScope]] = [
            *items.resources(),
            *items.scopes(),
        ]
        for field, part in parts:
            walk.attributes(part.attributes)
            if walk.take_dirty():
                items.edited(field)

    @staticmethod
    def _walk_span(walk: _Walk, span: Span) -> None:
        if (name := walk.changed(span.name)) is not None:
            span.name = name
        if span.HasField("status") and (message := walk.changed(span.status.message)) is not None:
            span.status.message = message
        walk.attributes(span.attributes)
        for event in span.events:
            if (name := walk.changed(event.name)) is not None:
                event.name = name
            walk.attributes(event.attributes)
        for link in span.links:
            walk.attributes(link.attributes)

    def _walk_spans_message(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        """Every span of the decoded request (when the envelope reader refused the bytes but
        protobuf did not)."""
        walk = _Walk(self)
        for resource_spans in batch.read().resource_spans:
            walk.attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                walk.attributes(scope_spans.scope.attributes)
                for span in scope_spans.spans:
                    self._walk_span(walk, span)
        if walk.take_dirty():
            batch.edit()
        walk.publish("spans")
        return batch

    def _walk_logs_message(
        self, batch: Batch[ExportLogsServiceRequest]
    ) -> Batch[ExportLogsServiceRequest]:
        walk = _Walk(self)
        for resource_logs in batch.read().resource_logs:
            walk.attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                walk.attributes(scope_logs.scope.attributes)
                for record in scope_logs.log_records:
                    walk.value(record.body)
                    walk.attributes(record.attributes)
        if walk.take_dirty():
            batch.edit()
        walk.publish("logs")
        return batch

    def process_metrics(
        self, batch: Batch[ExportMetricsServiceRequest]
    ) -> Batch[ExportMetricsServiceRequest]:
        if not self.suspect(batch.raw):
            return batch
        walk = _Walk(self)
        for resource_metrics in batch.read().resource_metrics:
            walk.attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                walk.attributes(scope_metrics.scope.attributes)
                for metric in scope_metrics.metrics:
                    for point in data_points(metric):
                        walk.attributes(point.attributes)  # type: ignore[attr-defined]
                        for exemplar in getattr(point, "exemplars", ()):
                            walk.attributes(exemplar.filtered_attributes)
        if walk.take_dirty():
            batch.edit()
        walk.publish("metrics")
        return batch

    # -- rules --------------------------------------------------------------------------------

    def _key_is_sensitive(self, key: str) -> bool:
        return self._sensitive.search(_normalise(key)) is not None

    def redact_text(self, text: str, hits: Counter[str] | None = None) -> str:
        """``text`` with every secret the value rules find masked."""
        if text in self._clean:
            return text
        original, lowered = text, text.lower()
        for rule in self._rules if self._has_needle(lowered) else self._unscreened:
            if rule.needles and not any(needle in lowered for needle in rule.needles):
                continue
            masked, count = rule.pattern.subn(self._masker, text)
            if count:
                text, lowered = masked, masked.lower()
                if hits is not None:
                    hits[rule.name] += count
        if text is original and len(text) <= _CLEAN_MAX_LENGTH:
            if len(self._clean) >= _CLEAN_MAX_ENTRIES:
                self._clean.clear()
            self._clean.add(text)
        return text

    def _masker(self, match: re.Match[str]) -> str:
        """The match with its ``secret*`` group that took part masked (all of it if none)."""
        for name in match.re.groupindex:
            if name.startswith("secret") and match.start(name) != -1:
                whole, start = match.group(0), match.start()
                return (
                    whole[: match.start(name) - start]
                    + self.mask
                    + whole[match.end(name) - start :]
                )
        return self.mask

    def key_is_sensitive(self, key: str) -> bool:
        """Whether an attribute with this key has its whole value masked."""
        return self._is_sensitive(key)


class _Walk:
    """One pass over decoded messages: masks in place, and says when it did (:attr:`dirty`)."""

    def __init__(self, redactor: RedactionProcessor) -> None:
        self.redactor = redactor
        self.hits: Counter[str] = Counter()
        #: Whether something was masked since the last :meth:`take_dirty`.
        self.dirty = False

    def take_dirty(self) -> bool:
        dirty, self.dirty = self.dirty, False
        return dirty

    def changed(self, text: str) -> str | None:
        """``text`` masked, or None when there was nothing to mask."""
        if not text:
            return None
        masked = self.redactor.redact_text(text, self.hits)
        if masked is text:
            return None
        self.dirty = True
        return masked

    def value(self, value: AnyValue) -> None:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            if (masked := self.changed(value.string_value)) is not None:
                value.string_value = masked
        elif kind == "bytes_value":
            # Bytes bodies are mostly text; bytes that are not UTF-8 survive unchanged.
            text = value.bytes_value.decode("utf-8", "surrogateescape")
            if (masked := self.changed(text)) is not None:
                value.bytes_value = masked.encode("utf-8", "surrogateescape")
        elif kind == "array_value":
            for item in value.array_value.values:
                self.value(item)
        elif kind == "kvlist_value":
            self.attributes(value.kvlist_value.values)

    def attributes(self, key_values: Iterable[KeyValue]) -> None:
        for kv in key_values:
            if self.redactor.key_is_sensitive(kv.key):
                if kv.value.WhichOneof("value") != "string_value" or kv.value.string_value != (
                    self.redactor.mask
                ):
                    self.dirty = True
                    kv.value.string_value = self.redactor.mask
                    self.hits["key"] += 1
            else:
                self.value(kv.value)

    def publish(self, signal: str) -> None:
        for rule, count in self.hits.items():
            REDACTIONS.labels(signal, rule).inc(count)
