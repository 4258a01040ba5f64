"""`tbmon doctor` says which Docker Compose is installed, and that the Compose stack needs v2.

No Docker engine runs here: `docker` and `docker-compose` are scripts on PATH that print what
the real CLIs print (`docker compose version --short`: `2.29.1`; Compose v1's
`docker-compose version --short`: `1.29.2`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tbmon.settings import StackSettings
from tbmon.stack.doctor import COMPOSE_FILE, Doctor, Status
from tbmon.stack.operations import OperationsSettings


def _cli(folder: Path, name: str, version: str | None) -> None:
    script = folder / name
    answer = (
        f'echo "{version}"' if version else "echo \"'compose' is not a docker command\" >&2; exit 1"
    )
    script.write_text(f"#!/bin/sh\n{answer}\n")
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("plugin", "standalone", "status", "shown"),
    [
        ("2.29.1", None, Status.OK, "`docker compose` is v2.29.1"),
        ("v2.30.3-desktop.1", "1.29.2", Status.OK, "`docker compose` is v2.30.3"),
        (None, "1.29.2", Status.FAIL, "`docker-compose` is v1.29.2: Compose v1 rejects"),
        ("2.17.0", None, Status.FAIL, "older than 2.20, it rejects `depends_on.required`"),
        (None, None, Status.OK, "not installed"),
    ],
)
def test_doctor_names_the_compose_it_finds_and_that_v1_cannot_load_the_stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plugin: str | None,
    standalone: str | None,
    status: Status,
    shown: str,
) -> None:
    if plugin is not None or standalone is not None:
        _cli(tmp_path, "docker", plugin)
    if standalone is not None:
        _cli(tmp_path, "docker-compose", standalone)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    doctor = Doctor(StackSettings.model_construct(), OperationsSettings.model_construct())
    (finding,) = doctor.docker_compose()
    assert finding.status is status
    assert shown in finding.detail
    if "Compose v1 rejects" in shown:  # the file it names is the one the stack ships
        assert f"rejects {COMPOSE_FILE} " in finding.detail
        assert COMPOSE_FILE.is_file()
    if status is Status.FAIL:
        assert (
            "docker compose -f stack/src/tbmon/stack/docker-compose.monitoring.yml up -d"
            in finding.fix
        )
