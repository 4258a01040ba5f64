"""The host as a process: OTLP/gRPC in, forwarding, bad input, failures, health and metrics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import grpc
import httpx
import pytest
from processors_support import (
    HostProcess,
    OtlpSink,
    install_test_plugins,
    otlp_sink,
    raw_request,
    start_host,
    stop_host,
)
from support import CHECKOUT, wait_until

from tbmon.ports import free_ports
from tbmon.processors import Signal, otlp
from tbmon.processors.testing import log_record, logs_batch, metrics_batch, span, spans_batch

MASK = "[REDACTED]"


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with otlp_sink() as recording:
        yield recording


@pytest.fixture
def host(tmp_path: Path, sink: OtlpSink) -> Iterator[HostProcess]:
    """The host with its built-in plugins, forwarding to the sink."""
    process = start_host(tmp_path, sink.port)
    try:
        yield process
    finally:
        stop_host(process)


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code ``call`` fails with."""
    with pytest.raises(grpc.RpcError) as failure:
        call()
    code: grpc.StatusCode = failure.value.code()
    return code


def _delivered(host: HostProcess, raw: bytes) -> bool:
    try:
        host.export(Signal.SPANS, raw)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True


def _secret_batch() -> bytes:
    return spans_batch(
        span("create_order", {"exchange.api_key": "ak-live-1", "side": "buy"}),
        span("fetch_ticker", {"url": "https://bot:hunter2@exchange/api"}),
    ).raw


def test_processed_batches_reach_the_next_hop(host: HostProcess, sink: OtlpSink) -> None:
    host.export(Signal.SPANS, _secret_batch())
    host.export(Signal.LOGS, logs_batch(log_record("login password=hunter2")).raw)
    host.export(Signal.METRICS, metrics_batch(otlp.gauge("m", [({}, 1.0)], 1)).raw)

    (spans,) = sink.all(Signal.SPANS)
    text = str(spans)
    assert "ak-live-1" not in text
    assert "hunter2" not in text
    assert f"https://bot:{MASK}@exchange/api" in text
    order = otlp.attributes(next(otlp.spans(spans))[2].attributes)
    assert order["execution.slow"] is False  # the execution-quality plugin ran too
    (logs,) = sink.all(Signal.LOGS)
    assert next(otlp.log_records(logs))[2].body.string_value == f"login password={MASK}"
    assert len(sink.all(Signal.METRICS)) == 1
    assert host.metric("tbmon_processors_items_received_total", signal="spans") == 2
    assert host.metric("tbmon_processors_items_forwarded_total", signal="logs") == 1
    assert host.metric("tbmon_processors_requests_total", signal="spans", code="OK") == 1
    assert (
        host.metric(
            "tbmon_processors_plugin_duration_seconds_count", plugin="redaction", signal="spans"
        )
        == 1
    )
    assert host.metric("tbmon_processors_redactions_total", signal="spans", rule="key") == 1


def test_nothing_is_acknowledged_before_the_next_hop_has_it(tmp_path: Path) -> None:
    """Next hop down: UNAVAILABLE (the collector keeps the batch); back up: the retry lands."""
    port = free_ports(1)[0]
    host = start_host(tmp_path, port)
    try:
        raw = _secret_batch()
        assert _code(lambda: host.export(Signal.SPANS, raw)) == grpc.StatusCode.UNAVAILABLE
        assert host.health()["status"] == "degraded"
        assert host.health()["next_hop"]["last_failure"].startswith("UNAVAILABLE")
        with otlp_sink(port) as sink:
            # The collector retries until the host reconnects (within its 2 s backoff).
            wait_until(partial(_delivered, host, raw), "the retried batch to go through", 10)
            assert len(sink.all(Signal.SPANS)) == 1
            # The next hop's own refusals are passed back as they are.
            sink.fail_with = grpc.StatusCode.INVALID_ARGUMENT
            assert _code(lambda: host.export(Signal.SPANS, raw)) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
            sink.fail_with = grpc.StatusCode.UNAVAILABLE
            assert _code(lambda: host.export(Signal.SPANS, raw)) == grpc.StatusCode.UNAVAILABLE
        assert (
            host.metric(
                "tbmon_processors_forward_failures_total", signal="spans", code="UNAVAILABLE"
            )
            >= 2
        )
    finally:
        stop_host(host)


def test_shutdown_finishes_the_requests_in_flight(tmp_path: Path, sink: OtlpSink) -> None:
    host = start_host(tmp_path, sink.port)
    sink.delay_seconds = 1.5
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(host.export(Signal.SPANS, _secret_batch()))
        except grpc.RpcError as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert sink.arrived.wait(10)
        host.process.send_signal(signal.SIGTERM)
        sender.join(20)
        assert outcome == [b""]  # answered OK, and the sink has it
        assert len(sink.all(Signal.SPANS)) == 1
        host.process.wait(20)
    finally:
        stop_host(host)


# -- bad input ----------------------------------------------------------------------------------


def test_truncated_and_random_requests_get_invalid_argument(host: HostProcess) -> None:
    raw = _secret_batch()
    for cut in (1, 2, 10, len(raw) // 2, len(raw) - 1):
        assert _code(partial(host.export, Signal.SPANS, raw[:cut])) == (
            grpc.StatusCode.INVALID_ARGUMENT
        ), cut
    rng = random.Random(6)
    for signal_ in Signal:
        for size in (1, 17, 512, 70_000):
            garbage = rng.randbytes(size)
            assert _code(partial(host.export, signal_, garbage)) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
    # Still serving.
    host.export(Signal.SPANS, raw)
    assert host.metric("tbmon_processors_requests_total", signal="spans", code="INVALID_ARGUMENT")


def test_garbage_inside_a_valid_envelope_costs_only_its_item(
    host: HostProcess, sink: OtlpSink
) -> None:
    # resource_spans { scope_spans { spans: <bytes that are not a Span>, spans: <a good span> } };
    # "password" makes the redaction plugin parse it, the second request no plugin parses (the
    # host finds it when the next hop refuses it). The bad item alone is dropped and counted.
    good = span("fetch_ticker", {"symbol": "BTC/USDT"}).SerializeToString()
    for number, payload in enumerate((b"\xff\xffpassword", b"\xff\xff\xff"), start=1):
        request = raw_request(payload, good)
        assert Signal.SPANS.count(request) == 2
        host.export(Signal.SPANS, request)
        forwarded = sink.all(Signal.SPANS)
        assert len(forwarded) == number
        assert [s.name for _, _, s in otlp.spans(forwarded[-1])] == ["fetch_ticker"]
    assert host.metric("tbmon_processors_dropped_items_total", signal="spans", reason="malformed")
    assert (
        host.metric("tbmon_processors_dropped_items_total", signal="spans", reason="malformed") == 2
    )


def _with_bad_utf8(raw: bytes, marker: bytes) -> bytes:
    """``raw`` with each ``marker`` (a placeholder in a string) replaced by as many bytes that
    are not UTF-8 (the collector passes such strings on; protobuf's Python decoder refuses
    them)."""
    assert marker in raw
    return raw.replace(marker, b"\xff\xfe" + b"\xc3" * (len(marker) - 2))


def test_invalid_utf8_in_one_item_costs_no_other_item(host: HostProcess, sink: OtlpSink) -> None:
    """The issue's poison: a bad string under a key redaction looks at, or in a batch with a
    closed trade (which trading analytics parses), once made the host refuse the whole batch
    (INVALID_ARGUMENT: the collector dropped everybody's data)."""
    marker = b"BADUTF8!"
    logs = _with_bad_utf8(
        logs_batch(
            log_record("poison", {"password": "x" + marker.decode(), "note": marker.decode()}),
            log_record("trade closed", {"trade.pnl_usd": 12.5, "trade.id": "t-1"}),
            log_record("login password=hunter2", {"bot": "good"}),
            log_record("body " + marker.decode(), {"trade.pnl_usd": 1.0, "trade.id": "t-2"}),
        ).raw,
        marker,
    )
    host.export(Signal.LOGS, logs)
    (forwarded,) = sink.all(Signal.LOGS)
    records = [record for _, _, record in otlp.log_records(forwarded)]
    assert len(records) == 4
    poison = otlp.attributes(records[0].attributes)
    assert poison["password"] == MASK
    assert poison["note"] == "\ufffd" * 2 + "\ufffd" * 6  # each bad byte, visibly
    assert records[2].body.string_value == f"login password={MASK}"
    assert records[3].body.string_value.startswith("body \ufffd")
    spans = _with_bad_utf8(
        spans_batch(
            span("poison", {"api_key": marker.decode()}),
            span("create_order", {"exchange": "binance", "symbol": marker.decode()}),
            span("fetch_ticker", {"url": "https://bot:hunter2@exchange/api"}),
        ).raw,
        marker,
    )
    host.export(Signal.SPANS, spans)
    (forwarded_spans,) = sink.all(Signal.SPANS)
    names = [s.name for _, _, s in otlp.spans(forwarded_spans)]
    assert names == ["poison", "create_order", "fetch_ticker"]
    assert "hunter2" not in str(forwarded_spans)
    assert host.metric("tbmon_processors_repaired_strings_total", signal="logs") == 3
    assert host.metric("tbmon_processors_repaired_strings_total", signal="spans") == 2
    assert host.metric("tbmon_processors_requests_total", signal="logs", code="OK") == 1
    assert (
        host.metric("tbmon_processors_dropped_items_total", signal="logs", reason="malformed") == 0
    )


def test_oversized_requests_get_resource_exhausted(tmp_path: Path, sink: OtlpSink) -> None:
    host = start_host(tmp_path, sink.port, {"PROCESSORS_MAX_MESSAGE_BYTES": str(2**20)})
    try:
        big = spans_batch(span("s", {"blob": "x" * (2 * 2**20)})).raw
        assert _code(lambda: host.export(Signal.SPANS, big)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        host.export(Signal.SPANS, _secret_batch())  # still serving
        assert len(sink.all(Signal.SPANS)) == 1
    finally:
        stop_host(host)


def test_huge_attribute_values_within_the_limit_are_processed(
    host: HostProcess, sink: OtlpSink
) -> None:
    huge = "y" * 5_000_000 + " postgresql://u:topsecret@db/x"
    host.export(Signal.SPANS, spans_batch(span("s", {"blob": huge, "api_key": "k" * 100_000})).raw)
    (request,) = sink.all(Signal.SPANS)
    attributes = otlp.attributes(next(otlp.spans(request))[2].attributes)
    assert attributes["api_key"] == MASK
    assert str(attributes["blob"]).endswith(f"postgresql://u:{MASK}@db/x")


# -- plugins in the host --------------------------------------------------------------------------


@pytest.fixture
def plugin_path(tmp_path: Path) -> dict[str, str]:
    folder = install_test_plugins(tmp_path / "plugins")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def test_failing_plugins_are_isolated_and_reported(
    tmp_path: Path, sink: OtlpSink, plugin_path: dict[str, str]
) -> None:
    env = {
        **plugin_path,
        "PROCESSORS_PLUGINS": "raising,hanging,tag_a,missing_module",
        "PROCESSORS_PLUGIN_BUDGETS": '{"hanging": 0.3}',
    }
    host = start_host(tmp_path, sink.port, env)
    try:
        health = host.health()
        assert health["status"] == "degraded"
        assert {p["name"]: p["status"] for p in health["plugins"]} == {
            "raising": "pass",
            "hanging": "pass",
            "tag_a": "pass",
            "missing_module": "fail",
        }
        host.export(Signal.SPANS, spans_batch(span("hang-me")).raw)
        host.export(Signal.SPANS, spans_batch(span("calm")).raw)
        forwarded = [next(otlp.spans(r))[2] for r in sink.all(Signal.SPANS)]
        assert [s.name for s in forwarded] == ["hang-me", "calm"]
        assert all(otlp.attributes(s.attributes) == {"plugin.a": 0} for s in forwarded)

        plugins = {p["name"]: p for p in host.health()["plugins"]}
        assert plugins["raising"]["errors"] == 2
        assert plugins["raising"]["last_error"] == "exception: raised RuntimeError('boom')"
        assert plugins["hanging"]["status"] == "warn"
        assert plugins["hanging"]["stuck_seconds"] is not None
        assert (
            host.metric("tbmon_processors_plugin_errors_total", plugin="hanging", reason="timeout")
            == 1
        )
        assert (
            host.metric("tbmon_processors_plugin_errors_total", plugin="hanging", reason="stuck")
            == 1
        )
        assert host.metric("tbmon_processors_plugin_stuck", plugin="hanging") == 1
        wait_until(
            lambda: host.metric("tbmon_processors_plugin_stuck", plugin="hanging") == 0,
            "the hanging plugin to come back",
            timeout=10,
        )
        log = host.log.read_text()
        assert "plugin raising (spans) raised RuntimeError('boom'); the batch passes on" in log
        assert "plugin missing_module (tbmon_no_such_module:Nothing) is broken and skipped" in log
    finally:
        stop_host(host)


def test_a_failing_redaction_refuses_the_data_and_the_retry_lands_masked(
    tmp_path: Path, sink: OtlpSink, plugin_path: dict[str, str]
) -> None:
    """Redaction fails closed under the default settings: raising or overrunning, it lets no
    batch through (UNAVAILABLE, so the collector keeps and retries it); once it works again the
    retried batch arrives, masked."""
    env = {
        **plugin_path,
        "PROCESSORS_PLUGINS": "flaky_redaction,execution_quality",
        "PROCESSORS_PLUGIN_BUDGETS": '{"flaky_redaction": 0.3}',
    }
    host = start_host(tmp_path, sink.port, env)
    spans, logs = _secret_batch(), logs_batch(log_record("login password=hunter2")).raw
    try:
        for trouble, reason in (("raises", "exception"), ("hangs", "timeout")):
            marker = tmp_path / f"redaction-{trouble}"
            marker.touch()
            delivered = len(sink.all(Signal.SPANS)), len(sink.all(Signal.LOGS))
            for signal_, raw in ((Signal.SPANS, spans), (Signal.LOGS, logs)):
                assert _code(partial(host.export, signal_, raw)) == grpc.StatusCode.UNAVAILABLE
            assert (len(sink.all(Signal.SPANS)), len(sink.all(Signal.LOGS))) == delivered
            assert (
                host.metric(
                    "tbmon_processors_plugin_errors_total", plugin="flaky_redaction", reason=reason
                )
                >= 1
            )
            marker.unlink()
            # The collector retries until the batch goes through (after a hang: once the
            # overrunning call has returned).
            wait_until(partial(_delivered, host, spans), "the retried spans", timeout=15)
            host.export(Signal.LOGS, logs)
        text = str(sink.all(Signal.SPANS)) + str(sink.all(Signal.LOGS))
        assert len(sink.all(Signal.SPANS)) == len(sink.all(Signal.LOGS)) == 2
        assert "ak-live-1" not in text
        assert "hunter2" not in text
        assert text.count(MASK) == 6
        assert (
            host.metric(
                "tbmon_processors_refused_requests_total", plugin="flaky_redaction", signal="logs"
            )
            == 2
        )
        assert (
            "plugin flaky_redaction (spans) raised RuntimeError('redaction broke'); it fails "
            "closed: the request is refused (UNAVAILABLE)" in host.log.read_text()
        )
    finally:
        stop_host(host)


def test_derived_metrics_are_sent_on_their_interval(
    tmp_path: Path, sink: OtlpSink, plugin_path: dict[str, str]
) -> None:
    env = {
        **plugin_path,
        "PROCESSORS_PLUGINS": "deriving",
        "PROCESSORS_DERIVE_INTERVAL_SECONDS": "0.2",
    }
    host = start_host(tmp_path, sink.port, env)
    try:
        wait_until(lambda: len(sink.all(Signal.METRICS)) >= 2, "two rounds of derived metrics")
        first, second = sink.all(Signal.METRICS)[:2]
        values = [next(otlp.metrics(r))[1].gauge.data_points[0].as_double for r in (first, second)]
        assert values == [1.0, 2.0]
        assert host.metric("tbmon_processors_derived_points_total", plugin="deriving") >= 2
    finally:
        stop_host(host)


def test_start_up_errors_say_what_to_do(tmp_path: Path, plugin_path: dict[str, str]) -> None:
    cases = [
        ({"PROCESSORS_PLUGINS": "redaction,nope"}, "PROCESSORS_PLUGINS names nope"),
        ({"PROCESSORS_PLUGIN_BUDGET_SECONDS": "-1"}, "PROCESSORS_PLUGIN_BUDGET_SECONDS"),
        ({"PROCESSORS_REDACTION_MASK": ""}, "plugin redaction: invalid settings"),
        (
            {"PROCESSORS_REDACTION_EXTRA_PATTERNS": "[ACME-[0-9]+"},
            "plugin redaction: invalid settings: PROCESSORS_REDACTION_EXTRA_PATTERNS: cannot be "
            "decoded",
        ),
        ({"PROCESSORS_PLUGIN_BUDGETS": "{redaction: 2}"}, "PROCESSORS_PLUGIN_BUDGETS: cannot"),
        ({"PROCESSORS_PLUGINS": "broken_redaction"}, "plugin broken_redaction fails closed"),
    ]
    for env, message in cases:
        port, http_port = free_ports(2)  # the defaults may be a running stack's
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tbmon",
                "processors",
                "serve",
                "--port",
                str(port),
                "--http-port",
                str(http_port),
                "--forward",
                "x:1",
            ],
            env={**os.environ, **plugin_path, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_the_plugin_listing_names_a_malformed_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tbmon", "processors", "plugins"],
        env={**os.environ, "PROCESSORS_PLUGIN_BUDGETS": '{"redaction": 2'},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "error: PROCESSORS_PLUGIN_BUDGETS: cannot be decoded" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_named(tmp_path: Path, sink: OtlpSink) -> None:
    host = start_host(tmp_path, sink.port)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tbmon",
                "processors",
                "serve",
                "--port",
                str(host.port),
                "--http-port",
                str(free_ports(1)[0]),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 1
        assert f"port {host.port} (PROCESSORS_PORT / --port) on 127.0.0.1 is in use" in (
            result.stderr
        )
    finally:
        stop_host(host)


def test_health_and_metrics_endpoints(host: HostProcess) -> None:
    health = host.health()
    assert health["status"] in ("healthy", "degraded")
    assert health["grpc"] == {"status": "pass", "endpoint": host.endpoint}
    assert [p["name"] for p in health["plugins"]] == [
        "redaction",
        "trading_analytics",
        "execution_quality",
    ]
    response = httpx.get(f"http://127.0.0.1:{host.http_port}/metrics", timeout=5)
    assert response.headers["content-type"].startswith("text/plain")
    assert "tbmon_processors_plugin_stuck" in response.text
    assert "process_cpu_seconds_total" in response.text


def test_error_and_refusal_series_exist_at_zero_right_after_start(host: HostProcess) -> None:
    """Before any request, every loaded plugin's error series (and a fail-closed plugin's
    refusal series) is at 0, so that increase(...[5m]) in the alert rules has data at once."""
    text = httpx.get(f"http://127.0.0.1:{host.http_port}/metrics", timeout=5).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    hooks = {
        "redaction": ("spans", "metrics", "logs"),
        "trading_analytics": ("spans", "metrics", "logs"),
        "execution_quality": ("spans", "metrics"),  # spans; metrics: its derived counters
    }
    for plugin, signals in hooks.items():
        for kind in signals:
            for reason in ("exception", "timeout", "stuck", "bad_return"):
                key = (
                    "tbmon_processors_plugin_errors_total"
                    f'{{plugin="{plugin}",reason="{reason}",signal="{kind}"}}'
                )
                assert samples.get(key) == 0.0, key
        assert samples[f'tbmon_processors_plugin_stuck{{plugin="{plugin}"}}'] == 0.0
    for kind in hooks["redaction"]:
        key = f'tbmon_processors_refused_requests_total{{plugin="redaction",signal="{kind}"}}'
        assert samples.get(key) == 0.0, key
        key = f'tbmon_processors_dropped_items_total{{reason="malformed",signal="{kind}"}}'
        assert samples.get(key) == 0.0, key
        assert samples.get(f'tbmon_processors_repaired_strings_total{{signal="{kind}"}}') == 0.0
    assert not any(
        key.startswith("tbmon_processors_refused_requests_total")
        and 'plugin="redaction"' not in key
        for key in samples
    )  # the others pass the batch on when they fail: they never refuse


# -- the example plugin package -----------------------------------------------------------------


def test_the_example_plugin_installs_is_discovered_and_runs_in_the_host(
    tmp_path: Path, sink: OtlpSink
) -> None:
    example = CHECKOUT / "examples" / "processor-plugin"
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(example),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    listing = subprocess.run(
        [sys.executable, "-m", "tbmon", "processors", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "drop_health_checks" in listing.stdout
    assert "tbmon_processor_example:DropHealthChecks  (spans)" in listing.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example / "tests")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout

    host = start_host(tmp_path, sink.port, {**env, "PROCESSORS_PLUGINS": "drop_health_checks"})
    try:
        batch = spans_batch(span("GET", {"url.path": "/health"}), span("create_order"))
        host.export(Signal.SPANS, batch.raw)
        (request,) = sink.all(Signal.SPANS)
        assert [s.name for _, _, s in otlp.spans(request)] == ["create_order"]
        # A batch of nothing but health checks is answered without bothering the next hop.
        host.export(Signal.SPANS, spans_batch(span("GET", {"url.path": "/health"})).raw)
        assert len(sink.all(Signal.SPANS)) == 1
    finally:
        stop_host(host)
