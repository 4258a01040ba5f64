"""The bot side on the newest OpenTelemetry SDK the registry serves, not only the pinned one.

tbmon reaches into private members of the SDK releases it mirrors
(:mod:`tbmon.instrumentation._internal.pinned`), while ``pyproject.toml`` accepts newer ones. A
fresh virtual environment gets the newest ``opentelemetry-sdk``,
``-exporter-otlp-proto-grpc`` (with the matching api, proto, semantic conventions and the
instrumentation packages) and tbmon installed beside them without its dependencies; a bot
runs there under ``opentelemetry-instrument`` against the test stack's real collector. Every
span, log record and counter increment it made must reach Jaeger, the log store and
Prometheus.

Where tbmon must stand aside (a release it does not mirror, or ``TBMON_SDK_MIRRORS=off``, which
this test always runs too, so the fallback is exercised even when the newest release is the
pinned one) the bot must start, warn exactly once, and run on the SDK's own classes; where it
may not, on tbmon's. The same runs on an older release pyproject.toml accepts (1.45.0), where
the guard's version check itself must send tbmon aside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import CHECKOUT, Backends, wait_until

from tbmon.instrumentation._internal import pinned

pytestmark = pytest.mark.stack

#: The OpenTelemetry distributions a bot's environment gets, by release: the newest the registry
#: serves (no version), and the oldest pyproject.toml accepts, which is not the one mirrored.
RELEASES: dict[str, dict[str, str]] = {
    "newest": dict.fromkeys(
        (
            "opentelemetry-api",
            "opentelemetry-sdk",
            "opentelemetry-proto",
            "opentelemetry-exporter-otlp-proto-grpc",
            "opentelemetry-semantic-conventions",
            "opentelemetry-instrumentation",
            "opentelemetry-instrumentation-logging",
        ),
        "",
    ),
    "1.45.0": {
        "opentelemetry-api": "==1.45.0",
        "opentelemetry-sdk": "==1.45.0",
        "opentelemetry-proto": "==1.45.0",
        "opentelemetry-exporter-otlp-proto-grpc": "==1.45.0",
        "opentelemetry-semantic-conventions": "==0.66b0",
        "opentelemetry-instrumentation": "==0.66b0",
        "opentelemetry-instrumentation-logging": "==0.66b0",
    },
}
#: What else the bot-side modules import, at the versions constraints.txt pins.
BOT_SIDE = ("pydantic-settings", "wrapt", "psutil", "typing-extensions", "protobuf")
#: The fallback's warning (pinned.fall_back), which must appear exactly once.
WARNING = "using the OpenTelemetry SDK's own code paths"
ORDERS = 40

BOT = """
import json, logging, sys
from opentelemetry import metrics, trace

tracer = trace.get_tracer("sdk-versions-bot")
orders = metrics.get_meter("sdk-versions-bot").create_counter("sdk_versions_orders")
log = logging.getLogger("sdk-versions-bot")
for index in range({orders}):
    with tracer.start_as_current_span("create_order", attributes={{"index": index}}):
        log.warning("order %d placed", index)
        orders.add(1, {{"side": "buy"}})
handlers = [type(h) for h in logging.getLogger().handlers if "LoggingHandler" in type(h).__name__]
provider = type(trace.get_tracer_provider())
print(json.dumps({{
    "tracer_provider": f"{{provider.__module__}}.{{provider.__qualname__}}",
    "log_handlers": [f"{{h.__module__}}.{{h.__qualname__}}" for h in handlers],
}}), flush=True)
"""


def _constraints(folder: Path) -> Path:
    """constraints.txt without the OpenTelemetry pins (those come at their newest)."""
    lines = (CHECKOUT / "constraints.txt").read_text().splitlines()
    kept = [line for line in lines if not line.lower().startswith("opentelemetry")]
    path = folder / "constraints-without-opentelemetry.txt"
    path.write_text("\n".join(kept) + "\n")
    return path


@pytest.fixture(scope="module", params=sorted(RELEASES))
def environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A fresh venv with one release of the OpenTelemetry SDK and tbmon (no dependencies), and
    the versions installed there."""
    release: dict[str, str] = RELEASES[request.param]
    folder = tmp_path_factory.mktemp(f"sdk-{request.param}")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [
            *pip,
            *("-c", str(_constraints(folder)), "--upgrade"),
            *(name + version for name, version in release.items()),
            *BOT_SIDE,
        ],
        check=True,
        timeout=600,
    )
    # The bot side's distributions, as `pip install tbmon` brings them, without their dependencies.
    bot_side = [str(CHECKOUT / folder) for folder in ("core", "instrumentation")]
    subprocess.run([*pip, "--no-deps", *bot_side], check=True, timeout=600)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    versions = {item["name"].lower(): item["version"] for item in json.loads(listed.stdout)}
    return python, versions


def _run_bot(python: Path, backends: Backends, service: str, **env: str) -> tuple[Any, str]:
    """The bot under the venv's ``opentelemetry-instrument``: its probe and its whole output."""
    bot = BOT.format(orders=ORDERS)
    done = subprocess.run(
        [str(python.with_name("opentelemetry-instrument")), str(python), "-c", bot],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TBMON_"))},
            **backends.settings.environment(),
            "OTEL_SERVICE_NAME": service,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=python.parent,  # not the checkout: tbmon comes from the venv
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return json.loads(done.stdout.strip().splitlines()[-1]), output


def _spans(backends: Backends, service: str) -> int:
    response = httpx.get(
        backends.settings.url(backends.settings.jaeger_query_port, "/api/traces"),
        params={"service": service, "operation": "create_order", "limit": 1000, "lookback": "1h"},
        timeout=30,
    )
    if response.status_code == 404:
        return 0
    response.raise_for_status()
    return sum(
        span["operationName"] == "create_order"
        for trace in response.json()["data"] or []
        for span in trace["spans"]
    )


def _counted(backends: Backends, service: str) -> float:
    query = f'sum(sdk_versions_orders_total{{job="{service}"}})'
    return sum(float(series["value"][1]) for series in backends.prometheus(query))


def _logs(backends: Backends, service: str) -> int:
    return len(backends.logs(f'service.name:="{service}" "placed"'))


@pytest.mark.parametrize("mirrors", ["on", "off"])
def test_a_bot_on_another_sdk_starts_and_exports_everything(
    environment: tuple[Path, dict[str, str]], backends: Backends, mirrors: str
) -> None:
    python, versions = environment
    mirrored = (
        versions["opentelemetry-sdk"] == pinned.SDK
        and versions["opentelemetry-exporter-otlp-proto-grpc"] == pinned.EXPORTER
        and versions["opentelemetry-instrumentation-logging"] == pinned.LOGGING_INSTRUMENTATION
    )
    stands_aside = mirrors == "off" or not mirrored
    service = f"sdk-{mirrors}-{uuid.uuid4().hex[:8]}"
    probe, output = _run_bot(python, backends, service, TBMON_SDK_MIRRORS=mirrors)
    described = f"opentelemetry-sdk {versions['opentelemetry-sdk']}, mirrors {mirrors}: {output}"

    if stands_aside:
        assert output.count(WARNING) == 1, described
        assert probe["tracer_provider"] == "opentelemetry.sdk.trace.TracerProvider", described
        assert all(h.startswith("opentelemetry.") for h in probe["log_handlers"]), described
    else:
        assert WARNING not in output, described
        assert probe["tracer_provider"].startswith("tbmon."), described
        assert all(h.startswith("tbmon.") for h in probe["log_handlers"]), described
    assert probe["log_handlers"], described  # the logging bridge is on either way

    seen: dict[str, float] = {}

    def delivered() -> bool:
        seen.update(
            spans=_spans(backends, service),
            logs=_logs(backends, service),
            orders=_counted(backends, service),
        )
        return all(count >= ORDERS for count in seen.values())

    wait_until(delivered, lambda: f"{ORDERS} of each delivered, seen {seen} ({described})")
    assert seen == {"spans": ORDERS, "logs": ORDERS, "orders": ORDERS}, described
