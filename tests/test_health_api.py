"""The health API in process: answer shape, status codes, token, unknown names, metrics, and how
the scheduler treats checks that fail, raise, misbehave or hang."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field
from support import wait_until

from tbmon.health import Check, CheckFailed, HealthSettings, Outcome, Status, create_app
from tbmon.health.app import get_settings
from tbmon.health.monitor import Monitor
from tbmon.health.registry import ScheduledCheck
from tbmon.health.settings import (
    ALERT_BRIDGE_TOKEN,
    DATABASE_URL,
    ENV_PREFIX,
    EXCHANGE_API_URL,
)
from tbmon.settings import InvalidSettingsError, read_settings
from tbmon.version import __version__

with warnings.catch_warnings():  # Starlette prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LOOPBACK = ("127.0.0.1", 40000)
TOKEN = "tok-3f9a1c-very-secret"
ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"

# The seed's response example, as a schema: exactly these keys, these types.
COMPONENT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "status", "last_check", "response_time_ms", "metadata"],
    "properties": {
        "name": {"type": "string"},
        "status": {"enum": ["healthy", "degraded", "unhealthy"]},
        "last_check": {"type": "string", "pattern": ISO_UTC},
        "response_time_ms": {"type": "number", "minimum": 0},
        "metadata": {"type": "object"},
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "components", "check_time", "uptime_seconds", "version"],
    "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy"]},
        "components": {"type": "array", "items": COMPONENT_SCHEMA},
        "check_time": {"type": "string", "pattern": ISO_UTC},
        "uptime_seconds": {"type": "integer", "minimum": 0},
        "version": {"const": __version__},
    },
}


class Reporting(Check):
    """Reports whatever outcome the test sets."""

    def __init__(self, status: Status, **metadata: Any) -> None:
        self.outcome = Outcome(status, metadata)
        self.closed = False

    async def check(self) -> Outcome:
        return self.outcome

    async def aclose(self) -> None:
        self.closed = True


class Raising(Check):
    async def check(self) -> Outcome:
        raise RuntimeError("lost postgresql://trader:hunter2@db:5432/bot")


class Garbage(Check):
    async def check(self) -> Outcome:
        return "all good"  # type: ignore[return-value]  # a buggy plugin


class Hanging(Check):
    async def check(self) -> Outcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def scheduled(name: str, check: Check, *, critical: bool = False, timeout: float = 1.0) -> Any:
    return ScheduledCheck(name=name, check=check, timeout=timeout, critical=critical)


@contextmanager
def client_for(
    checks: list[ScheduledCheck],
    client: tuple[str, int] = LOOPBACK,
    **settings: Any,
) -> Iterator[TestClient]:
    app = create_app(checks)
    overridden = HealthSettings(interval=0.1, **settings)
    app.dependency_overrides[get_settings] = lambda: overridden
    with TestClient(app, client=client) as test_client:
        yield test_client


def components(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in answer["components"]}


def test_answers_have_the_seed_shape_and_the_right_codes() -> None:
    checks = [
        scheduled("database", Reporting(Status.HEALTHY, active_connections=3), critical=True),
        scheduled("jaeger", Reporting(Status.DEGRADED, error="slow")),
    ]
    with client_for(checks) as client:
        overall = client.get("/health")
        detailed = client.get("/health/detailed")
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        one = client.get("/health/component/database")

    for response in (overall, detailed, ready, live):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        jsonschema.validate(response.json(), ANSWER_SCHEMA)
    jsonschema.validate(one.json(), COMPONENT_SCHEMA)

    assert overall.json()["status"] == "degraded"  # an optional component is degraded
    assert [c["name"] for c in overall.json()["components"]] == ["database", "jaeger"]
    assert all(c["metadata"] == {} for c in overall.json()["components"])  # details need /detailed
    assert components(detailed.json())["database"]["metadata"] == {"active_connections": 3}
    assert components(detailed.json())["jaeger"]["metadata"] == {"error": "slow"}
    assert ready.json()["status"] == "healthy"  # only critical components count
    assert [c["name"] for c in ready.json()["components"]] == ["database"]
    assert live.json()["components"] == []
    assert live.headers["cache-control"] == "no-store"
    assert overall.headers["cache-control"] == "max-age=1"
    assert one.json()["metadata"] == {"active_connections": 3}


def test_a_critical_failure_is_503_on_ready_but_live_stays_200() -> None:
    database = Reporting(Status.HEALTHY)
    checks = [
        scheduled("database", database, critical=True),
        scheduled("cpu", Reporting(Status.HEALTHY)),
    ]
    with client_for(checks) as client:
        assert client.get("/health/ready").status_code == 200
        database.outcome = Outcome(Status.UNHEALTHY, {"error": "refused"})
        wait_until(lambda: client.get("/health/ready").status_code == 503, "ready to turn 503")
        assert client.get("/health").status_code == 503
        assert client.get("/health").json()["status"] == "unhealthy"
        assert client.get("/health/component/database").status_code == 503
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/live").json()["status"] == "healthy"

        database.outcome = Outcome(Status.HEALTHY)
        wait_until(lambda: client.get("/health/ready").status_code == 200, "ready to recover")


def test_an_optional_failure_only_degrades() -> None:
    checks = [
        scheduled("prometheus", Reporting(Status.HEALTHY), critical=True),
        scheduled("alert_bridge", Reporting(Status.UNHEALTHY, error="refused")),
    ]
    with client_for(checks) as client:
        overall = client.get("/health")
        ready = client.get("/health/ready")
    assert (overall.status_code, overall.json()["status"]) == (200, "degraded")
    assert (ready.status_code, ready.json()["status"]) == (200, "healthy")


def test_raising_misbehaving_and_hanging_checks_are_unhealthy_never_500() -> None:
    checks = [
        scheduled("raising", Raising()),
        scheduled("garbage", Garbage()),
        scheduled("hanging", Hanging(), timeout=0.3),
    ]
    with client_for(checks) as client:
        response = client.get("/health/detailed")
    assert response.status_code == 200  # none of them is critical: degraded
    found = components(response.json())
    assert found["raising"]["status"] == "unhealthy"
    assert found["raising"]["metadata"]["error"] == (
        "RuntimeError: lost postgresql://trader:***@db:5432/bot"
    )
    assert "hunter2" not in response.text
    assert found["garbage"]["metadata"]["error"] == (
        "TypeError: the check returned str, not an Outcome"
    )
    hanging = found["hanging"]
    assert hanging["status"] == "unhealthy"
    assert hanging["metadata"]["error"] == "timed out after 0.3 s"
    assert 300 <= hanging["response_time_ms"] < 1000


def test_check_failed_and_metadata_secrets_are_masked() -> None:
    class Failing(Check):
        async def check(self) -> Outcome:
            raise CheckFailed("cannot reach http://u:pw@exchange/ping?api_key=K123&x=1")

    leaky = Reporting(
        Status.HEALTHY,
        url="https://user:p%40ss@exchange.example/api?token=abc.def&symbol=BTC",
        nested={"dsn": "host=db password=s3cret user=bot", "token": TOKEN},
        ratio=float("nan"),
    )
    checks = [scheduled("failing", Failing()), scheduled("leaky", leaky)]
    with client_for(checks, token=TOKEN) as client:
        response = client.get("/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"})
    found = components(response.json())
    assert found["failing"]["metadata"]["error"] == (
        "cannot reach http://u:***@exchange/ping?api_key=***&x=1"
    )
    assert found["leaky"]["metadata"] == {
        "url": "https://user:***@exchange.example/api?token=***&symbol=BTC",
        "nested": {"dsn": "host=db password=*** user=bot", "token": "***"},
        "ratio": None,
    }
    for secret in ("pw@", "K123", "p%40ss", "abc.def", "s3cret", TOKEN):
        assert secret not in response.text


def test_the_token_guards_details_and_is_never_echoed() -> None:
    checks = [scheduled("database", Reporting(Status.HEALTHY), critical=True)]
    with client_for(checks, token=TOKEN) as client:
        for path in ("/health/detailed", "/health/component/database", "/health/component/nope"):
            missing = client.get(path)
            wrong = client.get(path, headers={"Authorization": "Bearer nope"})
            basic = client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
            for refused in (missing, wrong, basic):
                assert refused.status_code == 401
                assert refused.headers["www-authenticate"] == "Bearer"
                assert "HEALTH_TOKEN" in refused.json()["detail"]
                assert TOKEN not in refused.text
        good = client.get("/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        assert TOKEN not in good.text
        # Probes and Prometheus need no token.
        for path in ("/health", "/health/live", "/health/ready", "/health/metrics"):
            assert client.get(path).status_code == 200


def test_without_a_token_details_are_for_this_machine_only() -> None:
    checks = [scheduled("cpu", Reporting(Status.HEALTHY))]
    with client_for(checks, client=("203.0.113.9", 40000)) as remote:
        refused = remote.get("/health/detailed")
        assert refused.status_code == 403
        assert "HEALTH_TOKEN" in refused.json()["detail"]
        assert remote.get("/health").status_code == 200
    with client_for(checks, client=("::1", 40000)) as local:
        assert local.get("/health/detailed").status_code == 200


def test_an_unknown_component_is_404_listing_the_known_ones() -> None:
    checks = [
        scheduled("database", Reporting(Status.HEALTHY)),
        scheduled("jaeger", Reporting(Status.HEALTHY)),
    ]
    with client_for(checks) as client:
        response = client.get("/health/component/grafana")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "unknown component 'grafana'; known components: database, jaeger",
        "known_components": ["database", "jaeger"],
    }


def test_metrics_are_prometheus_text_per_component() -> None:
    checks = [
        scheduled("database", Reporting(Status.HEALTHY), critical=True),
        scheduled("jaeger", Reporting(Status.DEGRADED)),
        scheduled("bot", Reporting(Status.UNHEALTHY)),
    ]
    before = time.time()
    with client_for(checks) as client:
        response = client.get("/health/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("health_component_status", component="database") == 2
    assert value("health_component_status", component="jaeger") == 1
    assert value("health_component_status", component="bot") == 0
    assert value("health_component_critical", component="database") == 1
    assert value("health_component_critical", component="bot") == 0
    for name, status in (("database", "healthy"), ("jaeger", "degraded"), ("bot", "unhealthy")):
        assert 0 <= value("health_check_duration_seconds", component=name) < 1
        assert before <= value("health_check_timestamp_seconds", component=name) <= time.time()
        # Each run counts once, under the status it found and no other.
        assert value("health_checks_total", component=name, status=status) >= 1
        for other in {"healthy", "degraded", "unhealthy"} - {status}:
            assert value("health_checks_total", component=name, status=other) == 0
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


def test_answers_come_from_the_background_snapshot() -> None:
    database = Reporting(Status.HEALTHY, round=1)
    with client_for([scheduled("database", database)]) as client:
        first = client.get("/health/component/database").json()
        database.outcome = Outcome(Status.HEALTHY, {"round": 2})

        def second_round() -> dict[str, Any] | None:
            answer: dict[str, Any] = client.get("/health/component/database").json()
            return answer if answer["metadata"]["round"] == 2 else None

        later = wait_until(second_round, "the next check round to show")
    assert re.match(ISO_UTC, first["last_check"])
    assert later["last_check"] >= first["last_check"]
    assert database.closed  # resources are released at shutdown


def test_no_setting_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings decodes complex settings from the environment as JSON, and malformed
    JSON there is a SettingsError; ours are comma lists read verbatim, so every malformed value
    is a validation problem named by its variable."""
    aliases = {DATABASE_URL, EXCHANGE_API_URL, ALERT_BRIDGE_TOKEN}
    variables = {ENV_PREFIX + name.upper() for name in HealthSettings.model_fields} | aliases
    for variable in variables:
        monkeypatch.setenv(variable, '{"not": json')
    with pytest.raises(InvalidSettingsError) as raised:
        read_settings(HealthSettings)
    assert "cannot be decoded" not in str(raised.value)
    assert {problem.variable for problem in raised.value.problems} <= variables


def test_malformed_json_in_a_complex_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class WithJson(HealthSettings):  # as a future setting decoded from JSON would be
        thresholds: dict[str, float] = Field(default_factory=dict)

    monkeypatch.setenv("HEALTH_THRESHOLDS", '{"cpu": 90,')
    with pytest.raises(InvalidSettingsError, match=r"^HEALTH_THRESHOLDS: cannot be decoded as"):
        read_settings(WithJson)


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HEALTH_CHECKS", "HEALTH_CRITICAL", "HEALTH_TOKEN", "DATABASE_URL"):
        monkeypatch.setenv(variable, "")
    settings = HealthSettings()
    assert settings.checks is None
    assert settings.critical == ["database", "collector", "prometheus"]
    assert settings.token is None
    assert settings.database_url is None


class Blocking(Check):
    """A buggy plugin: blocking code inside ``async def`` stalls the scheduler's loop."""

    async def check(self) -> Outcome:
        time.sleep(12)  # noqa: ASYNC251 - the bug under test
        return Outcome(Status.HEALTHY)


def test_a_stuck_scheduler_fails_liveness_but_answers_stay_fast() -> None:
    with client_for([scheduled("blocking", Blocking(), timeout=1)]) as client:
        assert client.get("/health/live").status_code == 200
        wait_until(
            lambda: client.get("/health/live").status_code == 503,
            "liveness to notice the stalled scheduler",
            timeout=15,
        )
        started = time.perf_counter()
        response = client.get("/health/detailed")
        assert time.perf_counter() - started < 0.25
        assert response.json()["components"][0]["metadata"] == {"error": "not checked yet"}


def test_isolated_checks_fall_back_to_a_thread_where_forking_is_unsafe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The test client serves the app from a thread of its own: this process has two threads.
    app = create_app([scheduled("cpu", Reporting(Status.HEALTHY))], isolated=True)
    settings = HealthSettings(interval=0.1)
    app.dependency_overrides[get_settings] = lambda: settings
    with caplog.at_level(logging.WARNING, "tbmon.health.app"), TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health").json()["status"] == "healthy"
        assert type(app.state.monitor) is Monitor  # checks on a thread, not in a child
    assert "the health checks run on a thread instead" in caplog.text
