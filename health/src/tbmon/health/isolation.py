"""The checks in a process of their own, reporting every result to the server over a pipe.

A check's Python code (an HTTP client, psycopg, psutil) holds the GIL while it runs. On a thread
of the server process, a request arriving meanwhile waits for the GIL for up to the 5 ms switch
interval, and at eight checks a second that is about 1 % of the requests: the whole p99 budget.
So `tbmon health serve` forks a child that runs a :class:`~tbmon.health.monitor.Monitor` and
sends each result, plus a heartbeat every second, down a pipe. The serving process keeps one
Python thread: it reads the pipe on its own event loop, between requests, and swaps in the
snapshot.

The child forks before the server binds its socket (in the lifespan), so it never holds it, and
it ignores SIGINT and SIGTERM: it stops when its end of the pipe closes, on :meth:`stop` or when
the server dies however it does, and closes its checks' resources on the way out.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from types import MappingProxyType

from tbmon.health.monitor import (
    CLOSE_TIMEOUT_SECONDS,
    STALLED_AFTER_SECONDS,
    ComponentHealth,
    Monitor,
    Results,
)
from tbmon.health.redact import Redactor
from tbmon.health.registry import ScheduledCheck

logger = logging.getLogger(__name__)

# Fork: the child starts with the checks already built (nothing to pickle), and the server has a
# single thread when it forks (see :func:`can_fork`).
_FORK = multiprocessing.get_context("fork")


def can_fork() -> bool:
    """Only a process with one thread forks safely: a lock another thread holds at the fork
    would stay held for ever in the child."""
    return threading.active_count() == 1


class CheckProcess(Results):
    """The server's side: the latest results as the child reports them."""

    def __init__(
        self, checks: Sequence[ScheduledCheck], interval: float, redactor: Redactor
    ) -> None:
        super().__init__(checks, interval)
        self._redactor = redactor
        self._process: multiprocessing.process.BaseProcess | None = None
        self._reader: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # while it reads the pipe
        self._heartbeat = time.monotonic()
        self._first_round = asyncio.Event()
        if self.first_round_in:  # nothing to check
            self._first_round.set()

    def alive(self) -> bool:
        """The child runs (its pipe is open) and has reported within the stall limit."""
        return self._loop is not None and time.monotonic() - self._heartbeat < STALLED_AFTER_SECONDS

    async def start(self) -> None:
        """Fork the child and read its reports on this loop; return once every check has a
        first result (each is time-bounded, as with :meth:`Monitor.start`)."""
        reader, writer = _FORK.Pipe(duplex=False)
        self._process = _FORK.Process(
            target=_run_checks,
            args=(self.checks, self.interval, self._redactor, reader, writer),
            name="tbmon-health-checks",
            daemon=True,
        )
        self._process.start()
        writer.close()  # the child's copy alone: its end closes when the child does
        self._reader = reader
        # Should stop() never run, closing the pipe at exit stops the child before
        # multiprocessing joins its daemon children (atexit runs this first: registered later),
        # which would otherwise wait for ever on a child that ignores SIGTERM.
        atexit.register(reader.close)
        self._heartbeat = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(reader.fileno(), self._receive)
        longest = max((c.timeout for c in self.checks), default=0.0)
        try:
            async with asyncio.timeout(longest + CLOSE_TIMEOUT_SECONDS):
                await self._first_round.wait()
        except TimeoutError:
            logger.warning("some health checks have no result yet; serving without them")

    async def open(self) -> None:
        await self.start()  # reads the child's reports on this loop: no thread here

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the pipe, which stops the child; wait for it (bounded), then kill it."""
        process, reader = self._process, self._reader
        if process is None or reader is None:
            return
        self._process = self._reader = None
        self._unwatch(reader)
        atexit.unregister(reader.close)
        reader.close()
        process.join(CLOSE_TIMEOUT_SECONDS * (len(self.checks) + 1))
        if process.is_alive():
            logger.warning("the health check process did not stop in time; killing it")
            process.kill()
            process.join(CLOSE_TIMEOUT_SECONDS)

    def _receive(self) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            while reader.poll():
                self._take(reader.recv())
        except (EOFError, OSError):
            self._lost(reader)

    def _take(self, message: ComponentHealth | None) -> None:
        self._heartbeat = time.monotonic()  # any message proves the child's loop runs
        if message is None:  # a heartbeat
            return
        self.record(replace(message, metadata=MappingProxyType(message.metadata)))
        if self.first_round_in:
            self._first_round.set()

    def _lost(self, reader: Connection) -> None:
        self._unwatch(reader)
        self._first_round.set()  # nothing more will come: start() need not wait
        exitcode = None
        if self._process is not None:
            self._process.join(1.0)  # its pipe closed as it exited: at once, in practice
            exitcode = self._process.exitcode
        logger.error(
            "the health check process has stopped (exit code %s); /health/live answers 503",
            exitcode,
        )

    def _unwatch(self, reader: Connection) -> None:
        if self._loop is not None:
            self._loop.remove_reader(reader.fileno())
            self._loop = None


class _Sender:
    """The child's side of the pipe, as the Monitor's listener. A failed send means the server
    has gone: the child stops."""

    def __init__(self, writer: Connection, stop: asyncio.Event) -> None:
        self._writer = writer
        self._stop = stop

    def result(self, health: ComponentHealth) -> None:
        # A mapping proxy does not pickle; the server wraps the dict again.
        self._send(replace(health, metadata=dict(health.metadata)))

    def beat(self) -> None:
        self._send(None)

    def _send(self, message: ComponentHealth | None) -> None:
        if self._stop.is_set():
            return
        try:
            self._writer.send(message)
        except OSError:  # BrokenPipeError: the server closed its end or died
            self._stop.set()


def _run_checks(
    checks: Sequence[ScheduledCheck],
    interval: float,
    redactor: Redactor,
    reader: Connection,
    writer: Connection,
) -> None:
    """The child: check until the server's end of the pipe closes."""
    reader.close()
    # Ctrl-C and `docker stop` are the server's to handle; it then closes the pipe. And a signal
    # must not wake the server's loop through the wake-up fd the fork copied.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    asyncio.run(_report(checks, interval, redactor, writer))


async def _report(
    checks: Sequence[ScheduledCheck], interval: float, redactor: Redactor, writer: Connection
) -> None:
    stop = asyncio.Event()
    # The write end of a pipe polls as ready (an error) once the read end is closed: the child
    # stops at once rather than at its next send.
    asyncio.get_running_loop().add_reader(writer.fileno(), stop.set)
    await Monitor(checks, interval, redactor, _Sender(writer, stop)).run(stop)
