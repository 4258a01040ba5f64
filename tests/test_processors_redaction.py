"""The redaction plugin: every kind of secret, in every place it can hide, through the test kit."""

from __future__ import annotations

import logging
import platform
import random
import string
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tbmon.processors import Batch, otlp
from tbmon.processors._wire import Envelope
from tbmon.processors.api import ExportLogsServiceRequest, ExportTraceServiceRequest
from tbmon.processors.redaction import (
    KEY_WORDS,
    VALUE_RULES,
    Prefilter,
    RedactionProcessor,
    RedactionSettings,
)
from tbmon.processors.testing import (
    log_record,
    logs_batch,
    metrics_batch,
    record,
    run,
    span,
    spans_batch,
)

MASK = "[REDACTED]"
TELEGRAM = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
TELEGRAM_34 = "4839574812:AAFD39kkdpWt3ywyRZergyOLMaJhac60qc"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2lnbmF0dXJlLXZhbHVl"

# (text containing a secret, the secret, what must survive around it)
TEXTS = [
    ("postgresql://trader:hunter2@db:5432/bots", "hunter2", "postgresql://trader:"),
    ("redis://:s3cretpw@cache:6379/0", "s3cretpw", "@cache:6379/0"),
    ("amqp://bot:p@ss@mq/vhost", "p@ss", "@mq/vhost"),
    ("connecting with password=hunter2 now", "hunter2", "password="),
    ('{"api_key": "ak_live_12345678", "n": 1}', "ak_live_12345678", '"n": 1'),
    ("exchange passphrase: correct-horse", "correct-horse", "passphrase:"),
    ("GET /api?symbol=BTC&signature=deadbeef99&ts=1", "deadbeef99", "&ts=1"),
    ("Authorization: Bearer abcdef1234567890", "abcdef1234567890", "Authorization"),
    ("sent header bearer abcdef1234567890XYZ", "abcdef1234567890XYZ", "sent header"),
    (f"https://api.telegram.org/bot{TELEGRAM}/sendMessage", TELEGRAM, "/sendMessage"),
    (f"bot token {TELEGRAM} configured", TELEGRAM, "configured"),
    # 34 characters after the colon, as in Telegram's own examples.
    (f"bot token {TELEGRAM_34} configured", TELEGRAM_34, "configured"),
    ("aws key AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE", "in use"),
    ("token ghp_" + "a" * 36, "ghp_" + "a" * 36, "token"),
    ("slack xoxb-123456789012-abcdefghij", "xoxb-123456789012-abcdefghij", "slack"),
    ("openai sk-" + "A1b2C3d4" * 4, "sk-" + "A1b2C3d4" * 4, "openai"),
    ("stripe sk_live_" + "x" * 24, "sk_live_" + "x" * 24, "stripe"),
    (f"jwt {JWT} here", JWT, "here"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA",
        "",
    ),
]

SENSITIVE_KEYS = [
    "password",
    "db.password",
    "exchange.api_key",
    "apiKey",
    "x-api-key",
    "http.request.header.x-mbx-apikey",
    "http.request.header.authorization",
    "http.request.header.cookie",
    "ok-access-passphrase",
    "ok-access-key",
    "client_secret",
    "exchange.secret",
    "TELEGRAM_BOT_TOKEN",
    "auth_token",
    "refreshToken",
    "private_key",
    "aws.secret_access_key",
    "credentials",
    "request.signature",
]
HARMLESS_KEYS = [
    "llm.usage.total_tokens",
    "token_count",
    "keyboard",
    "cache.key",
    "bypass",
    "signal.strength",
    "author",
    "order.price",
]


@pytest.fixture(scope="module")
def redactor() -> RedactionProcessor:
    return RedactionProcessor(RedactionSettings(mask=MASK))


@pytest.mark.parametrize(("text", "secret", "kept"), TEXTS)
def test_value_patterns_mask_the_secret_and_keep_the_context(
    redactor: RedactionProcessor, text: str, secret: str, kept: str
) -> None:
    masked = redactor.redact_text(text)
    assert secret not in masked
    assert MASK in masked
    assert kept in masked


# (text, exactly what it becomes): values that are more than one token.
WHOLE_VALUES = [
    ("password='my secret'", f"password='{MASK}'"),
    (
        'login {"passphrase": "correct horse", "ok": 1}',
        f'login {{"passphrase": "{MASK}", "ok": 1}}',
    ),
    ("api_key = 'ab cd' sent", f"api_key = '{MASK}' sent"),
    ("password='unclosed quote and more", f"password='{MASK}"),
    # An unquoted pass phrase may have spaces: masked to the next , ; & or line end.
    ("passphrase=correct horse battery", f"passphrase={MASK}"),
    ("pwd: two words; user=bob", f"pwd: {MASK}; user=bob"),
    ("password=a b&next=1\nnext line", f"password={MASK}&next=1\nnext line"),
    # Other keys' unquoted values end at the token (a key, not a sentence).
    ("api_key=abc123 rejected", f"api_key={MASK} rejected"),
    # URL passwords: up to the last @, whatever they hold.
    ("https://bot:pa/ss@exchange/api", f"https://bot:{MASK}@exchange/api"),
    ("amqp://bot:a@b/c?d#e@mq:5672/vhost", f"amqp://bot:{MASK}@mq:5672/vhost"),
    (
        '{"dsn":"mysql://u:pw@db/x","mail":"a@b.c"}',
        f'{{"dsn":"mysql://u:{MASK}@db/x","mail":"a@b.c"}}',
    ),
    ("http://host:8080/find?mail=a@b.c", "http://host:8080/find?mail=a@b.c"),
]


@pytest.mark.parametrize(("text", "expected"), WHOLE_VALUES)
def test_multi_token_values_are_masked_whole(
    redactor: RedactionProcessor, text: str, expected: str
) -> None:
    assert redactor.redact_text(text) == expected


def test_bytes_values_are_read_as_text(redactor: RedactionProcessor) -> None:
    body = b"\xff\x00 login password=hunter2"
    batch = logs_batch(log_record(body), log_record(b"\xfe\x01 nothing"))
    records = [r for _, _, r in otlp.log_records(run(redactor, batch).message())]
    assert [r.body.bytes_value for r in records] == [
        b"\xff\x00 login password=" + MASK.encode(),
        b"\xfe\x01 nothing",
    ]


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_keys(redactor: RedactionProcessor, key: str) -> None:
    assert redactor.key_is_sensitive(key)


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_harmless_keys_stay(redactor: RedactionProcessor, key: str) -> None:
    assert not redactor.key_is_sensitive(key)


def test_plain_text_is_left_alone(redactor: RedactionProcessor) -> None:
    for text in (
        "order filled at 42000.5 on binance",
        "http://api.example.com:8080/v1/orders?symbol=BTC/USDT",
        "tokens used: 1234",
        "risk-check passed; signal strength 0.8",
    ):
        assert redactor.redact_text(text) is text


def test_spans_events_links_resource_and_scope(redactor: RedactionProcessor) -> None:
    secret_span = span(
        f"GET https://u:{'hunter2'}@exchange/api",
        {
            "exchange.api_key": "ak-123",
            "exchange.passphrase": 1234,
            "db.url": "postgresql://trader:hunter2@db:5432/bots",
            "headers": {"authorization": "Bearer abcdef1234567890", "accept": "json"},
            "tags": ["ok", f"tg {TELEGRAM}"],
            "order.price": 101.5,
        },
        events=[("login password=hunter2", {"detail": "Bearer abcdef1234567890"})],
    )
    secret_span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).attributes.extend(
        otlp.key_values({"secret": "linked"})
    )
    secret_span.status.message = "failed with token=abc123xyz"
    batch = spans_batch(
        secret_span, resource={"service.name": "bot", "deployment.secret": "s3cr3t"}
    )
    result = run(redactor, batch)

    assert result.error is None
    request = result.message()
    resource, _, forwarded = next(otlp.spans(request))
    text = str(request)
    for secret in ("hunter2", "ak-123", "1234", "abcdef1234567890", TELEGRAM, "linked", "s3cr3t"):
        assert secret not in text, secret
    attributes = otlp.attributes(forwarded.attributes)
    assert attributes["exchange.api_key"] == MASK
    assert attributes["exchange.passphrase"] == MASK
    assert attributes["db.url"] == f"postgresql://trader:{MASK}@db:5432/bots"
    assert attributes["headers"] == {"authorization": MASK, "accept": "json"}
    assert attributes["order.price"] == 101.5
    assert attributes["tags"] == ["ok", f"tg {MASK}"]
    assert otlp.attributes(resource.resource.attributes)["service.name"] == "bot"
    assert forwarded.events[0].name == f"login password={MASK}"
    assert forwarded.status.message == f"failed with token={MASK}"


def test_logs_bodies_and_attributes_through_the_sdk(redactor: RedactionProcessor) -> None:
    with record({"service.name": "bot", "db.dsn": "mysql://root:toor@db/x"}) as sdk:
        sdk.logger.warning(
            "login to postgresql://trader:hunter2@db failed",
            extra={"telegram.bot_token": TELEGRAM, "note": "api_key=abc123"},
        )
        sdk.logger.info("nothing secret here")
    result = run(redactor, sdk.logs())

    records = [r for _, _, r in otlp.log_records(result.message())]
    assert [r.body.string_value for r in records] == [
        f"login to postgresql://trader:{MASK}@db failed",
        "nothing secret here",
    ]
    attributes = otlp.attributes(records[0].attributes)
    assert attributes["telegram.bot_token"] == MASK
    assert attributes["note"] == f"api_key={MASK}"
    assert "toor" not in str(result.message())


def test_structured_log_bodies(redactor: RedactionProcessor) -> None:
    batch = logs_batch(log_record({"user": "bot", "password": "hunter2", "msg": "Bearer x" * 3}))
    body = next(otlp.log_records(run(redactor, batch).message()))[2].body
    assert otlp.python_value(body) == {"user": "bot", "password": MASK, "msg": "Bearer x" * 3}


def test_metric_point_attributes(redactor: RedactionProcessor) -> None:
    metric = otlp.gauge("x", [({"endpoint": "https://a:b1b2b3@h/"}, 1.0)], 1)
    result = run(redactor, metrics_batch(metric))
    point = next(otlp.metrics(result.message()))[1].gauge.data_points[0]
    assert otlp.attributes(point.attributes) == {"endpoint": f"https://a:{MASK}@h/"}


def test_a_clean_batch_is_forwarded_as_the_very_bytes(redactor: RedactionProcessor) -> None:
    with record() as sdk, sdk.tracer.start_as_current_span("fetch", attributes={"symbol": "X"}):
        pass
    batch = sdk.spans()
    result = run(redactor, batch)
    assert result.batch.raw == batch.raw
    assert not result.batch.edited


#: Hyperscan, and so the one-pass search, is installed with tbmon on x86-64 Linux only.
HAS_HYPERSCAN = sys.platform == "linux" and platform.machine() == "x86_64"
needs_hyperscan = pytest.mark.skipif(
    not HAS_HYPERSCAN, reason="Hyperscan has wheels for x86-64 Linux only"
)


@needs_hyperscan
def test_the_built_in_searches_run_in_one_pass(redactor: RedactionProcessor) -> None:
    """Hyperscan is installed with tbmon on x86-64 Linux; without it the pre-check is ten times
    slower (docs/performance.md), so a silent fall-back must not pass unnoticed."""
    assert redactor.suspect.one_pass


@pytest.mark.parametrize(
    "one_pass",
    [pytest.param(True, marks=needs_hyperscan), False],
    ids=["one pass", "one by one"],
)
def test_prefilter_never_misses_what_the_rules_mask(
    redactor: RedactionProcessor, one_pass: bool
) -> None:
    """Whatever the exact rules would mask, the byte-level pre-check must flag, whichever way
    it searches."""
    suspect = Prefilter([*KEY_WORDS, "custom"], VALUE_RULES, one_pass=one_pass)
    assert suspect.one_pass is one_pass
    rng = random.Random(7)
    noise = string.ascii_letters + string.digits + " .:/@=_-"
    masked = [text for text, _, _ in TEXTS] + [t for t, e in WHOLE_VALUES if t != e]
    for text in masked:
        for _ in range(20):
            padded = (
                "".join(rng.choices(noise, k=rng.randint(0, 40)))
                + " "
                + text
                + " "
                + "".join(rng.choices(noise, k=rng.randint(0, 40)))
            )
            raw = spans_batch(span("s", {"v": padded})).raw
            assert suspect(raw), padded
            # ... and place a candidate in the string, so its item is walked.
            start = raw.index(padded.encode())
            end = start + len(padded.encode())
            assert any(a < end and b > start for a, b in suspect.positions(raw)), padded
    for key in [*SENSITIVE_KEYS, "x-custom-header"]:
        raw = spans_batch(span("s", {key: "x"})).raw
        assert suspect(raw), key
        start = raw.index(key.encode())
        assert any(a < start + len(key) and b > start for a, b in suspect.positions(raw)), key
    clean = spans_batch(span("fetch_ticker", {"symbol": "BTC/USDT", "exchange": "binance"})).raw
    assert not suspect(clean)
    assert suspect.positions(clean) == []


def test_in_a_batch_of_many_only_the_items_with_a_secret_change(
    redactor: RedactionProcessor,
) -> None:
    """Spans and log records over several resources and scopes (with scope names, schema urls
    and resource attributes in between), secrets planted in random items: every one is masked,
    the other items come out as they went in."""
    rng = random.Random(11)
    places = [
        lambda: span("s", {"db.url": "postgresql://u:hunter2@db/x"}),
        lambda: span("login password=hunter2"),
        lambda: span("s", events=[("e", {"note": "token=hunter2"})]),
        lambda: span("s", {"nested": {"deep": ["x", "Bearer hunter2hunter2"]}}),
    ]
    trace = ExportTraceServiceRequest()
    logs = ExportLogsServiceRequest()
    planted = 0
    for r in range(3):
        resource_spans = trace.resource_spans.add(schema_url=f"https://schema/{r}")
        resource_spans.resource.attributes.extend(otlp.key_values({"service.name": f"bot-{r}"}))
        resource_logs = logs.resource_logs.add()
        for s in range(2):
            scope_spans = resource_spans.scope_spans.add(schema_url="x")
            scope_spans.scope.name = f"scope-{s}"
            scope_logs = resource_logs.scope_logs.add()
            for _ in range(rng.randint(0, 30)):
                secret = rng.random() < 0.15
                planted += secret
                scope_spans.spans.append(
                    rng.choice(places)() if secret else span("fetch", {"symbol": "BTC"})
                )
                scope_logs.log_records.append(
                    log_record("pwd: hunter2" if secret else "order filled", {"n": 1})
                )
    assert planted
    spans_out = run(redactor, Batch.of(trace)).message()
    logs_out = run(redactor, Batch.of(logs)).message()
    assert "hunter2" not in str(spans_out) + str(logs_out)
    assert _changed(otlp.spans(trace), otlp.spans(spans_out)) == planted
    assert _changed(otlp.log_records(logs), otlp.log_records(logs_out)) == planted


def _changed(before: Iterator[tuple[Any, Any, Any]], after: Iterator[tuple[Any, Any, Any]]) -> int:
    return sum(a[2] != b[2] for a, b in zip(before, after, strict=True))


def test_the_envelope_places_every_item() -> None:
    request = ExportTraceServiceRequest()
    for r in range(2):
        resource_spans = request.resource_spans.add(schema_url="s")
        resource_spans.resource.attributes.extend(otlp.key_values({"k": "v" * 200}))
        for s in range(3):
            scope = resource_spans.scope_spans.add()
            scope.scope.name = "n"
            scope.spans.extend(span(f"{r}-{s}-{i}") for i in range(r + s))
    raw = request.SerializeToString()
    ranges = [(body, end, where) for (_, _, body, end), where in Envelope(raw).items]
    expected = [
        (r, s, i, item)
        for r, resource in enumerate(request.resource_spans)
        for s, scope in enumerate(resource.scope_spans)
        for i, item in enumerate(scope.spans)
    ]
    assert [(*where, Span.FromString(raw[a:b])) for a, b, where in ranges] == expected
    with pytest.raises(DecodeError):
        Envelope(raw[:-1])


def test_masking_is_idempotent(redactor: RedactionProcessor) -> None:
    batch = spans_batch(span("s", {"password": "x", "url": "https://a:b@c/"}))
    once = run(redactor, batch).batch
    twice = run(redactor, once).batch
    assert twice.raw == once.raw


def test_a_huge_value_is_masked_in_linear_time(redactor: RedactionProcessor) -> None:
    huge = "a" * 3_000_000 + " postgresql://u:topsecret@db/x " + ":" * 1_000_000
    result = run(redactor, spans_batch(span("s", {"blob": huge})), budget_seconds=5.0)
    assert result.error is None
    value = otlp.attributes(next(otlp.spans(result.message()))[2].attributes)["blob"]
    assert isinstance(value, str)
    assert "topsecret" not in value
    assert len(value) == len(huge) - len("topsecret") + len(MASK)


def test_extra_keys_and_patterns_from_settings() -> None:
    """Extra patterns are Python regular expressions (an atomic group here, which Hyperscan
    refuses), searched one by one beside the one-pass search of the built-in rules."""
    redactor = RedactionProcessor(
        RedactionSettings(
            mask="***",
            extra_keys="pin,otp_code",
            extra_patterns=[r"ACME-(?P<secret>(?>\d{6}))"],
        )
    )
    assert redactor.suspect.one_pass is HAS_HYPERSCAN  # the extra did not take it away
    batch = spans_batch(span("s", {"user.pin": "4321", "otpCode": "99", "ref": "ACME-123456"}))
    attributes = otlp.attributes(next(otlp.spans(run(redactor, batch).message()))[2].attributes)
    assert attributes == {"user.pin": "***", "otpCode": "***", "ref": "ACME-***"}


def test_invalid_settings_name_the_problem() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        RedactionSettings(extra_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="at least 1 character"):
        RedactionSettings(mask="")


def test_nothing_secret_is_logged_by_the_kit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    redactor = RedactionProcessor(RedactionSettings(mask=MASK))
    run(redactor, spans_batch(span("s", {"password": "hunter2"})))
    assert "hunter2" not in caplog.text


def test_any_value_of_every_kind_survives_redaction(redactor: RedactionProcessor) -> None:
    values: dict[str, otlp.Value] = {
        "b": True,
        "i": 7,
        "d": 1.5,
        "s": "x",
        "bytes": b"\x00\x01",
        "a": [1, "two"],
        "m": {"k": "v"},
    }
    batch = spans_batch(span("s", {**values, "password": "p"}))
    attributes = otlp.attributes(next(otlp.spans(run(redactor, batch).message()))[2].attributes)
    assert attributes == {**values, "password": MASK}
    assert otlp.python_value(AnyValue()) is None
