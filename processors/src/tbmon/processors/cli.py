"""`tbmon processors serve | plugins`: the processors host from the command line."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
import uvicorn

from tbmon.plugins import discover
from tbmon.ports import port_holder
from tbmon.processors.admin import create_app
from tbmon.processors.api import Signal, handles
from tbmon.processors.loader import ENTRY_POINT_GROUP, PluginConfigError
from tbmon.processors.server import Host
from tbmon.processors.settings import ProcessorsSettings
from tbmon.settings import InvalidSettingsError, read_settings

app = typer.Typer(help="Python processor plugins in the collector pipeline (OTLP/gRPC).")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [PROCESSORS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="OTLP/gRPC port [PROCESSORS_PORT].")] = None,
    http_port: Annotated[
        int | None, typer.Option(help="/health and /metrics port [PROCESSORS_HTTP_PORT].")
    ] = None,
    forward: Annotated[
        str | None,
        typer.Option(help="Next hop host:port [PROCESSORS_FORWARD_ENDPOINT]."),
    ] = None,
) -> None:
    """Serve OTLP/gRPC, run the plugins on every batch, forward the result to the next hop."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "http_port": http_port,
        "forward_endpoint": forward,
    }
    try:
        settings = read_settings(
            ProcessorsSettings, **{k: v for k, v in overrides.items() if v is not None}
        )
    except InvalidSettingsError as error:
        raise _fail(str(error)) from error
    for field, option in (("port", "--port"), ("http_port", "--http-port")):
        number = getattr(settings, field)
        holder = port_holder(settings.host, number)
        if holder is not None:
            raise _fail(
                f"port {number} (PROCESSORS_{field.upper()} / {option}) on {settings.host} is in "
                f"use{holder}; stop that process or choose another port"
            )
    try:
        processors_host = Host(settings)
    except PluginConfigError as error:
        raise _fail(str(error)) from error
    config = uvicorn.Config(
        create_app(processors_host),
        host=settings.host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


@app.command()
def plugins() -> None:
    """The installed plugins (entry-point group tbmon.processors) and the hooks each has."""
    try:
        configured = read_settings(ProcessorsSettings).plugins
    except InvalidSettingsError as error:
        raise _fail(str(error)) from error
    for name, entry_point in sorted(discover(ENTRY_POINT_GROUP).items()):
        try:
            cls = entry_point.load()
            hooks = [s.value for s in Signal if handles(cls, s.hook)]
            if handles(cls, "collect_metrics"):
                hooks.append("derived metrics")
            what = ", ".join(hooks) or "no hooks"
        except Exception as error:
            what = f"BROKEN: {type(error).__name__}: {error}"
        order = f"#{configured.index(name) + 1}" if name in configured else "off"
        typer.echo(f"{name:24} {order:4} {entry_point.value}  ({what})")
