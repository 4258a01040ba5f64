"""The health service's host: disk, memory and CPU use (psutil). Above a threshold: degraded.

A busy host still works, so these never make the service unhealthy on their own; they warn.
psutil runs in a worker thread: a filesystem that hangs (a dead network mount) then times out
like any other dependency instead of stopping the scheduler.
"""

from __future__ import annotations

import asyncio
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import psutil

from tbmon.health.check import Check, Outcome, Status
from tbmon.health.settings import HealthSettings


class _ThresholdCheck(Check):
    """Degraded when ``percent`` of :meth:`read` reaches the threshold."""

    what = ""

    def __init__(self, degraded_percent: float) -> None:
        self.degraded_percent = degraded_percent

    @abstractmethod
    def read(self) -> dict[str, Any]:
        """The figures, with ``percent``; runs in a worker thread."""

    async def check(self) -> Outcome:
        figures = await asyncio.to_thread(self.read)
        metadata = {**figures, "degraded_above_percent": self.degraded_percent}
        if figures["percent"] >= self.degraded_percent:
            metadata["error"] = (
                f"{self.what} use {figures['percent']:g}% is at or above {self.degraded_percent:g}%"
            )
            return Outcome(Status.DEGRADED, metadata)
        return Outcome(Status.HEALTHY, metadata)


class DiskCheck(_ThresholdCheck):
    what = "disk"

    def __init__(self, path: Path, degraded_percent: float) -> None:
        super().__init__(degraded_percent)
        self.path = path

    def read(self) -> dict[str, Any]:
        usage = psutil.disk_usage(str(self.path))
        return {
            "path": str(self.path),
            "percent": usage.percent,
            "free_bytes": usage.free,
            "total_bytes": usage.total,
        }


class MemoryCheck(_ThresholdCheck):
    what = "memory"

    def read(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        return {
            "percent": memory.percent,
            "available_bytes": memory.available,
            "total_bytes": memory.total,
            "swap_percent": psutil.swap_memory().percent,
        }


class CpuCheck(_ThresholdCheck):
    """CPU use averaged since the previous run (psutil's non-blocking form)."""

    what = "CPU"

    def __init__(self, degraded_percent: float) -> None:
        super().__init__(degraded_percent)
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline

    def read(self) -> dict[str, Any]:
        return {
            "percent": psutil.cpu_percent(interval=None),
            "cpu_count": os.cpu_count(),
            "load_average": [round(load, 2) for load in os.getloadavg()],
        }


def disk_check(settings: HealthSettings) -> Check:
    return DiskCheck(settings.disk_path, settings.disk_degraded_percent)


def memory_check(settings: HealthSettings) -> Check:
    return MemoryCheck(settings.memory_degraded_percent)


def cpu_check(settings: HealthSettings) -> Check:
    return CpuCheck(settings.cpu_degraded_percent)
