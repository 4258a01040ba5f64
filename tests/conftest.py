"""Fixtures: a real local stack on free ports, shared by the tests of one session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Backends, free_ports

from tbmon.settings import StackSettings
from tbmon.stack.supervisor import Supervisor


def isolated_settings(data_dir: Path) -> StackSettings:
    """Settings for a private stack: its own data folder and a free port for every port field."""
    fields = list(StackSettings().ports())
    ports = dict(zip(fields, free_ports(len(fields)), strict=True))
    return StackSettings.model_validate({"data_dir": data_dir, **ports})


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> StackSettings:
    return isolated_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def stack(stack_settings: StackSettings) -> Iterator[Supervisor]:
    """The whole local stack, started once per session and stopped at its end, even on failure."""
    supervisor = Supervisor(stack_settings)
    try:
        supervisor.up()
        yield supervisor
    finally:
        supervisor.down()


@pytest.fixture(scope="session")
def backends(stack: Supervisor) -> Backends:
    return Backends(stack.settings)
