"""The plugin chain: runs each plugin's hook on its own thread (or inline), within its budget.

Isolation works on the serialized batch. Before a hook runs, the batch as it stands is bytes
(the request as received, or the previous plugin's result, serialized on that plugin's thread).
When a hook raises, returns something else than a batch, or overruns its budget, the chain goes
on from those bytes, so whatever the hook did to its message is dropped; a hook that never
returns keeps only its own copy. While an overrunning call is still running, the plugin is
"stuck": its hooks are skipped (counted) instead of queueing behind it, and it rejoins the chain
when the call returns. Each plugin has one thread, so its hooks never run concurrently.

A plugin that declares its hooks bounded (``Processor.runs_inline``: the built-in ones) runs on
the server's loop instead, saving the hand-off to its thread and back (two thread wake-ups, about
0.25 ms a call). Its budget is checked when the call returns: the result of a call that overran
it is dropped just the same, but the call cannot be cut short.

A fail-closed plugin (redaction, by default) is not skipped: its failure, timeout or stuck call
refuses the whole request (:class:`PluginFailedError`, UNAVAILABLE), so the collector keeps the
batch and retries, and nothing goes on without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from opentelemetry.proto.metrics.v1.metrics_pb2 import ResourceMetrics

from tbmon.processors import telemetry
from tbmon.processors.api import Batch, MalformedBatchError, Processor, Signal, handles

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: A hook's result: the batch's bytes; its message when the hook edited it (so the next plugin
#: need not parse again); whether the bytes are known to parse (the hook parsed its input, or
#: built the result as a message).
Step = tuple[bytes, object | None, bool]

_ERROR_LOG_INTERVAL_SECONDS = 60.0


class PluginFailedError(RuntimeError):
    """A fail-closed plugin failed: the request must fail too."""


class _BadReturnError(TypeError):
    pass


class _RateLimitedLog:
    """Logs one line per (plugin, signal, reason) a minute at most, with how many it skipped."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, str, str], float] = {}
        self._skipped: dict[tuple[str, str, str], int] = {}

    def error(
        self, key: tuple[str, str, str], message: str, exc_info: BaseException | None
    ) -> None:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        suffix = f" ({skipped} more like it in the last minute)" if skipped else ""
        logger.error("%s%s", message, suffix, exc_info=exc_info)
        self._next[key] = now + _ERROR_LOG_INTERVAL_SECONDS


class Plugin:
    """A processor as the host runs it: its name, budget, thread and health."""

    def __init__(
        self,
        name: str,
        processor: Processor,
        budget_seconds: float,
        reject_on_failure: bool = False,
    ) -> None:
        self.name = name
        self.processor = processor
        self.budget_seconds = budget_seconds
        self.reject_on_failure = reject_on_failure
        self.signals = frozenset(s for s in Signal if handles(processor, s.hook))
        self.collects = handles(processor, "collect_metrics")
        self.stuck_since: float | None = None
        self.errors = 0
        self.last_error: str | None = None
        self._executor = (
            None
            if type(processor).runs_inline
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"plugin-{name}")
        )
        self._lock = asyncio.Lock()
        self._log = _RateLimitedLog()
        signals = {signal.value for signal in self.signals}
        if self.collects:
            signals.add("metrics")
        telemetry.declare_plugin(name, sorted(signals), reject_on_failure)

    @property
    def inline(self) -> bool:
        """Its hooks run on the server's loop (``Processor.runs_inline``), not on its thread."""
        return self._executor is None

    async def process(self, signal: Signal, raw: bytes, message: object | None) -> Step | None:
        """The hook's result, or None when it failed (the caller goes on with ``raw``)."""
        hook = getattr(self.processor, signal.hook)

        def invoke() -> Step:
            batch: Batch[Any] = Batch(signal.request_type, raw, message)
            result = hook(batch)
            if not isinstance(result, Batch) or result.message_type is not signal.request_type:
                raise _BadReturnError(
                    f"{signal.hook} returned {type(result).__name__}, "
                    f"not a Batch of {signal.request_type.__name__}"
                )
            # Serialize here, on the plugin's thread, within its budget.
            return result.raw, result.message_if_edited(), batch.parsed or result.edited

        return await self._call(signal.value, invoke)

    async def collect(self, now_unix_nano: int) -> Sequence[ResourceMetrics] | None:
        def invoke() -> Sequence[ResourceMetrics]:
            result = self.processor.collect_metrics(now_unix_nano)
            if not all(isinstance(item, ResourceMetrics) for item in result):
                raise _BadReturnError("collect_metrics must return ResourceMetrics messages")
            return result

        return await self._call("metrics", invoke)

    async def _call(self, signal: str, function: Callable[[], T]) -> T | None:
        if self._executor is None:
            return self._call_inline(signal, function)
        async with self._lock:
            if self.stuck_since is not None:
                self._fail(signal, "stuck", "its previous call has not returned yet", None)
                return None
            started = time.perf_counter()
            future = self._executor.submit(function)
            waiter = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({waiter}, timeout=self.budget_seconds)
            self._timed(signal, started)
            if not done:
                waiter.cancel()  # the thread goes on; only our wait ends
                self._stuck(future, started)
                self._overran(signal, "")
                return None
            return self._outcome(signal, future.result)

    def _call_inline(self, signal: str, function: Callable[[], T]) -> T | None:
        started = time.perf_counter()
        result = self._outcome(signal, function)
        elapsed = self._timed(signal, started)
        if result is not None and elapsed > self.budget_seconds:
            self._overran(signal, f" (took {elapsed:.3f} s)")
            return None
        return result

    def _timed(self, signal: str, started: float) -> float:
        """Observe a call's duration; returns it."""
        elapsed = time.perf_counter() - started
        telemetry.PLUGIN_SECONDS.labels(self.name, signal).observe(elapsed)
        return elapsed

    def _overran(self, signal: str, detail: str) -> None:
        what = f"exceeded its {self.budget_seconds:g} s budget{detail}"
        self._fail(signal, "timeout", what, None)

    def _outcome(self, signal: str, result: Callable[[], T]) -> T | None:
        """The call's result, or None (counted and logged) when it failed."""
        try:
            return result()
        except MalformedBatchError:
            raise  # the request is at fault, not the plugin
        except _BadReturnError as error:
            self._fail(signal, "bad_return", str(error), None)
        except Exception as error:
            self._fail(signal, "exception", f"raised {error!r}", error)
        return None

    def _stuck(self, future: Future[Any], started: float) -> None:
        self.stuck_since = time.monotonic()
        telemetry.PLUGIN_STUCK.labels(self.name).set(1)

        def returned(_: Future[Any]) -> None:
            self.stuck_since = None
            telemetry.PLUGIN_STUCK.labels(self.name).set(0)
            logger.warning(
                "plugin %s: the call that overran its budget returned after %.1f s; "
                "its hooks run again",
                self.name,
                time.perf_counter() - started,
            )

        future.add_done_callback(returned)

    def _fail(self, signal: str, reason: str, what: str, error: BaseException | None) -> None:
        self.errors += 1
        self.last_error = f"{reason}: {what}"
        telemetry.PLUGIN_ERRORS.labels(self.name, signal, reason).inc()
        outcome = (
            "it fails closed: the request is refused (UNAVAILABLE), the collector keeps it and "
            "retries"
            if self.reject_on_failure
            else "the batch passes on unchanged"
        )
        self._log.error(
            (self.name, signal, reason), f"plugin {self.name} ({signal}) {what}; {outcome}", error
        )

    async def close(self) -> None:
        """Call the plugin's ``close`` within its budget, then let its thread go."""
        if self.stuck_since is None:
            await self._call("close", self.processor.close)
        self.release()

    def release(self) -> None:
        """Let the plugin's thread go (a stuck call keeps running until it returns)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class Chain:
    """The configured plugins, in order, for each signal."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = list(plugins)
        self._by_signal = {s: [p for p in self.plugins if s in p.signals] for s in Signal}

    async def process(self, signal: Signal, raw: bytes) -> tuple[bytes, bool]:
        """The batch after every plugin of its signal, and whether a plugin parsed it (so it is
        known to be valid OTLP). Raises :class:`MalformedBatchError` when a plugin found the
        request undecodable, :class:`PluginFailedError` when a fail-closed plugin failed."""
        message: object | None = None
        valid = False
        for plugin in self._by_signal[signal]:
            step = await plugin.process(signal, raw, message)
            if step is None:
                if plugin.reject_on_failure:
                    telemetry.REFUSED.labels(plugin.name, signal.value).inc()
                    raise PluginFailedError(f"plugin {plugin.name} failed: {plugin.last_error}")
                message = None  # the failed hook may have changed it: go on from the bytes
                continue
            raw, message, parsed = step
            valid = valid or parsed
        return raw, valid

    async def collect(self, now_unix_nano: int) -> list[tuple[str, Sequence[ResourceMetrics]]]:
        """Each collecting plugin's derived metrics (plugins that failed are left out)."""
        results = []
        for plugin in self.plugins:
            if plugin.collects:
                metrics = await plugin.collect(now_unix_nano)
                if metrics:
                    results.append((plugin.name, metrics))
        return results

    async def close(self) -> None:
        for plugin in self.plugins:
            await plugin.close()
