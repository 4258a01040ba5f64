"""Fixtures: a real local stack on free ports, shared by the tests of one session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Backends, running_stack

from tbmon.ports import isolated_settings
from tbmon.settings import StackSettings
from tbmon.stack.supervisor import Supervisor


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> StackSettings:
    return isolated_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def stack(stack_settings: StackSettings) -> Iterator[Supervisor]:
    """The whole local stack, started once per session and stopped at its end, even on failure."""
    with running_stack(stack_settings) as supervisor:
        yield supervisor


@pytest.fixture(scope="session")
def backends(stack: Supervisor) -> Backends:
    return Backends(stack.settings)


@pytest.fixture(autouse=True)
def bot_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's bots (in process and the ones it starts) keep their high-water marks in the
    test's own directory (TBMON_STATE_DIR), never in the home directory or another test's."""
    state = tmp_path / "bot-state"
    monkeypatch.setenv("TBMON_STATE_DIR", str(state))
    return state
