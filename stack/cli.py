"""`tbmon stack up | down | status | logs`: the local stack from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tbmon.settings import get_stack_settings
from tbmon.stack import dashboards as dashboards_code
from tbmon.stack.backup import Backup, Outcome
from tbmon.stack.binaries import BinaryMissingError
from tbmon.stack.components import UnknownComponentError, component_names, select
from tbmon.stack.doctor import Doctor, Status
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.supervisor import ComponentStatus, StackError, Supervisor, follow, tail_lines

app = typer.Typer(help="Run the real backends on this machine, without Docker.")
console = Console()
errors = Console(stderr=True)

Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Components (default: all). One of: {', '.join(component_names())}."),
]


def _supervisor() -> Supervisor:
    return Supervisor(get_stack_settings())


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
    return typer.Exit(code)


@app.command()
def up(names: Names = None) -> None:
    """Start the stack (or the named components) and wait until each one is ready."""
    supervisor = _supervisor()
    try:
        with console.status("starting the stack and waiting for every component to be ready"):
            statuses = supervisor.up(names)
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    except (StackError, BinaryMissingError) as error:
        raise _fail(error) from error
    _print_table(statuses)


@app.command()
def down(names: Names = None) -> None:
    """Stop the processes this stack started (all, or the named ones)."""
    try:
        stopped = _supervisor().down(names)
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    names: Names = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each component's state, pid, memory and URLs."""
    supervisor = _supervisor()
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
) -> None:
    """A component's log."""
    supervisor = _supervisor()
    try:
        (component,) = select([name])
    except UnknownComponentError as error:
        raise _fail(error, 2) from error
    log = supervisor.layout(component).log
    for line in tail_lines(log, lines):
        typer.echo(line)
    if follow_:
        for line in follow(log):
            typer.echo(line)


@app.command()
def dashboards(
    check: Annotated[
        bool, typer.Option("--check", help="Only report stale files; exit 1 if any.")
    ] = False,
) -> None:
    """Regenerate the Grafana dashboards' JSON (stack/grafana/dashboards) from the code."""
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


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run the seed's troubleshooting checks; exit 1 if any fails (each failure with its fix)."""
    findings = Doctor(get_stack_settings(), OperationsSettings()).run()
    if as_json:
        typer.echo(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        table = Table(header_style="bold", show_lines=True)
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        colours = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
        for f in findings:
            table.add_row(f.check, f"[{colours[f.status]}]{f.status}[/]", f.detail, f.fix)
        console.print(table)
    if any(f.status is Status.FAIL for f in findings):
        raise typer.Exit(1)


def backup(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder that receives the dated backup folder.")
    ] = Path("backups"),
    prometheus_data: Annotated[
        Path | None,
        typer.Option(
            help="Prometheus's TSDB folder as seen from here (default: the local stack's)."
        ),
    ] = None,
) -> None:
    """Save Grafana's dashboards, a Prometheus snapshot and the config files into a dated folder."""
    report = Backup(get_stack_settings(), OperationsSettings(), prometheus_data).run(output)
    table = Table(header_style="bold", show_lines=True)
    for column in ("part", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    colours = {Outcome.SAVED: "green", Outcome.SKIPPED: "yellow", Outcome.FAILED: "red"}
    for part in report.parts:
        table.add_row(part.name, f"[{colours[part.outcome]}]{part.outcome}[/]", part.detail)
    console.print(table)
    console.print(f"backup: {report.folder}")
    if report.failed:
        raise typer.Exit(1)


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
