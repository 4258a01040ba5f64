"""The distribution's shape: every folder the design card names is importable as tbmon.<folder>."""

from __future__ import annotations

import importlib
import re
import tomllib

import pytest
from pydantic import ValidationError

from tbmon.settings import PROJECT_ROOT, StackSettings

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_python_folder_is_a_listed_package() -> None:
    listed = set(SETUPTOOLS["packages"])
    found = set()
    for package, folder in SETUPTOOLS["package-dir"].items():
        for init in (PROJECT_ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(PROJECT_ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed


@pytest.mark.parametrize("package", SETUPTOOLS["packages"])
def test_packages_import(package: str) -> None:
    importlib.import_module(package)


def test_makefile_type_checks_every_mapped_folder() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    match = re.search(r"^MAPPED := (.+)$", makefile, re.MULTILINE)
    assert match is not None
    mapped = {folder for package, folder in SETUPTOOLS["package-dir"].items() if package != "tbmon"}
    assert set(match.group(1).split()) == mapped


def test_two_components_on_one_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="TBMON_PROMETHEUS_PORT and TBMON_METRICS_PORT"):
        StackSettings(metrics_port=9999, prometheus_port=9999)
    with pytest.raises(ValidationError, match="not a TCP port"):
        StackSettings(metrics_port=70000)
