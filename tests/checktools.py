"""The real checkers the config tests run, built or installed once into tbmon's cache.

- ``compose-check`` (tests/tools/compose-check): Docker Compose's own loader, compose-go, which
  interpolates variables, validates against the Compose Specification schema and checks the
  model's consistency, as ``docker compose config`` does; built with ``go build``.
- The Compose Specification JSON schema, from the same compose-go module.
- The collector image's health probe (otel-collector/healthcheck), built as the Dockerfile does.
- Grafana's LogQL grammar (@grafana/lezer-logql, pinned in tests/tools/logql), installed with
  ``npm ci``.

Each lands in ``<cache_dir>/checktools/<name>/<hash of its sources>/``, so a change to the sources
rebuilds it and an unchanged one is reused across sessions and worktrees.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from support import CHECKOUT

from tbmon.settings import StackSettings

TOOLS = CHECKOUT / "tests" / "tools"
COMPOSE_CHECK = TOOLS / "compose-check"
LOGQL = TOOLS / "logql"
HEALTHCHECK = CHECKOUT / "otel-collector" / "healthcheck"
COMPOSE_GO = "github.com/compose-spec/compose-go/v2"


def _folder(name: str, sources: list[Path]) -> Path:
    digest = hashlib.sha256()
    for source in sorted(sources):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return StackSettings().cache_dir / "checktools" / name / digest.hexdigest()[:16]


def _go_env() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


def _go_build(name: str, module: Path) -> Path:
    sources = [path for path in module.iterdir() if path.is_file()]
    program = _folder(name, sources) / name
    if not program.is_file():
        program.parent.mkdir(parents=True, exist_ok=True)
        partial = program.with_suffix(".partial")
        subprocess.run(
            ["go", "build", "-trimpath", "-o", str(partial), "."],
            cwd=module,
            env=_go_env(),
            check=True,
            capture_output=True,
        )
        partial.replace(program)
    return program


def module_dir(folder: Path, module: str) -> Path:
    """Where ``module``, at the version ``folder``/go.mod pins, is unpacked (downloaded first if
    it is not in Go's module cache)."""
    listed = subprocess.run(
        ["go", "mod", "download", "-json", module],
        cwd=folder,
        env=_go_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(json.loads(listed.stdout)["Dir"])


@cache
def compose_check() -> Path:
    return _go_build("compose-check", COMPOSE_CHECK)


@cache
def healthcheck_probe() -> Path:
    return _go_build("healthcheck", HEALTHCHECK)


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema that Docker Compose validates against."""
    folder = module_dir(COMPOSE_CHECK, COMPOSE_GO)
    schema: dict[str, Any] = json.loads((folder / "schema" / "compose-spec.json").read_text())
    return schema


def load_compose(
    compose_file: Path,
    env: dict[str, str],
    *,
    env_files: Sequence[Path] = (),
    profiles: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Load a Compose file with Docker Compose's loader in exactly ``env`` (no other variables)."""
    argv = [str(compose_check())]
    for env_file in env_files:
        argv += ["-env-file", str(env_file)]
    for profile in profiles:
        argv += ["-profile", profile]
    return subprocess.run(
        [*argv, str(compose_file)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@cache
def _logql_folder() -> Path:
    sources = [LOGQL / "package.json", LOGQL / "package-lock.json", LOGQL / "parse.mjs"]
    folder = _folder("logql", sources)
    if not (folder / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent))
        for source in sources:
            shutil.copy2(source, staging / source.name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=staging,
            check=True,
            capture_output=True,
        )
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder


def parse_logql(expressions: list[str]) -> dict[str, str | None]:
    """Each expression's first syntax error under Grafana's LogQL grammar (None: it parses)."""
    result = subprocess.run(
        ["node", "parse.mjs"],
        cwd=_logql_folder(),
        input=json.dumps(expressions),
        capture_output=True,
        text=True,
        check=True,
    )
    return {item["expr"]: item["error"] for item in json.loads(result.stdout)}
