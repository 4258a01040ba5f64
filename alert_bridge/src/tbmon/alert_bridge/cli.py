"""`tbmon bridge serve` (the stack adds `tbmon bridge telegram-test-server`, tbmon.standins.cli)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from tbmon.ports import port_holder
from tbmon.settings import InvalidSettingsError, get_stack_settings, read_settings

app = typer.Typer(help="The Telegram alert bridge, and a Telegram test server for the demo.")

__all__ = ["app", "check_port", "configure_logging"]

Host = Annotated[
    str | None, typer.Option(help="Address to bind (default: TBMON_BIND_HOST, 127.0.0.1).")
]


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs each request's URL at INFO, and Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def check_port(host: str, port: int, variable: str) -> None:
    holder = port_holder(host, port)
    if holder is not None:
        typer.echo(
            f"error: port {port} on {host} is in use{holder}; stop that process or choose "
            f"another port with --port or {variable}=...",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
def serve(
    host: Host = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: TBMON_BRIDGE_PORT, 8090).")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the webhook bearer token.")
    ] = None,
    demo_telegram: Annotated[
        str | None,
        typer.Option(help="Use the Telegram test server at this URL, with its demo bot and chats."),
    ] = None,
) -> None:
    """Receive Alertmanager's webhook and deliver the alerts to Telegram."""
    # Imported here: the web stack would slow down every other `tbmon` command.
    from tbmon.alert_bridge.app import create_app  # noqa: PLC0415
    from tbmon.alert_bridge.settings import BridgeSettings, demo_overrides  # noqa: PLC0415

    overrides: dict[str, object] = {}
    if token_file is not None:
        overrides["token_file"] = token_file
    if demo_telegram is not None:
        overrides.update(demo_overrides(demo_telegram))
    try:
        settings = read_settings(BridgeSettings, **overrides)
    except InvalidSettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    stack = get_stack_settings()
    host, port = host or stack.bind_host, port or stack.bridge_port
    check_port(host, port, "TBMON_BRIDGE_PORT")
    configure_logging()
    logging.getLogger(__name__).info(
        "alert bridge on %s:%d: Telegram %s, outbox %s",
        host,
        port,
        settings.telegram_api_url,
        settings.database,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
