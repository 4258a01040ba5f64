"""Log correlation under ``opentelemetry-instrument``: trace ids once, and kept on the console.

An application's own ``logging.config.dictConfig`` (freqtrade's, Django's) replaces the console
handler the logging instrumentation installed; tbmon puts the trace ids back into the console
formats it configured, and leaves its file handlers alone. Exported records carry the ids in
their own fields only (the end-to-end check through the log store is in test_freqtrade.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from support import run_instrumented

from tbmon.instrumentation._internal import logs

APPLICATION = """
import io, json, logging, logging.config
from opentelemetry import trace
console, braced = io.StringIO(), io.StringIO()
handler = {{"class": "logging.StreamHandler"}}
logging.config.dictConfig({{
    "version": 1,
    "formatters": {{
        "plain": {{"format": "%(levelname)s %(message)s"}},
        "braces": {{"format": "{{levelname}} {{message}}", "style": "{{"}},
    }},
    "handlers": {{
        "console": {{**handler, "formatter": "plain", "stream": "ext://__main__.console"}},
        "braced": {{**handler, "formatter": "braces", "stream": "ext://__main__.braced"}},
        "file": {{"class": "logging.FileHandler", "formatter": "plain", "filename": "{log}"}},
    }},
    "root": {{"handlers": ["console", "braced", "file"], "level": "INFO"}},
}})
with trace.get_tracer("app").start_as_current_span("work") as span:
    logging.getLogger("app").info("inside")
    context = span.get_span_context()
print(json.dumps({{
    "ids": [format(context.trace_id, "032x"), format(context.span_id, "016x")],
    "console": console.getvalue(),
    "braced": braced.getvalue(),
}}))
"""


def test_the_console_keeps_its_trace_ids_through_dict_config(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    found, _ = run_instrumented(APPLICATION.format(log=log), {})
    trace_id, span_id = found["ids"]
    ids = f"[trace_id={trace_id} span_id={span_id}]"
    assert found["console"] == f"INFO {ids} inside\n"
    assert found["braced"] == f"INFO {ids} inside\n"
    assert log.read_text() == "INFO inside\n"  # a file keeps the application's format


def test_without_log_correlation_the_formats_stay_as_configured(tmp_path: Path) -> None:
    found, _ = run_instrumented(
        APPLICATION.format(log=tmp_path / "app.log"), {"OTEL_PYTHON_LOG_CORRELATION": "false"}
    )
    assert found["console"] == "INFO inside\n"


def test_exported_attributes_leave_out_the_correlation_fields() -> None:
    handler = LoggingHandler(logger_provider=LoggerProvider())
    assert logs.correlated(handler)
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "order filled", None, None)
    for name in logs.CORRELATION_FIELDS:
        setattr(record, name, "x")
    record.symbol = "BTC/USDT"
    attributes, _ = handler._get_attributes(record)
    assert attributes == {"symbol": "BTC/USDT"}
