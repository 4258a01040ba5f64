"""`tbmon health serve`: the health service on port 8080 (HEALTH_PORT, TBMON_HEALTH_PORT)."""

from __future__ import annotations

import gc
import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from tbmon.health.app import create_app, get_settings
from tbmon.health.registry import ConfigurationError, build
from tbmon.ports import port_holder
from tbmon.settings import InvalidSettingsError

app = typer.Typer(help="The health service: every component's health at /health on one port.")
errors = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: HEALTH_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to serve on (default: HEALTH_PORT, else TBMON_HEALTH_PORT or 8080)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve /health, /health/live, /health/ready, /health/detailed, /health/component/NAME and
    /health/metrics, checking every configured component in the background."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per check run is noise
    try:
        settings = get_settings()
        checks = build(settings)
    except InvalidSettingsError as error:
        raise _fail(str(error), 2) from None
    except ConfigurationError as error:
        raise _fail(str(error), 2) from None
    host = host or settings.host
    port = port or settings.port
    holder = port_holder(host, port)
    if holder is not None:
        raise _fail(
            f"port {port} on {host} is in use{holder}; stop that process or choose another "
            "port with --port or HEALTH_PORT",
            1,
        )
    logging.getLogger(__name__).info(
        "checking %s every %g s", ", ".join(c.name for c in checks) or "nothing", settings.interval
    )
    # The checks run in a child process forked at start-up, before the server binds: they never
    # hold this process's GIL while it answers (docs/performance.md#health-service).
    app = create_app(checks, isolated=True)
    # Everything loaded so far lives as long as the process. Frozen, it is left out of the
    # garbage collector's full passes, which would otherwise stall answers for ~40 ms each.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        server_header=False,
    )
