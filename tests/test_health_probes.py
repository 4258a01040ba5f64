"""The probe endpoints (``/health``, ``/live``, ``/ready``, ``/detailed``) byte for byte: their
shape, field order, codes and headers, the token rules, what other methods and a trailing slash
get, the per-second answer cache, and that every other path still reaches FastAPI."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from test_health_api import LOOPBACK, TOKEN, Reporting, scheduled

from tbmon.health import HealthSettings, Status, create_app
from tbmon.health.app import get_settings
from tbmon.health.monitor import Results
from tbmon.health.registry import ScheduledCheck
from tbmon.version import __version__

with warnings.catch_warnings():  # Starlette prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PROBES = ("/health", "/health/live", "/health/ready", "/health/detailed")
ANSWER_KEYS = ["status", "components", "check_time", "uptime_seconds", "version"]
COMPONENT_KEYS = ["name", "status", "last_check", "response_time_ms", "metadata"]


@contextmanager
def serving(
    checks: list[ScheduledCheck], client: tuple[str, int] = LOOPBACK, **settings: Any
) -> Iterator[tuple[FastAPI, TestClient]]:
    """The app with its lifespan running; checks every 60 s, so the snapshot stays put."""
    app = create_app(checks)
    overridden = HealthSettings(**{"interval": 60.0, **settings})
    app.dependency_overrides[get_settings] = lambda: overridden
    with TestClient(app, client=client) as test_client:
        yield app, test_client


def mixed() -> list[ScheduledCheck]:
    return [
        scheduled("database", Reporting(Status.HEALTHY, connections=3), critical=True),
        scheduled("jaeger", Reporting(Status.DEGRADED, error="slow")),
        scheduled("bot", Reporting(Status.UNHEALTHY, error="down")),
    ]


def ordered(body: bytes) -> Any:
    """The JSON with every object as a list of pairs, so field order is compared too."""
    return json.loads(body, object_pairs_hook=list)


def test_the_probes_answer_compact_json_in_the_documented_order_with_their_headers() -> None:
    with serving(mixed()) as (_, client):
        answers = {path: client.get(path) for path in PROBES}
    for path, response in answers.items():
        assert response.status_code == 200, path  # degraded is 200
        cache = b"no-store" if path == "/health/live" else b"max-age=60"
        assert response.headers.raw == [
            (b"cache-control", cache),
            (b"content-length", str(len(response.content)).encode()),
            (b"content-type", b"application/json"),
        ]
        answer = json.loads(response.content)
        assert response.content == json.dumps(answer, separators=(",", ":")).encode()
        assert [key for key, _ in ordered(response.content)] == ANSWER_KEYS
        for component in ordered(response.content)[1][1]:
            assert [key for key, _ in component] == COMPONENT_KEYS
        assert answer["version"] == __version__
        assert isinstance(answer["uptime_seconds"], int)
    overall, live, ready, detailed = (answers[path].json() for path in PROBES)
    assert overall["status"] == "degraded"
    assert [(c["name"], c["status"]) for c in overall["components"]] == [
        ("database", "healthy"),
        ("jaeger", "degraded"),
        ("bot", "unhealthy"),
    ]
    assert all(c["metadata"] == {} for c in overall["components"])
    assert [c["metadata"] for c in detailed["components"]] == [
        {"connections": 3},
        {"error": "slow"},
        {"error": "down"},
    ]
    assert (ready["status"], [c["name"] for c in ready["components"]]) == ("healthy", ["database"])
    assert (live["status"], live["components"]) == ("healthy", [])


def test_a_critical_failure_is_503_and_a_stuck_checker_fails_liveness() -> None:
    checks = [scheduled("database", Reporting(Status.UNHEALTHY, error="refused"), critical=True)]
    with serving(checks) as (app, client):
        for path in ("/health", "/health/ready", "/health/detailed"):
            response = client.get(path)
            assert (response.status_code, response.json()["status"]) == (503, "unhealthy")
            assert response.headers["cache-control"] == "max-age=60"
        assert client.get("/health/live").status_code == 200
        app.state.monitor.alive = lambda: False  # as when the checker stalls or dies
        live = client.get("/health/live")
        assert (live.status_code, live.json()["status"]) == (503, "unhealthy")
        assert live.headers["cache-control"] == "no-store"


def test_detailed_refusals_are_the_same_bytes_as_the_component_routes() -> None:
    """``/health/component/NAME`` stays on FastAPI: both refuse through one operator check."""
    checks = [scheduled("database", Reporting(Status.HEALTHY), critical=True)]
    with serving(checks, token=TOKEN) as (_, client):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = client.get("/health/detailed", headers=headers)
            reference = client.get("/health/component/database", headers=headers)
            assert refused.status_code == 401
            assert refused.headers.raw == reference.headers.raw
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.content == reference.content
            assert refused.json() == {
                "detail": "send 'Authorization: Bearer <token>' with the token in HEALTH_TOKEN"
            }
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/health/detailed", headers=good).status_code == 200
        padded = {"Authorization": f"bearer   {TOKEN} "}  # the scheme's case and spaces
        assert client.get("/health/detailed", headers=padded).status_code == 200
    with serving(checks, client=("203.0.113.9", 40000)) as (_, remote):
        refused = remote.get("/health/detailed")
        reference = remote.get("/health/component/database")
        assert refused.status_code == 403
        assert (refused.headers.raw, refused.content) == (reference.headers.raw, reference.content)
        assert refused.json()["detail"].startswith("detailed health is only served to this")
        # It says where to set the token and how to send it, to this very host.
        detail = refused.json()["detail"]
        assert "set HEALTH_TOKEN (16 or more characters" in detail
        assert "stack/src/tbmon/stack/.env" in detail
        host = remote.base_url.netloc.decode()
        assert f"`curl -H 'Authorization: Bearer <token>' http://{host}/health/detailed`" in detail
        assert remote.get("/health").status_code == 200  # the probes need no token


def test_other_methods_and_a_trailing_slash_get_what_fastapi_gives_them() -> None:
    with serving(mixed()) as (_, client):
        not_allowed = client.post("/health/metrics")  # a route FastAPI still serves
        for path in PROBES:
            for method in ("HEAD", "POST", "DELETE"):
                response = client.request(method, path)
                assert response.status_code == 405, (method, path)
                assert response.headers.raw == not_allowed.headers.raw
                if method != "HEAD":
                    assert response.content == not_allowed.content
            redirect = client.get(path + "/", follow_redirects=False)
            assert redirect.status_code == 307
            assert redirect.headers.raw == [
                (b"content-length", b"0"),
                (b"location", f"http://testserver{path}".encode()),
            ]
        assert client.get("/health/live?probe=1").status_code == 200  # the query is ignored


def test_every_other_path_reaches_fastapi() -> None:
    with serving(mixed()) as (_, client):
        one = client.get("/health/component/database")
        unknown = client.get("/health/component/grafana")
        metrics = client.get("/health/metrics")
        missing = client.get("/nope")
        under = client.get("/health/lives")
    assert (one.status_code, one.json()["metadata"]) == (200, {"connections": 3})
    assert one.headers["cache-control"] == "max-age=60"
    assert unknown.status_code == 404
    assert unknown.json()["known_components"] == ["database", "jaeger", "bot"]
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    for response in (missing, under):
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def _get(app: FastAPI, path: str) -> tuple[int, bytes]:
    """One GET straight through the ASGI app: its status and its body object."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": LOOPBACK,
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    body: bytes = sent[1]["body"]
    return sent[0]["status"], body


def _wait_for_a_fresh_second() -> None:
    """Sleep to just after the next whole second, so a test's next calls share one second."""
    time.sleep(1.02 - time.time() % 1)


def test_answers_are_built_once_a_second_and_follow_a_new_snapshot_at_once() -> None:
    checks = [scheduled("database", Reporting(Status.HEALTHY), critical=True)]
    with serving(checks) as (app, _):
        monitor: Results = app.state.monitor
        for path in PROBES:
            _wait_for_a_fresh_second()
            _, first = asyncio.run(_get(app, path))
            _, again = asyncio.run(_get(app, path))
            assert again is first  # the same bytes object: rendered once this second
            _wait_for_a_fresh_second()
            _, later = asyncio.run(_get(app, path))
            assert json.loads(later)["check_time"] > json.loads(first)["check_time"]
            assert json.loads(later)["uptime_seconds"] >= json.loads(first)["uptime_seconds"]

        _wait_for_a_fresh_second()
        before = {path: asyncio.run(_get(app, path)) for path in PROBES}
        database = monitor.snapshot["database"]
        monitor.record(replace(database, status=Status.UNHEALTHY, metadata={"error": "gone"}))
        after = {path: asyncio.run(_get(app, path)) for path in PROBES}
    for path in ("/health", "/health/ready", "/health/detailed"):
        assert before[path][0] == 200
        status, body = after[path]
        assert (status, json.loads(body)["status"]) == (503, "unhealthy"), path
    assert json.loads(after["/health/detailed"][1])["components"][0]["metadata"] == {
        "error": "gone"
    }
    assert after["/health/live"] == before["/health/live"]  # liveness ignores dependencies
