"""`opentelemetry-instrument python bot.py` with tbmon installed: the distro and configurator.

Each test runs a real ``opentelemetry-instrument`` process, as a user would, and reads what the
bot saw. No collector is needed: these check the set-up, the stack tests check the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from support import run_instrumented

from tbmon.instrumentation.distro import LOG_FORMAT

#: A bot that reports what the SDK was configured with, then logs one line inside a span.
PROBE = """
import json, logging, os
from opentelemetry import trace, metrics
from opentelemetry._logs import get_logger_provider
tracer_provider = trace.get_tracer_provider()
span_processor = tracer_provider._active_span_processor._span_processors[0]
with trace.get_tracer("probe").start_as_current_span("probe") as span:
    logging.getLogger("bot").info("inside the span")
    context = span.get_span_context()
print(json.dumps({
    "env": {k: v for k, v in os.environ.items() if k.startswith("OTEL_")},
    "resource": dict(tracer_provider.resource.attributes),
    "span_processor": type(span_processor).__name__,
    "exporter": type(span_processor._batch_processor._exporter._exporter).__name__,
    "exporter_module": type(span_processor._batch_processor._exporter._exporter).__module__,
    "tracer_provider": type(tracer_provider).__name__,
    "span_queue": span_processor._batch_processor._max_queue_size,
    "logger_provider": type(get_logger_provider()).__name__,
    "trace_id": format(context.trace_id, "032x"),
    "span_id": format(context.span_id, "016x"),
}))
"""


def run_bot(env: Mapping[str, str | None], script: str = PROBE) -> tuple[dict[str, Any], str]:
    return run_instrumented(script, env)


def test_defaults_export_everything_over_otlp_to_the_collector() -> None:
    seen, _ = run_bot({})
    env = seen["env"]
    assert env["OTEL_TRACES_EXPORTER"] == "tbmon"
    assert env["OTEL_LOGS_EXPORTER"] == "tbmon"
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "2000"
    assert env["OTEL_SERVICE_NAME"] == "trading-bot"
    assert seen["span_processor"] == "BatchSpanProcessor"
    assert seen["exporter"] == "TbmonSpanExporter"
    assert seen["span_queue"] == 8192
    assert seen["logger_provider"] == "LoggerProvider"
    resource = seen["resource"]
    assert resource["service.name"] == "trading-bot"
    assert resource["deployment.environment.name"] == "development"
    assert resource["tbmon.strategy"] == "default"
    assert "service.version" not in resource


def test_the_users_otel_settings_win() -> None:
    seen, _ = run_bot(
        {
            "OTEL_METRIC_EXPORT_INTERVAL": "1234",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_RESOURCE_ATTRIBUTES": (
                "service.name=momentum-bot,deployment.environment.name=prod"
            ),
        }
    )
    assert seen["env"]["OTEL_METRIC_EXPORT_INTERVAL"] == "1234"
    assert seen["exporter"] == "OTLPSpanExporter"
    assert "OTEL_SERVICE_NAME" not in seen["env"]
    assert seen["resource"]["service.name"] == "momentum-bot"
    assert seen["resource"]["deployment.environment.name"] == "prod"


def test_tbmon_settings_become_resource_attributes() -> None:
    seen, _ = run_bot(
        {
            "TBMON_STRATEGY": "momentum",
            "TBMON_ENVIRONMENT": "paper",
            "TBMON_BOT_VERSION": "2.3.1",
            "OTEL_SERVICE_NAME": "bot-7",
        }
    )
    resource = seen["resource"]
    assert resource["service.name"] == "bot-7"
    assert resource["tbmon.strategy"] == "momentum"
    assert resource["deployment.environment.name"] == resource["deployment.environment"] == "paper"
    assert resource["service.version"] == "2.3.1"


def test_console_logs_carry_the_trace_and_span_ids() -> None:
    seen, stderr = run_bot({})
    line = next(line for line in stderr.splitlines() if "inside the span" in line)
    assert f"[trace_id={seen['trace_id']} span_id={seen['span_id']}]" in line
    assert seen["env"]["OTEL_PYTHON_LOG_FORMAT"] == LOG_FORMAT


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TBMON_PERIODS_PER_YEAR", "-1"),
        ("TBMON_ANALYTICS_WINDOW", "many"),
        ("TBMON_PERIODS_PER_YEAR", "252"),  # without a period: the chosen grid's applies
    ],
)
def test_an_invalid_setting_is_one_warning_and_the_default(variable: str, value: str) -> None:
    script = (
        "from tbmon.instrumentation.settings import get_settings\n"
        "import json; print(json.dumps(get_settings().model_dump(mode='json')))\n"
    )
    seen, stderr = run_bot({variable: value, "TBMON_STRATEGY": "kept"}, script)
    warnings = [line for line in stderr.splitlines() if "invalid settings" in line]
    assert len(warnings) == 1
    assert variable in warnings[0]
    assert seen["periods_per_year"] is None  # a calendar year of the grid's periods
    assert seen["analytics_window"] == 1440
    assert seen["strategy"] == "kept"


def test_batch_settings_the_sdk_refuses_are_one_warning_not_a_bot_without_telemetry() -> None:
    seen, stderr = run_bot({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BLRP_SCHEDULE_DELAY": "0"})
    assert seen["exporter"] == "TbmonSpanExporter"
    assert seen["span_queue"] == 8192
    warnings = [line for line in stderr.splitlines() if "invalid batch settings" in line]
    assert len(warnings) == 2, stderr
    assert "for spans" in warnings[0]
    assert "for logs" in warnings[1]


def test_the_default_endpoint_is_the_stacks_collector_wherever_its_port_is() -> None:
    # Port 9 (discard) has no listener: the bot's exports fail fast.
    seen, _ = run_bot({"OTEL_EXPORTER_OTLP_ENDPOINT": None, "TBMON_OTLP_GRPC_PORT": "9"})
    assert seen["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert seen["exporter"] == "TbmonSpanExporter"


def test_a_bad_stack_setting_does_not_move_the_collector_endpoint() -> None:
    seen, stderr = run_bot(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": None,
            "TBMON_OTLP_GRPC_PORT": "9",
            "TBMON_PROMETHEUS_PORT": "ninety",
        }
    )
    assert seen["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    (warning,) = [line for line in stderr.splitlines() if "invalid stack settings" in line]
    assert "TBMON_PROMETHEUS_PORT" in warning


def test_otlp_over_http_gets_the_sdks_http_exporter_and_the_http_receiver() -> None:
    seen, _ = run_bot(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": None,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "TBMON_OTLP_HTTP_PORT": "9",
        }
    )
    env = seen["env"]
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_LOGS_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert seen["exporter_module"].startswith("opentelemetry.exporter.otlp.proto.http")


def test_one_signal_over_http_gets_its_own_endpoint() -> None:
    seen, _ = run_bot(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": None,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "TBMON_OTLP_GRPC_PORT": "9",
            "TBMON_OTLP_HTTP_PORT": "19",
        }
    )
    env = seen["env"]
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_LOGS_EXPORTER"] == "tbmon"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://127.0.0.1:19/v1/traces"
    assert seen["exporter_module"].startswith("opentelemetry.exporter.otlp.proto.http")


def test_numeric_otel_settings_the_sdk_would_refuse_are_one_warning_and_defaults() -> None:
    seen, stderr = run_bot(
        {
            "OTEL_METRIC_EXPORT_INTERVAL": "-5",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "abc",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "many",  # the SDK fails at import on this one
        }
    )
    (warning,) = [line for line in stderr.splitlines() if "invalid OpenTelemetry settings" in line]
    for variable in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        assert variable in warning
    assert "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: not an integer" in warning
    env = seen["env"]
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "2000"  # tbmon's default
    assert "OTEL_EXPORTER_OTLP_TIMEOUT" not in env  # the SDK's
    assert "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" not in env
    assert seen["tracer_provider"] != "ProxyTracerProvider"  # telemetry is set up
    assert seen["exporter"] == "TbmonSpanExporter"


@pytest.mark.parametrize(
    "variable",
    ["TBMON_ANALYTICS_PERIOD_SECONDS", "TBMON_LATENCY_PROBE_INTERVAL", "TBMON_RISK_FREE_RATE"],
)
def test_non_finite_numbers_are_invalid_settings(variable: str) -> None:
    script = (
        "from tbmon.instrumentation.settings import get_settings\n"
        "import json; print(json.dumps(get_settings().model_dump(mode='json')))\n"
    )
    seen, stderr = run_bot({variable: "inf"}, script)
    (warning,) = [line for line in stderr.splitlines() if "invalid settings" in line]
    assert variable in warning
    assert seen["analytics_period_seconds"] is None  # chosen from the data
    assert seen["latency_probe_interval"] == 15.0
    assert seen["risk_free_rate"] == 0.0
