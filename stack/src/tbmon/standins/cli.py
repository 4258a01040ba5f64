"""The stand-ins' commands: ``tbmon bridge telegram-test-server`` (registered by ``tbmon.cli``
under the bridge's group, where the demo and the stack start it; the bridge's own distribution
does not ship the test server)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from tbmon.alert_bridge.cli import Host, check_port, configure_logging
from tbmon.settings import get_stack_settings
from tbmon.standins.telegram import create_app


def telegram_test_server(
    host: Host = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: TBMON_TELEGRAM_TEST_PORT, 8092).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print received messages.")] = False,
) -> None:
    """A local Telegram Bot API for tests and the demo; prints each message it receives."""
    stack = get_stack_settings()
    host, port = host or stack.bind_host, port or stack.telegram_test_port
    check_port(host, port, "TBMON_TELEGRAM_TEST_PORT")
    configure_logging()

    def show(message: str) -> None:
        print(message, flush=True)

    uvicorn.run(
        create_app(printer=None if quiet else show),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=1,  # long polls (getUpdates) would hold it for their timeout
    )
