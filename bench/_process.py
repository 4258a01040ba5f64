"""Processes the benchmarks start: waiting until one is ready, and its CPU time."""

from __future__ import annotations

import subprocess
import time

import httpx
import psutil


def until_ready(popen: subprocess.Popen[bytes], url: str, what: str, timeout: float = 60.0) -> None:
    """Return once ``url`` answers below 500; raise RuntimeError naming ``what`` if the process
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{what} exited with {popen.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:g} s")


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU time of every thread of ``process``."""
    times = process.cpu_times()
    return float(times.user + times.system)
