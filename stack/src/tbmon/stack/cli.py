"""`tbmon stack up | down | status | logs`: the local stack from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tbmon.settings import InvalidSettingsError, get_stack_settings, read_settings
from tbmon.stack import dashboards as dashboards_code
from tbmon.stack.binaries import BinaryMissingError
from tbmon.stack.components import UnknownComponentError, component_names, select
from tbmon.stack.render import RenderError, render_alertmanager, render_rules
from tbmon.stack.resources import INSTALL_SCRIPT
from tbmon.stack.scaled import SCALED_COMPONENTS, ScaledSettings
from tbmon.stack.supervisor import ComponentStatus, StackError, Supervisor, follow, tail_lines

app = typer.Typer(help="Run the real backends on this machine, without Docker.")
console = Console()
errors = Console(stderr=True)

Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Components (default: all). One of: {', '.join(component_names())}."),
]


Topology = Annotated[
    str,
    typer.Option(
        "--topology",
        help="single: one of each component; scaled: agents, gateways and the backends' "
        "cluster modes on their own ports and data folder (TBMON_SCALED_*, docs/scaling.md).",
    ),
]
TOPOLOGIES = ("single", "scaled")


def _supervisor(topology: str = "single") -> Supervisor:
    if topology not in TOPOLOGIES:
        raise _fail(ValueError(f"unknown topology {topology!r}; one of: single, scaled"), 2)
    if topology == "scaled":
        return Supervisor(read_settings(ScaledSettings), SCALED_COMPONENTS)
    return Supervisor(get_stack_settings())


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
    return typer.Exit(code)


@app.command()
def install() -> None:
    """Provision the backends on this machine (Debian packages, Go builds cached in
    ~/.cache/tbmon): the packaged install.sh, as `make install` runs it in a checkout."""
    environment = {**os.environ, "TBMON_PYTHON": sys.executable}
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=environment, check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


@app.command()
def up(names: Names = None, topology: Topology = "single") -> None:
    """Start the stack (or the named components) and wait until each one is ready."""
    supervisor = _supervisor(topology)
    try:
        with console.status("starting the stack and waiting for every component to be ready"):
            statuses = supervisor.up(names)
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    except (StackError, BinaryMissingError, RenderError) as error:
        raise _fail(error) from error
    _print_table(statuses)


@app.command()
def down(names: Names = None, topology: Topology = "single") -> None:
    """Stop the processes this stack started (all, or the named ones)."""
    try:
        stopped = _supervisor(topology).down(names)
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    names: Names = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    topology: Topology = "single",
) -> None:
    """Each component's state, pid, memory and URLs."""
    supervisor = _supervisor(topology)
    try:
        if as_json:
            typer.echo(json.dumps(supervisor.status_document(names), indent=2))
        else:
            _print_table(supervisor.status(names))
    except UnknownComponentError as error:
        raise _fail(error, 2) from error


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(component_names())}.")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines.")] = 50,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    topology: Topology = "single",
) -> None:
    """A component's log."""
    supervisor = _supervisor(topology)
    try:
        (component,) = select([name], supervisor.components)
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    log = supervisor.layout(component).log
    for line in tail_lines(log, lines):
        typer.echo(line)
    if follow_:
        for line in follow(log):
            typer.echo(line)


#: What `tbmon stack render` renders.
RENDERED = ("alertmanager", "rules", "dashboards")


@app.command()
def render(
    config: Annotated[str, typer.Argument(help=f"What to render: {', '.join(RENDERED)}.")],
    out: Annotated[
        Path,
        typer.Option(
            help="alertmanager: the file to write (secret files go beside it); rules and "
            "dashboards: the folder to write them into."
        ),
    ],
    local: Annotated[
        bool, typer.Option("--local", help="Local-stack addresses instead of Compose's.")
    ] = False,
) -> None:
    """Render a config for Docker Compose (or the local stack) from stack/ and the environment:
    Alertmanager's routing, the alert rules and the dashboards with the TBMON_THRESHOLD_*
    thresholds."""
    if config not in RENDERED:
        raise _fail(ValueError(f"cannot render {config!r}; one of: {', '.join(RENDERED)}"), 2)
    try:
        settings = get_stack_settings()
    except InvalidSettingsError as error:
        raise _fail(error) from None
    try:
        if config == "alertmanager":
            written = [render_alertmanager(settings, out, compose=not local)]
        elif config == "rules":
            written = render_rules(settings, out)
        else:
            dashboards_code.write(out, settings)
            written = sorted(out.glob("*.json"))
    except (ValueError, OSError) as error:
        raise _fail(error) from error
    console.print(f"wrote {', '.join(str(path) for path in written)}", highlight=False)


def _print_table(statuses: list[ComponentStatus]) -> None:
    table = Table(box=None, header_style="bold")
    for column in ("component", "state", "pid", "memory", "urls"):
        table.add_column(column)
    colours = {"ready": "green", "starting": "yellow", "dead": "red", "stopped": "dim"}
    for s in statuses:
        memory = f"{s.memory_rss_bytes / 2**20:.0f} MiB" if s.memory_rss_bytes else ""
        table.add_row(
            s.name,
            f"[{colours[s.state]}]{s.state}[/]",
            str(s.pid or ""),
            memory,
            "  ".join(f"{label}: {url}" for label, url in s.urls.items()),
        )
    total = sum(s.memory_rss_bytes or 0 for s in statuses)
    console.print(table)
    console.print(f"total memory (RSS): {total / 2**20:.0f} MiB")


@app.command()
def dashboards(
    check: Annotated[
        bool, typer.Option("--check", help="Only report stale files; exit 1 if any.")
    ] = False,
) -> None:
    """Regenerate the Grafana dashboards' JSON (tbmon/stack/grafana/dashboards) from the code."""
    if check:
        stale = dashboards_code.stale()
        if stale:
            errors.print(
                f"stale: {', '.join(stale)}; run `tbmon stack dashboards` and commit the JSON",
                highlight=False,
            )
            raise typer.Exit(1)
        console.print("dashboards are up to date")
        return
    changed = dashboards_code.write()
    where = dashboards_code.DASHBOARD_DIR
    console.print(f"wrote {', '.join(changed)} in {where}" if changed else "no change")
