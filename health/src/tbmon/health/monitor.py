"""Run every check in the background and keep the latest result of each, ready to serve.

The checks run on their own event loop, each check in its own task on its own schedule, each
under its own timeout: on a thread of their own (:class:`Monitor`), or in a process of their own
that reports every result to the server (:mod:`tbmon.health.isolation`, what `tbmon health
serve` uses). Requests on the server's loop only read the latest snapshot (an immutable mapping
swapped whole), so no request ever waits on a dependency, and not even a plugin that blocks its
loop can slow the answers down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from tbmon.health.check import CheckFailed, Outcome, Status
from tbmon.health.metrics import HealthMetrics
from tbmon.health.redact import Redactor
from tbmon.health.registry import ScheduledCheck

logger = logging.getLogger(__name__)

#: How often the checker loop proves it is not stuck (see :meth:`Monitor.alive`).
_HEARTBEAT_SECONDS = 1.0
#: A checker loop silent for this long is stuck: the process is no longer live.
STALLED_AFTER_SECONDS = 10.0
#: How long shutdown waits for each check's ``aclose``.
CLOSE_TIMEOUT_SECONDS = 5.0


def utc_iso(unix_time: float) -> str:
    """``2024-01-15T14:30:45Z``, the timestamp format of the health answers."""
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ComponentHealth:
    """The latest result of one component's check."""

    name: str
    status: Status
    critical: bool
    #: Unix time the check finished, and the same as served (``last_check``).
    checked_at: float
    last_check: str
    duration_seconds: float
    metadata: Mapping[str, Any]

    def document(self, *, detailed: bool) -> dict[str, Any]:
        """The component as the API shows it; metadata only in the detailed views."""
        return {
            "name": self.name,
            "status": self.status.value,
            "last_check": self.last_check,
            "response_time_ms": round(self.duration_seconds * 1000, 1),
            "metadata": dict(self.metadata) if detailed else {},
        }


class Results(ABC):
    """The latest result of every check and the metrics that follow them: what the endpoints
    read. Filled by a :class:`Monitor`'s own checks, or by the check process's reports."""

    def __init__(self, checks: Sequence[ScheduledCheck], interval: float) -> None:
        self.checks = tuple(checks)
        self.interval = interval
        self.metrics = HealthMetrics((c.name, c.critical) for c in self.checks)
        now = time.time()
        self._snapshot: Mapping[str, ComponentHealth] = MappingProxyType(
            {
                c.name: ComponentHealth(
                    c.name,
                    Status.UNHEALTHY,
                    c.critical,
                    now,
                    utc_iso(now),
                    0.0,
                    {"error": "not checked yet"},
                )
                for c in self.checks
            }
        )
        self._unchecked = {c.name for c in self.checks}

    @property
    def snapshot(self) -> Mapping[str, ComponentHealth]:
        """Every component's latest result, in check order. Never blocks."""
        return self._snapshot

    @property
    def first_round_in(self) -> bool:
        """Every check has a result."""
        return not self._unchecked

    @abstractmethod
    def alive(self) -> bool:
        """The checks run and their loop is not stuck."""

    @abstractmethod
    async def open(self) -> None:
        """Start checking, from the server's loop; return once every check has a first result
        (each is time-bounded)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop checking and release the checks' resources, from the server's loop."""

    def record(self, health: ComponentHealth) -> ComponentHealth:
        """Make ``health`` its component's latest result; return the one it replaces."""
        previous = self._snapshot[health.name]
        self._snapshot = MappingProxyType({**self._snapshot, health.name: health})
        self.metrics.observe(health.name, health.status, health.duration_seconds, health.checked_at)
        self._unchecked.discard(health.name)
        return previous


class Listener(Protocol):
    """Told of a :class:`Monitor`'s every result and heartbeat, on its loop (how the check
    process reports to the server)."""

    def result(self, health: ComponentHealth) -> None: ...

    def beat(self) -> None: ...


class Monitor(Results):
    """The background scheduler and the snapshot it keeps."""

    def __init__(
        self,
        checks: Sequence[ScheduledCheck],
        interval: float,
        redactor: Redactor | None = None,
        listener: Listener | None = None,
    ) -> None:
        super().__init__(checks, interval)
        self._redactor = redactor or Redactor()
        self._listener = listener
        self._first_round_done = threading.Event()
        if self.first_round_in:
            self._first_round_done.set()
        self._heartbeat = time.monotonic()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._loop_ready = threading.Event()

    def alive(self) -> bool:
        """The scheduler thread runs and its loop is not stuck."""
        thread = self._thread
        return (
            thread is not None
            and thread.is_alive()
            and time.monotonic() - self._heartbeat < STALLED_AFTER_SECONDS
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start checking; return once every check has a first result (each is time-bounded)."""
        self._thread = threading.Thread(target=self._main, name="tbmon-health-checks", daemon=True)
        self._thread.start()
        self._loop_ready.wait()
        longest = max((c.timeout for c in self.checks), default=0.0)
        self._first_round_done.wait(longest + CLOSE_TIMEOUT_SECONDS)

    async def open(self) -> None:
        await asyncio.to_thread(self.start)

    async def close(self) -> None:
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        """Stop every check, close their resources and the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=CLOSE_TIMEOUT_SECONDS * (len(self.checks) + 1))
        self._thread = None

    def _main(self) -> None:
        asyncio.run(self._run_on_thread())

    async def _run_on_thread(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop_ready.set()
        await self.run(self._stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Check on the running loop until ``stop`` is set, then close every check."""
        tasks = [asyncio.create_task(self._watch(c), name=f"check {c.name}") for c in self.checks]
        tasks.append(asyncio.create_task(self._beat(), name="heartbeat"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for scheduled in self.checks:
                await self._close(scheduled)

    async def _close(self, scheduled: ScheduledCheck) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await scheduled.check.aclose()
        except Exception as error:
            logger.warning("closing health check %s failed: %s", scheduled.name, error)

    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            if self._listener is not None:
                self._listener.beat()
            await asyncio.sleep(_HEARTBEAT_SECONDS)

    # -- checking ------------------------------------------------------------------------------

    async def _watch(self, scheduled: ScheduledCheck) -> None:
        """Run one check every ``interval`` seconds (start to start), forever."""
        next_run = time.monotonic()
        while True:
            outcome, duration = await self.probe(scheduled)
            try:
                self._publish(scheduled, outcome, duration)
            except Exception:
                logger.exception("publishing the result of health check %s failed", scheduled.name)
            next_run = max(next_run + self.interval, time.monotonic())
            await asyncio.sleep(next_run - time.monotonic())

    async def probe(self, scheduled: ScheduledCheck) -> tuple[Outcome, float]:
        """Run a check once under its timeout; a failure of any kind is an unhealthy outcome."""
        started = time.perf_counter()
        budget = asyncio.timeout(scheduled.timeout)
        try:
            async with budget:
                found = await scheduled.check.check()
            if not isinstance(found, Outcome):
                raise TypeError(f"the check returned {type(found).__name__}, not an Outcome")
            outcome = Outcome(Status(found.status), found.metadata)
        except TimeoutError as error:
            if budget.expired():
                message = f"timed out after {scheduled.timeout:g} s"
            else:
                message = describe(error)
            outcome = Outcome(Status.UNHEALTHY, {"error": message})
        except CheckFailed as failure:
            outcome = Outcome(Status.UNHEALTHY, {"error": str(failure)})
        except Exception as error:
            outcome = Outcome(Status.UNHEALTHY, {"error": describe(error)})
        return outcome, time.perf_counter() - started

    def _publish(self, scheduled: ScheduledCheck, outcome: Outcome, duration: float) -> None:
        finished = time.time()
        try:
            metadata = self._redactor.value(dict(outcome.metadata))
        except Exception as error:
            metadata = {"error": f"metadata could not be shown: {describe(error)}"}
        status = outcome.status
        health = ComponentHealth(
            scheduled.name,
            status,
            scheduled.critical,
            finished,
            utc_iso(finished),
            duration,
            MappingProxyType(metadata),
        )
        first = scheduled.name in self._unchecked
        previous = self.record(health)
        if (first and status is not Status.HEALTHY) or (not first and status != previous.status):
            logger.log(
                logging.INFO if status is Status.HEALTHY else logging.WARNING,
                "%s is %s%s",
                scheduled.name,
                status.value,
                f": {metadata['error']}" if "error" in metadata else "",
            )
        if self.first_round_in:
            self._first_round_done.set()
        if self._listener is not None:
            self._listener.result(health)


def describe(error: BaseException) -> str:
    """``TypeName: message`` (no traceback: answers never show stack traces)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
