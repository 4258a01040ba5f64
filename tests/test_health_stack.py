"""The health service inside the real local stack: it checks the stack's own components, the
stack's Prometheus scrapes it, and it notices a bot going quiet and a backend going down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from support import Backends, otlp_sdk, running_stack, wait_until

from tbmon.ports import isolated_settings
from tbmon.stack.components import COMPONENTS
from tbmon.stack.supervisor import Supervisor

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """This module's own stack: the bot check judges every bot a stack has seen (other
    modules' bots stop), and these tests stop backends."""
    with running_stack(isolated_settings(tmp_path_factory.mktemp("health-stack"))) as supervisor:
        yield supervisor


@pytest.fixture(scope="module")
def backends(stack: Supervisor) -> Backends:
    return Backends(stack.settings)


#: Health check name -> the local stack component it checks.
CHECKED_COMPONENTS = {
    "collector": "collector",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "jaeger": "jaeger",
    "log_store": "logs",
    "alert_bridge": "alert-bridge",
    "processors": "processors",
}


def detailed(stack: Supervisor) -> dict[str, dict[str, Any]]:
    url = stack.settings.url(stack.settings.health_port, "/health/detailed")
    answer = httpx.get(url, timeout=5).json()
    return {c["name"]: c for c in answer["components"]}


def component_when(
    stack: Supervisor, name: str, condition: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The component's answer once ``condition`` holds for it."""

    def probe() -> dict[str, Any] | None:
        found = detailed(stack)[name]
        return found if condition(found) else None

    return wait_until(probe, what)


def statuses(stack: Supervisor, names: Iterable[str]) -> dict[str, str]:
    found = detailed(stack)
    return {name: found[name]["status"] for name in names}


def test_the_stack_components_are_reported_healthy_while_up(stack: Supervisor) -> None:
    running = {c.name for c in COMPONENTS}
    checked = [check for check, component in CHECKED_COMPONENTS.items() if component in running]
    assert {"collector", "prometheus", "alertmanager", "jaeger", "log_store"} <= set(checked)
    wait_until(
        lambda: set(statuses(stack, checked).values()) == {"healthy"},
        f"every stack component to be healthy (last: {statuses(stack, checked)})",
    )
    ready = httpx.get(stack.settings.url(stack.settings.health_port, "/health/ready"))
    assert (ready.status_code, ready.json()["status"]) == (200, "healthy")
    assert [c["name"] for c in ready.json()["components"]] == ["collector", "prometheus"]
    collector = detailed(stack)["collector"]["metadata"]
    assert collector["status"] == "Server available"
    assert "otlp_grpc/jaeger" in collector["exporters"]


def test_the_stack_prometheus_scrapes_the_health_metrics(backends: Backends) -> None:
    samples = wait_until(
        lambda: backends.prometheus('health_component_status{job="health",component="prometheus"}'),
        "health_component_status in Prometheus",
    )
    assert float(samples[0]["value"][1]) == 2
    assert backends.prometheus('health_check_timestamp_seconds{component="collector"}')
    assert backends.prometheus('health_component_critical{component="collector"} == 1')


def test_the_bot_check_follows_the_heartbeat_in_prometheus(
    stack: Supervisor, backends: Backends
) -> None:
    fresh, quiet = f"bot-{uuid.uuid4().hex[:6]}", f"quiet-bot-{uuid.uuid4().hex[:6]}"

    def now(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(time.time())]

    def ten_minutes_ago(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(time.time() - 600)]

    with otlp_sdk(backends.otlp_grpc, fresh) as sdk:
        meter = sdk.meter_provider.get_meter("bot")
        meter.create_observable_gauge("trading_bot_heartbeat_timestamp_seconds", [now])
        bot = component_when(
            stack,
            "bot",
            lambda found: fresh in found["metadata"].get("heartbeat_age_seconds", {}),
            "the bot's heartbeat to reach the health service",
        )
        assert bot["status"] == "healthy", bot
        assert bot["metadata"]["heartbeat_age_seconds"][fresh] < 60

        with otlp_sdk(backends.otlp_grpc, quiet) as stale:
            meter = stale.meter_provider.get_meter("bot")
            meter.create_observable_gauge(
                "trading_bot_heartbeat_timestamp_seconds", [ten_minutes_ago]
            )
            bot = component_when(
                stack,
                "bot",
                lambda found: found["status"] == "unhealthy",
                "a bot silent for 10 minutes to make the bot check unhealthy",
            )
    ages = bot["metadata"]["heartbeat_age_seconds"]
    assert ages[quiet] >= 600
    assert ages[fresh] < 60
    assert bot["metadata"]["error"].startswith(f"no heartbeat for: {quiet} ")


def test_a_backend_outage_shows_in_its_check_and_in_the_collector(
    stack: Supervisor, backends: Backends
) -> None:
    stack.down(["jaeger"])
    try:
        wait_until(
            lambda: statuses(stack, ["jaeger"]) == {"jaeger": "unhealthy"},
            "jaeger to be reported unhealthy",
        )
        # Spans keep arriving; the collector queues them for the missing Jaeger.
        with otlp_sdk(backends.otlp_grpc, "health-outage-probe") as sdk:
            tracer = sdk.tracer_provider.get_tracer("probe")
            for index in range(5):
                with tracer.start_as_current_span(f"order-{index}"):
                    pass
        collector = component_when(
            stack,
            "collector",
            lambda found: found["status"] == "degraded",
            "the collector to be degraded while its Jaeger exporter is stuck",
        )
        assert "exporter otlp_grpc/jaeger" in collector["metadata"]["error"]
        overall = httpx.get(stack.settings.url(stack.settings.health_port, "/health"))
        assert (overall.status_code, overall.json()["status"]) == (200, "degraded")
    finally:
        stack.up(["jaeger"])
    wait_until(
        lambda: (
            statuses(stack, ["jaeger", "collector"])
            == {"jaeger": "healthy", "collector": "healthy"}
        ),
        "jaeger and the collector to recover",
        timeout=90,
    )
