"""tbmon as users install it: wheels into fresh virtual environments, never the checkout.

- The bot side: ``pip install tbmon`` (tbmon-core + tbmon-instrumentation) stays within
  :data:`MAX_PACKAGES` packages and :data:`MAX_BYTES` on disk (issue 16; figures in
  docs/install.md), and a bot run by that environment's ``opentelemetry-instrument`` reaches the
  real collector of the test stack: its span in Jaeger, its metric in Prometheus.
- The stack: tbmon-stack from its wheel, run from a folder outside the checkout, with no
  checkout on ``sys.path``: ``tbmon stack install`` (the packaged install.sh) finds every step
  done, ``tbmon stack up`` on its own ports and data folder with the cached binaries,
  ``status --json`` ready, ``down``.

The wheels are built once per session without build isolation (hatchling from the dev
environment): seconds. Dependencies come from PyPI through pip's cache, pinned by
constraints.txt as CI pins them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from support import CHECKOUT, Backends, wait_until

from tbmon.ports import isolated_settings

pytestmark = pytest.mark.install

#: Issue 16's targets for what a bot's environment gets from ``pip install tbmon``.
MAX_PACKAGES = 30
MAX_BYTES = 70 * 1000 * 1000

#: The distributions, by folder; the root folder is the tbmon metapackage.
FOLDERS = (
    ".",
    "core",
    "instrumentation",
    "processors",
    "health",
    "alert_bridge",
    "otel-collector",
    "stack",
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every distribution's wheel, by distribution name (tbmon_core, ...)."""
    folder = tmp_path_factory.mktemp("wheels")
    for source in FOLDERS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "-q",
                "-w",
                str(folder),
                str(CHECKOUT / source),
            ],
            check=True,
            capture_output=True,
        )
    return {path.name.split("-")[0]: path for path in folder.glob("*.whl")}


def _environment() -> dict[str, str]:
    """This process's environment without anything that would point Python at the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("OTEL_", "TBMON_"))
    }


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def _pip_install(bin_dir: Path, *wheels: Path) -> None:
    """Our wheels by file (so that no index's same-named project is taken instead), the rest
    from the index, pinned as CI pins them."""
    subprocess.run(
        [
            str(bin_dir / "pip"),
            "install",
            "--disable-pip-version-check",
            "-q",
            "-c",
            str(CHECKOUT / "constraints.txt"),
            "--find-links",
            str(wheels[0].parent),
            *map(str, wheels),
        ],
        check=True,
        env=_environment(),
    )


def _site_packages(bin_dir: Path) -> Path:
    found = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(found.stdout.strip())


def _footprint(site: Path) -> tuple[set[str], int]:
    """The installed distributions' names and every file's bytes under ``site``."""
    names = {path.name.split("-")[0].lower() for path in site.glob("*.dist-info")}
    size = sum(path.stat().st_size for path in site.rglob("*") if path.is_file())
    return names, size


#: The bot: a span and a metric of its own through tbmon's meter, nothing configured in code.
BOT = """
from opentelemetry import trace
from tbmon.instrumentation import meter
with trace.get_tracer("install-check").start_as_current_span("installed") as span:
    meter().create_counter("installed_bot_checks").add(1)
    print(format(span.get_span_context().trace_id, "032x"), flush=True)
"""


@pytest.mark.stack
def test_the_bot_side_is_lean_and_exports_to_the_collector(
    wheels: dict[str, Path], tmp_path: Path, backends: Backends
) -> None:
    bin_dir = _venv(tmp_path / "bot-venv")
    site = _site_packages(bin_dir)
    before, size_before = _footprint(site)
    _pip_install(bin_dir, wheels["tbmon"], wheels["tbmon_core"], wheels["tbmon_instrumentation"])
    after, size_after = _footprint(site)
    added, size = after - before, size_after - size_before
    print(f"pip install tbmon: {len(added)} packages, {size / 1e6:.1f} MB ({sorted(added)})")
    assert len(added) <= MAX_PACKAGES, sorted(added)
    assert size <= MAX_BYTES
    # Nothing of the servers or the stack, and no ccxt: the bot brings its own.
    assert (
        added & {"fastapi", "uvicorn", "ccxt", "typer", "rich", "psycopg", "tbmon_stack"} == set()
    )

    service = f"installed-bot-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "python"), "-c", BOT],
        env={
            **_environment(),
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": backends.settings.url(backends.settings.otlp_grpc_port),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Traceback" not in done.stderr, done.stderr
    trace_id = done.stdout.split()[-1]
    spans = wait_until(lambda: backends.jaeger_trace(trace_id), f"trace {trace_id} in Jaeger")
    assert [s["operationName"] for s in spans] == ["installed"]
    wait_until(
        lambda: backends.prometheus(f'installed_bot_checks_total{{job="{service}"}}'),
        f"installed_bot_checks_total of {service} in Prometheus",
    )


@pytest.fixture
def stack_venv(wheels: dict[str, Path], tmp_path: Path) -> Path:
    bin_dir = _venv(tmp_path / "stack-venv")
    _pip_install(bin_dir, *(path for name, path in wheels.items() if name != "tbmon"))
    return bin_dir


def test_the_stack_runs_from_its_wheel_without_a_checkout(stack_venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = subprocess.run(
        [
            str(stack_venv / "python"),
            "-c",
            "import sys, tbmon.stack, tbmon.collector; "
            "print(tbmon.stack.__file__); print(tbmon.collector.__file__); print(sys.path)",
        ],
        cwd=elsewhere,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    stack_file, collector_file, path = located.stdout.splitlines()
    site = _site_packages(stack_venv)
    assert Path(stack_file).is_relative_to(site)
    assert Path(collector_file).is_relative_to(site)
    assert str(CHECKOUT) not in path

    settings = isolated_settings(tmp_path / "data")
    env = {**_environment(), **settings.environment()}

    def tbmon(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``tbmon ARGS`` from the venv, outside the checkout; its whole process group is killed
        if it outlives ``timeout`` (install.sh's Go builds would outlive a killed ``tbmon``)."""
        with subprocess.Popen(
            [str(stack_venv / "tbmon"), *args],
            cwd=elsewhere,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    # The packaged install.sh, as a fresh machine runs it after `pipx install tbmon-stack`: here
    # (after `make install`) every step finds its result in place, which also shows that the
    # wheel's pins hash as the checkout's do.
    installed = tbmon("stack", "install", timeout=3600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "tbmon is installed already" in installed.stdout
    assert installed.stdout.count("cached (") == 10, installed.stdout
    assert not (elsewhere / ".venv").exists()

    try:
        up = tbmon("stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        document = json.loads(tbmon("stack", "status", "--json").stdout)
        states = {c["name"]: c["state"] for c in document["components"]}
        assert states
        assert set(states.values()) == {"ready"}, states
        # tbmon's own services run on the venv's Python, from its site-packages.
        commands = [psutil.Process(c["pid"]).cmdline() for c in document["components"]]
        ours = [
            c for c in commands if Path(c[0]).parent == stack_venv and c[1:3] == ["-m", "tbmon"]
        ]
        assert ours, commands
        assert not [c for c in commands if any(str(CHECKOUT) in part for part in c)], commands
    finally:
        down = tbmon("stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    after = json.loads(tbmon("stack", "status", "--json").stdout)
    assert {c["state"] for c in after["components"]} <= {"stopped"}, after
