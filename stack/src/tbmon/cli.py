"""The `tbmon` command: one entry point, one sub-command group per component."""

from __future__ import annotations

import typer

from tbmon.alert_bridge.cli import app as bridge_app
from tbmon.demo.cli import demo
from tbmon.health.cli import app as health_app
from tbmon.processors.cli import app as processors_app
from tbmon.settings import InvalidSettingsError
from tbmon.stack.cli import app as stack_app
from tbmon.stack.operations_cli import backup, doctor
from tbmon.standins.cli import telegram_test_server
from tbmon.standins.exchange_tool import app as exchange_app
from tbmon.version import __version__

app = typer.Typer(
    name="tbmon",
    help="OpenTelemetry-first monitoring for Python trading bots.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack_app, name="stack")
app.command()(doctor)
app.command()(backup)
app.command()(demo)
app.add_typer(health_app, name="health")
app.add_typer(processors_app, name="processors")
bridge_app.command("telegram-test-server")(telegram_test_server)
app.add_typer(bridge_app, name="bridge")
app.add_typer(exchange_app, name="exchange")


@app.command()
def version() -> None:
    """Print tbmon's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except InvalidSettingsError as error:
        # Settings are read by every command (the stack's at least): one line naming the
        # variables, not a traceback.
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
