"""Ports: who holds one, and a private set of free ones for a side-by-side stack."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TypeVar, overload

import psutil

from tbmon.settings import StackSettings


def port_holder(host: str, port: int) -> str | None:
    """None if ``host:port`` is free to listen on, else a description of who holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f" ({error.strerror})"
        else:
            return None
    for connection in psutil.net_connections(kind="inet"):
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid:
            try:
                return f" by pid {connection.pid} ({psutil.Process(connection.pid).name()})"
            except psutil.Error:
                return f" by pid {connection.pid}"
    return ""


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


_S = TypeVar("_S", bound=StackSettings)


@overload
def isolated_settings(data_dir: Path) -> StackSettings: ...
@overload
def isolated_settings(data_dir: Path, kind: type[_S]) -> _S: ...
def isolated_settings(data_dir: Path, kind: type[StackSettings] = StackSettings) -> StackSettings:
    """Settings for a private stack (tests, benchmarks): its own data folder and free ports;
    ``kind`` is the settings class (the scaled topology's, say)."""
    fields = [name for name in kind.model_fields if name.endswith("_port")]  # no env read
    ports = dict(zip(fields, free_ports(len(fields)), strict=True))
    return kind.model_validate({"data_dir": data_dir, **ports})
