"""`tbmon doctor` and `tbmon backup`: the seed's troubleshooting and backup, as commands."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tbmon.settings import get_stack_settings, read_settings
from tbmon.stack.backup import Backup, Outcome
from tbmon.stack.doctor import Doctor, Status
from tbmon.stack.operations import OperationsSettings

console = Console()


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run the seed's troubleshooting checks; exit 1 if any fails (each failure with its fix)."""
    findings = Doctor(get_stack_settings(), read_settings(OperationsSettings)).run()
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
    report = Backup(get_stack_settings(), read_settings(OperationsSettings), prometheus_data).run(
        output
    )
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
