"""The distributions' shape: one source root per design-card folder, disk paths equal imports.

Each folder (core/, instrumentation/, processors/, health/, alert_bridge/, otel-collector/,
stack/) is its own distribution with its own ``src/tbmon/`` portion of the PEP 420 namespace
package ``tbmon``; the root pyproject.toml is the ``tbmon`` metapackage a bot installs.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError
from support import CHECKOUT

from tbmon.settings import StackSettings

#: folder -> distribution name.
DISTRIBUTIONS = {
    "core": "tbmon-core",
    "instrumentation": "tbmon-instrumentation",
    "processors": "tbmon-processors",
    "health": "tbmon-health",
    "alert_bridge": "tbmon-alert-bridge",
    "otel-collector": "tbmon-collector",
    "stack": "tbmon-stack",
}


def _pyproject(folder: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((folder / "pyproject.toml").read_text())


def _modules(folder: str) -> list[str]:
    """Every module under ``folder``'s source root, named by its path."""
    src = CHECKOUT / folder / "src"
    names = []
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize(("folder", "name"), DISTRIBUTIONS.items())
def test_each_folder_is_a_distribution_with_one_source_root(folder: str, name: str) -> None:
    project = _pyproject(CHECKOUT / folder)
    assert project["project"]["name"] == name
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/tbmon"]
    # A namespace package: no portion claims tbmon itself.
    assert not (CHECKOUT / folder / "src" / "tbmon" / "__init__.py").exists()


def test_no_code_outside_the_source_roots() -> None:
    stray = [
        str(path.relative_to(CHECKOUT))
        for folder in DISTRIBUTIONS
        for path in (CHECKOUT / folder).rglob("*.py")
        if not path.is_relative_to(CHECKOUT / folder / "src")
        and "kubernetes" not in path.parts  # none today; the chart's files are not Python
    ]
    assert stray == []
    assert not (CHECKOUT / "tbmon").exists()


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_every_module_imports_from_the_path_its_name_says(folder: str) -> None:
    for name in _modules(folder):
        module = importlib.import_module(name)
        expected = CHECKOUT / folder / "src" / Path(*name.split("."))
        found = Path(module.__file__ or "")
        assert found in (expected.with_suffix(".py"), expected / "__init__.py"), name


def test_the_bot_side_is_core_and_instrumentation_only() -> None:
    project = _pyproject(CHECKOUT)["project"]
    assert project["name"] == "tbmon"
    assert {re.split(r"[=<>\[]", d)[0] for d in project["dependencies"]} == {
        "tbmon-core",
        "tbmon-instrumentation",
    }
    bot_side = _pyproject(CHECKOUT / "instrumentation")["project"]["dependencies"]
    servers = {"fastapi", "uvicorn", "ccxt", "typer", "rich", "psycopg", "hyperscan"}
    assert {re.split(r"[=<>\[; ]", d)[0] for d in bot_side} & servers == set()
    assert set(project["optional-dependencies"]) >= {"http", "stack", "dev"}


def test_the_dev_install_installs_every_distribution_editable() -> None:
    script = (CHECKOUT / "stack/src/tbmon/stack/provision/install.sh").read_text()
    assert set(re.findall(r'-e "\$CHECKOUT/([\w-]+)"', script)) == set(DISTRIBUTIONS)


def test_two_components_on_one_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="TBMON_PROMETHEUS_PORT and TBMON_METRICS_PORT"):
        StackSettings(metrics_port=9999, prometheus_port=9999)
    with pytest.raises(ValidationError, match="not a TCP port"):
        StackSettings(metrics_port=70000)
