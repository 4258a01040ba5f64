"""The plugin chain and loader: order, isolation (exceptions, budgets, stuck calls), discovery."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from types import ModuleType

import pytest
from processors_support import install_test_plugins
from support import wait_until

from tbmon.plugins import discover
from tbmon.processors import Batch, MalformedBatchError, Processor, Signal, otlp
from tbmon.processors.api import ExportTraceServiceRequest
from tbmon.processors.chain import Chain, Plugin, PluginFailedError
from tbmon.processors.loader import ENTRY_POINT_GROUP, PluginConfigError, load
from tbmon.processors.settings import ProcessorsSettings
from tbmon.processors.testing import log_record, logs_batch, run, span, spans_batch
from tbmon.settings import InvalidSettingsError, read_settings


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The test plugins, installed (with entry points) on sys.path for this module."""
    folder = install_test_plugins(tmp_path_factory.mktemp("plugins"))
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("tbmon_test_plugins")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("tbmon_test_plugins", None)


def _process(chain: Chain, batch: Batch[ExportTraceServiceRequest]) -> ExportTraceServiceRequest:
    raw, _ = asyncio.run(chain.process(Signal.SPANS, batch.raw))
    return ExportTraceServiceRequest.FromString(raw)


def _span_attributes(request: ExportTraceServiceRequest) -> dict[str, otlp.Value]:
    return otlp.attributes(next(otlp.spans(request))[2].attributes)


def test_plugins_run_in_order_and_a_raising_one_changes_nothing(plugins: ModuleType) -> None:
    chain = Chain(
        [
            Plugin("tag_a", plugins.TaggingA(), 1.0),
            Plugin("raising", plugins.Raising(), 1.0),
            Plugin("tag_b", plugins.TaggingB(), 1.0),
        ]
    )
    request = _process(chain, spans_batch(span("order", {"x": 1})))
    assert next(otlp.spans(request))[2].name == "order"
    assert _span_attributes(request) == {"x": 1, "plugin.a": 1, "plugin.b": 2}
    raising = chain.plugins[1]
    assert raising.errors == 1
    assert raising.last_error == "exception: raised RuntimeError('boom')"


def test_a_plugin_over_budget_is_skipped_until_its_call_returns(plugins: ModuleType) -> None:
    hanging = Plugin("hanging", plugins.Hanging(), 0.2)
    chain = Chain([hanging, Plugin("tag_a", plugins.TaggingA(), 1.0)])
    batch = spans_batch(span("hang-me"))

    started = time.monotonic()
    request = _process(chain, batch)
    assert time.monotonic() - started < 2.0  # the batch did not wait for the hanging call
    assert next(otlp.spans(request))[2].name == "hang-me"  # its change did not survive
    assert _span_attributes(request) == {"plugin.a": 0}
    assert hanging.last_error is not None
    assert hanging.last_error.startswith("timeout")
    assert hanging.stuck_since is not None

    _process(chain, spans_batch(span("calm")))  # skipped at once while stuck
    assert hanging.last_error.startswith("stuck")
    wait_until(lambda: hanging.stuck_since is None, "the hanging call to return", timeout=10)
    _process(chain, spans_batch(span("calm")))
    assert hanging.errors == 2
    for plugin in chain.plugins:
        plugin.release()


def test_an_inline_plugin_over_budget_has_its_result_dropped(plugins: ModuleType) -> None:
    """A plugin that declares its hooks bounded runs on the loop, without its own thread; when a
    call overruns its budget all the same, the result is dropped when the call returns."""
    slow = Plugin("slow_inline", plugins.SlowInline(), 0.1)
    assert slow.inline
    chain = Chain([slow, Plugin("tag_a", plugins.TaggingA(), 1.0)])
    request = _process(chain, spans_batch(span("hang-me")))
    assert next(otlp.spans(request))[2].name == "hang-me"  # its change did not survive
    assert _span_attributes(request) == {"plugin.a": 0}
    assert slow.last_error is not None
    assert slow.last_error.startswith("timeout")
    assert slow.stuck_since is None  # it returned: nothing is left running
    _process(chain, spans_batch(span("calm")))  # the next call runs as usual
    assert slow.errors == 1
    fail_closed = Chain([Plugin("slow_inline", plugins.SlowInline(), 0.1, reject_on_failure=True)])
    with pytest.raises(PluginFailedError, match="slow_inline failed: timeout"):
        asyncio.run(fail_closed.process(Signal.SPANS, spans_batch(span("hang")).raw))


def test_built_in_plugins_run_inline(plugins: ModuleType) -> None:
    loaded, _ = load(ProcessorsSettings())
    assert [p.name for p in loaded if p.inline] == [
        "redaction",
        "trading_analytics",
        "execution_quality",
    ]
    loaded, _ = load(ProcessorsSettings(plugins="flaky_redaction,tag_a"))
    assert [p.inline for p in loaded] == [False, False]


def test_a_batch_that_is_not_otlp_inside_is_malformed(plugins: ModuleType) -> None:
    # A valid envelope whose span bytes are garbage: found when a plugin parses.
    garbage_span = b"\x0a\x07\x12\x05\x12\x03\xff\xff\xff"
    assert Signal.SPANS.count(garbage_span) == 1
    chain = Chain([Plugin("tag_a", plugins.TaggingA(), 1.0)])
    with pytest.raises(MalformedBatchError):
        asyncio.run(chain.process(Signal.SPANS, garbage_span))


def test_reject_on_failure_fails_the_request(plugins: ModuleType) -> None:
    chain = Chain([Plugin("raising", plugins.Raising(), 1.0, reject_on_failure=True)])
    with pytest.raises(PluginFailedError, match="raising failed"):
        asyncio.run(chain.process(Signal.SPANS, spans_batch(span("s")).raw))


def test_a_hook_that_returns_something_else_is_isolated(plugins: ModuleType) -> None:
    batch = logs_batch(log_record("hello"))
    result = run(plugins.BadReturn(), batch)
    assert result.error == "bad_return: process_logs returned NoneType, not a Batch of " + (
        "ExportLogsServiceRequest"
    )
    assert result.batch.raw == batch.raw


def test_hooks_of_one_plugin_never_run_concurrently() -> None:
    class Counting(Processor):
        def __init__(self) -> None:
            self.active = 0
            self.most = 0
            self.lock = threading.Lock()

        def process_spans(
            self, batch: Batch[ExportTraceServiceRequest]
        ) -> Batch[ExportTraceServiceRequest]:
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            time.sleep(0.01)
            with self.lock:
                self.active -= 1
            return batch

    counting = Counting()
    chain = Chain([Plugin("counting", counting, 5.0)])
    raw = spans_batch(span("s")).raw

    async def many() -> None:
        await asyncio.gather(*(chain.process(Signal.SPANS, raw) for _ in range(20)))

    asyncio.run(many())
    assert counting.most == 1


def test_hooks_a_plugin_does_not_override_are_skipped(plugins: ModuleType) -> None:
    plugin = Plugin("bad_return", plugins.BadReturn(), 1.0)
    assert plugin.signals == {Signal.LOGS}
    assert not plugin.collects
    assert Plugin("deriving", plugins.Deriving(), 1.0).collects


# -- loading ------------------------------------------------------------------------------------


def test_entry_points_are_discovered(plugins: ModuleType) -> None:
    names = set(discover(ENTRY_POINT_GROUP))
    assert {"redaction", "trading_analytics", "execution_quality", "tag_a", "raising"} <= names


def test_configured_order_is_kept(plugins: ModuleType) -> None:
    loaded, failures = load(ProcessorsSettings(plugins="tag_b,redaction,tag_a"))
    assert [p.name for p in loaded] == ["tag_b", "redaction", "tag_a"]
    assert failures == []


def test_unknown_names_fail_naming_the_variable(plugins: ModuleType) -> None:
    with pytest.raises(PluginConfigError, match=r"PROCESSORS_PLUGINS names tag_c.*installed"):
        load(ProcessorsSettings(plugins="tag_a,tag_c"))
    with pytest.raises(PluginConfigError, match="PROCESSORS_REJECT_ON_FAILURE names raising"):
        load(ProcessorsSettings(plugins="tag_a", reject_on_failure="raising"))


def test_broken_plugins_are_skipped_with_a_log_line(
    plugins: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    loaded, failures = load(
        ProcessorsSettings(plugins="missing_module,tag_a,not_a_processor", plugin_budgets={})
    )
    assert [p.name for p in loaded] == ["tag_a"]
    assert [f.name for f in failures] == ["missing_module", "not_a_processor"]
    assert "ModuleNotFoundError" in failures[0].error
    assert "not a subclass of tbmon.processors.Processor" in failures[1].error
    assert "plugin missing_module (tbmon_no_such_module:Nothing) is broken and skipped" in (
        caplog.text
    )


def test_invalid_plugin_settings_stop_the_start(
    plugins: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESSORS_EXECUTION_MAX_LATENCY_MS", "-1")
    with pytest.raises(PluginConfigError, match="execution_quality: invalid settings"):
        load(ProcessorsSettings(plugins="execution_quality"))


def test_budgets_per_plugin(plugins: ModuleType) -> None:
    loaded, _ = load(
        ProcessorsSettings(
            plugins="tag_a,tag_b", plugin_budget_seconds=0.3, plugin_budgets={"tag_b": 2}
        )
    )
    assert [p.budget_seconds for p in loaded] == [0.3, 2.0]
    with pytest.raises(ValueError, match="budget of tag_b must be positive"):
        ProcessorsSettings(plugin_budgets={"tag_b": 0})


def test_settings_accept_lists_as_people_write_them() -> None:
    settings = ProcessorsSettings(plugins=" redaction , execution_quality,")
    assert settings.plugins == ["redaction", "execution_quality"]


def test_redaction_fails_closed_by_default_and_other_plugins_do_not(plugins: ModuleType) -> None:
    loaded, _ = load(ProcessorsSettings())
    assert {p.name: p.reject_on_failure for p in loaded} == {
        "redaction": True,
        "trading_analytics": False,
        "execution_quality": False,
    }
    # Set, even empty, the variable is the whole list.
    loaded, _ = load(ProcessorsSettings(plugins="redaction,tag_a", reject_on_failure=""))
    assert [p.reject_on_failure for p in loaded] == [False, False]
    loaded, _ = load(ProcessorsSettings(plugins="redaction,tag_a", reject_on_failure="tag_a"))
    assert [p.reject_on_failure for p in loaded] == [False, True]


def test_the_built_in_redaction_over_budget_refuses_the_batch(plugins: ModuleType) -> None:
    """Default settings but a budget far below the batch's work: nothing goes on unredacted."""
    loaded, _ = load(ProcessorsSettings(plugins="redaction", plugin_budgets={"redaction": 1e-3}))
    chain = Chain(loaded)
    login = span("login", {"exchange.api_key": "ak-live-1", "note": "password=hunter2"})
    raw = spans_batch(*[login] * 5000).raw  # tens of ms of redaction
    for _ in range(2):
        with pytest.raises(PluginFailedError, match="plugin redaction failed: timeout"):
            asyncio.run(chain.process(Signal.SPANS, raw))
    assert loaded[0].errors == 2


def test_a_fail_closed_plugin_that_cannot_be_built_stops_the_start(plugins: ModuleType) -> None:
    with pytest.raises(PluginConfigError, match=r"plugin broken_redaction fails closed.*OSError"):
        load(ProcessorsSettings(plugins="broken_redaction,tag_a"))
    # Told to fail open, it is skipped like any broken plugin.
    loaded, failures = load(
        ProcessorsSettings(plugins="broken_redaction,tag_a", reject_on_failure="")
    )
    assert [p.name for p in loaded] == ["tag_a"]
    assert [f.name for f in failures] == ["broken_redaction"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROCESSORS_REDACTION_EXTRA_PATTERNS", '["unclosed'),
        ("PROCESSORS_REDACTION_EXTRA_PATTERNS", '"ACME-[0-9]+"'),
        ("PROCESSORS_REDACTION_MASK", ""),
    ],
)
def test_a_plugin_setting_that_does_not_parse_stops_the_start_naming_it(
    plugins: ModuleType, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(PluginConfigError, match=f"plugin redaction: invalid settings: {variable}"):
        load(ProcessorsSettings())


def test_malformed_json_in_a_host_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROCESSORS_PLUGIN_BUDGETS", "{redaction: 2}")
    with pytest.raises(
        InvalidSettingsError, match=r"^PROCESSORS_PLUGIN_BUDGETS: cannot be decoded .*JSON"
    ):
        read_settings(ProcessorsSettings)
