"""Start, watch and stop the local stack's processes.

Each started process gets a pid file holding its pid and start time under ``<data>/run``, and a
log under ``<data>/logs``. A pid file is trusted only while a live process with that pid *and*
that start time exists, so a stale file (after a reboot, a crash or pid reuse) never makes us
signal a stranger's process. The start time is counted from boot, not read off the wall clock:
a clock step (NTP, a VM's clock sync) must not make the stack disown its own processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
from dotenv import dotenv_values

from tbmon.ports import port_holder
from tbmon.settings import ENV_FILE, StackSettings, env_file
from tbmon.stack.components import (
    COMPONENTS,
    SECRET_VARIABLES,
    Component,
    Layout,
    select,
    startable,
)

State = Literal["ready", "starting", "dead", "stopped"]

_STOP_GRACE_SECONDS = 15.0
_POLL_SECONDS = 0.1
_START_MARKER = "--- tbmon started"


class StackError(RuntimeError):
    """The stack could not do what was asked; the message says what to do."""


@dataclass
class ComponentStatus:
    """What `tbmon stack status` reports of one component."""

    name: str
    state: State
    pid: int | None
    urls: dict[str, str]
    memory_rss_bytes: int | None
    log: str
    summary: str = field(repr=False, default="")


class Supervisor:
    """The local stack for one set of settings (one data directory, one set of ports) and one
    table of components (the single-node stack's by default; ``tbmon.stack.scaled``'s for the
    scaled topology)."""

    def __init__(
        self, settings: StackSettings, components: Sequence[Component] = COMPONENTS
    ) -> None:
        self.settings = settings
        self.components = tuple(components)

    def layout(self, component: Component) -> Layout:
        return Layout(self.settings, component.name)

    # -- up ---------------------------------------------------------------------------------

    def up(self, names: list[str] | None = None) -> list[ComponentStatus]:
        """Start what is not running, then wait until every named component is ready."""
        components = startable(names, self.components)
        to_start = [c for c in components if self._process(c) is None]
        paths = {c.name: c.binary.path(self.settings.cache_dir) for c in to_start}
        self._check_ports(to_start)
        for component in to_start:
            self._start(component, paths[component.name])
        self._wait_ready(components)
        return self.status(names)

    def _check_ports(self, components: list[Component]) -> None:
        for component in components:
            for port_field in component.ports:
                port = getattr(self.settings, port_field)
                holder = port_holder(self.settings.bind_host, port)
                if holder is not None:
                    variable = f"TBMON_{port_field.upper()}"
                    raise StackError(
                        f"{component.name}: port {port} ({variable}) on {self.settings.bind_host} "
                        f"is in use{holder}; stop that process or choose another port with "
                        f"{variable}=..."
                    )

    def _start(self, component: Component, program: Path) -> None:
        layout = self.layout(component)
        for folder in (layout.data, layout.log.parent, layout.pid.parent):
            folder.mkdir(parents=True, exist_ok=True)
        if component.prepare is not None:
            component.prepare(layout)
        argv = [str(program), *component.args(layout)]
        with layout.log.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n{_START_MARKER} {component.name} at {stamp}: {argv}\n".encode())
            log.flush()
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=layout.data,
                env=self.environment(component),
                start_new_session=True,
            )
        started = _since_boot(psutil.Process(process.pid))
        layout.pid.write_text(json.dumps({"pid": process.pid, "started_after_boot": started}))

    def environment(self, component: Component | None = None) -> dict[str, str]:
        """The environment a component starts with: tbmon's ``.env`` (``tbmon.settings.env_file``)
        under ours, each setting as TBMON_*, and of the secrets only those it reads.

        Components run in their own data folder, where no ``.env`` is; reading the file here
        gives each one the configuration ``tbmon stack up`` was given.
        """
        s = self.settings
        env: dict[str, str] = {}
        if env_file().is_file():
            env.update({k: v for k, v in dotenv_values(env_file()).items() if v is not None})
        env.update(os.environ)
        env.pop(ENV_FILE, None)  # the file's values are here; its secrets only for their readers
        allowed = component.secrets if component is not None else frozenset()
        for secret in SECRET_VARIABLES - allowed:
            env.pop(secret, None)
        if component is not None:
            for name, value in component.environment(self.layout(component)).items():
                env.setdefault(name, value)
        env.update(s.environment())
        env["TBMON_COLLECTOR_STORAGE_DIR"] = str(s.data_dir / "collector" / "queue")
        env["TBMON_JAEGER_BADGER_DIR"] = str(s.data_dir / "jaeger" / "badger")
        env["TBMON_JAEGER_OTLP_ENDPOINT"] = f"{s.bind_host}:{s.jaeger_otlp_grpc_port}"
        env["TBMON_LOGS_OTLP_ENDPOINT"] = s.url(
            s.victorialogs_port, "/insert/opentelemetry/v1/logs"
        )
        env["TBMON_PROCESSORS_ENDPOINT"] = f"{s.bind_host}:{s.processors_port}"
        return env

    def _wait_ready(self, components: list[Component]) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        with ThreadPoolExecutor(max_workers=len(components) or 1) as pool:
            failures = [
                failure
                for failure in pool.map(lambda c: self._await_one(c, deadline), components)
                if failure is not None
            ]
        if failures:
            raise StackError("\n\n".join(failures))

    def _await_one(self, component: Component, deadline: float) -> str | None:
        url = component.ready_url(self.settings)
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._process(component) is None:
                    return self._failure(component, "exited before it was ready")
                if _answers(client, url):
                    return None
                time.sleep(_POLL_SECONDS)
        return self._failure(
            component, f"was not ready at {url} within {self.settings.ready_timeout:g} s"
        )

    def _failure(self, component: Component, what: str) -> str:
        layout = self.layout(component)
        run = this_run(layout.log)
        # A program that rejects its flags may print its usage after the error: show the error.
        errors = [line for line in run[:-20] if "error" in line.lower()][-10:]
        shown = "\n".join(f"  | {line}" for line in [*errors, *run[-20:]])
        return f"{component.name} {what}. From its log {layout.log}:\n{shown}"

    # -- down -------------------------------------------------------------------------------

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop the named components this stack started (all by default); returns their names."""
        stopped = []
        for component in reversed(select(names, self.components)):
            process = self._process(component)
            if process is not None:
                _terminate(process)
                stopped.append(component.name)
            self.layout(component).pid.unlink(missing_ok=True)
        return stopped

    # -- status -----------------------------------------------------------------------------

    def status(self, names: list[str] | None = None) -> list[ComponentStatus]:
        components = select(names, self.components)
        with ThreadPoolExecutor(max_workers=len(components) or 1) as pool:
            return list(pool.map(self._status_of, components))

    def _status_of(self, component: Component) -> ComponentStatus:
        layout = self.layout(component)
        process = self._process(component)
        state: State
        rss = None
        if process is None:
            state = "dead" if layout.pid.exists() else "stopped"
        else:
            with httpx.Client(timeout=1.0) as client:
                ready = _answers(client, component.ready_url(self.settings))
            state = "ready" if ready else "starting"
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                rss = None
        return ComponentStatus(
            name=component.name,
            state=state,
            pid=process.pid if process else None,
            urls=component.urls(self.settings),
            memory_rss_bytes=rss,
            log=str(layout.log),
            summary=component.summary,
        )

    def status_document(self, names: list[str] | None = None) -> dict[str, object]:
        """`tbmon stack status --json`: each component, and the stack's total memory."""
        statuses = self.status(names)
        return {
            "data_dir": str(self.settings.data_dir),
            "components": [asdict(s) for s in statuses],
            "memory_rss_bytes": sum(s.memory_rss_bytes or 0 for s in statuses),
        }

    def _process(self, component: Component) -> psutil.Process | None:
        """The live process a pid file names, or None (missing, stale or reused pid)."""
        try:
            record = json.loads(self.layout(component).pid.read_text())
            process = psutil.Process(record["pid"])
            if abs(_since_boot(process) - record["started_after_boot"]) > 0.05:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except (OSError, ValueError, KeyError, psutil.Error):
            return None
        return process


def _since_boot(process: psutil.Process) -> float:
    """Seconds from boot to the process's start: both terms move with the clock, not their gap."""
    return float(process.create_time() - psutil.boot_time())


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).is_success
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: how a helper process of a test or a
    benchmark ends, even on failure. Returns its exit code."""
    process.terminate()
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)


def _terminate(process: psutil.Process) -> None:
    try:
        process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([process], timeout=_STOP_GRACE_SECONDS)
        for straggler in alive:
            straggler.kill()
        psutil.wait_procs(alive, timeout=5)
    except psutil.NoSuchProcess:
        return


def this_run(path: Path) -> list[str]:
    """The log lines written since the supervisor last started the component."""
    lines = tail_lines(path, 2000)
    starts = [i for i, line in enumerate(lines) if line.startswith(_START_MARKER)]
    return lines[starts[-1] + 1 :] if starts else lines


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file (empty if it does not exist)."""
    try:
        with path.open(errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=count)]
    except FileNotFoundError:
        return []


def follow(path: Path) -> Iterator[str]:
    """Lines appended to ``path`` from now on, as ``tail -f`` shows them."""
    with path.open(errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)
