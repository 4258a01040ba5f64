"""The host: an OTLP/gRPC server whose export services run the plugin chain and forward.

Delivery: a request is answered OK only after the next hop accepted the processed batch; when
the next hop refuses or is down, the host answers with the next hop's status code (UNAVAILABLE
when it cannot be reached), so the collector keeps the batch in its persistent queue and retries.
The host holds no data of its own: stopping it at any moment loses nothing.

Bad input never costs the rest of a batch (which merges many senders' requests): when a plugin
or the next hop finds the batch undecodable (or, for metrics, the host itself: the collector's
Prometheus exporter would silently leave out a series with a label that is not UTF-8), it is
repaired (:mod:`._repair`: strings that are
not UTF-8 get U+FFFD, an item that still does not decode is dropped alone and counted in
``tbmon_processors_dropped_items_total``) and processed again. Only a request whose envelope
does not parse gets INVALID_ARGUMENT (nothing in it can be accepted); one above
PROCESSORS_MAX_MESSAGE_BYTES gets RESOURCE_EXHAUSTED from gRPC itself. Either way the server goes
on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tbmon.ports import port_holder
from tbmon.processors import otlp, telemetry
from tbmon.processors._repair import repair
from tbmon.processors.api import MalformedBatchError, Signal
from tbmon.processors.chain import Chain, PluginFailedError
from tbmon.processors.loader import load
from tbmon.processors.settings import ProcessorsSettings

logger = logging.getLogger(__name__)

Status = Literal["healthy", "degraded", "unhealthy"]

#: A forwarding failure newer than this makes /health say "degraded".
_RECENT_SECONDS = 60.0
#: Enough for the collector's exporters (num_consumers per pipeline); a flood beyond it gets
#: RESOURCE_EXHAUSTED instead of unbounded memory.
_MAX_CONCURRENT_RPCS = 256
#: Next-hop failures that say the next hop is unwell (not that it refused one batch).
_HOP_TROUBLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
#: The next hop's answers to a request it could not decode.
_REFUSALS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNKNOWN)


class HostStartError(RuntimeError):
    """The host could not start; the message says what to do."""


class Host:
    """The processors host for one set of settings."""

    def __init__(self, settings: ProcessorsSettings) -> None:
        """Load the configured plugins; raises :class:`PluginConfigError` on a bad setting."""
        self.settings = settings
        plugins, self.load_failures = load(settings)
        telemetry.declare_signals(signal.value for signal in Signal)
        self.chain = Chain(plugins)
        self.started_at: float | None = None
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._forward: dict[Signal, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._derive_task: asyncio.Task[None] | None = None
        self._last_forward_failure: tuple[float, str] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def start(self) -> None:
        """Connect to the next hop and serve OTLP/gRPC."""
        self._channel = grpc.aio.insecure_channel(
            self.settings.forward_endpoint,
            options=[
                ("grpc.max_send_message_length", self.settings.max_message_bytes),
                ("grpc.max_receive_message_length", 4 * 2**20),
                # The next hop is near: after an outage, reconnect within a couple of seconds
                # (gRPC's default backoff grows to two minutes).
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._forward = {signal: self._channel.unary_unary(signal.method) for signal in Signal}
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS,
        )
        server.add_generic_rpc_handlers(
            tuple(
                grpc.method_handlers_generic_handler(
                    signal.service,
                    {"Export": grpc.unary_unary_rpc_method_handler(self._handler(signal))},
                )
                for signal in Signal
            )
        )
        try:
            bound = server.add_insecure_port(self.endpoint)
        except RuntimeError:
            bound = 0
        if not bound:
            await self._channel.close()
            holder = port_holder(self.settings.host, self.settings.port)
            raise HostStartError(
                f"cannot listen on {self.endpoint} (PROCESSORS_PORT / --port)"
                f"{': in use' + holder if holder is not None else ''}; stop that process or "
                "choose another port"
            )
        await server.start()
        self._server = server
        self.started_at = time.monotonic()
        if any(plugin.collects for plugin in self.chain.plugins):
            self._derive_task = asyncio.create_task(self._derive_forever())
        logger.info(
            "serving OTLP/gRPC on %s, forwarding to %s; plugins: %s",
            self.endpoint,
            self.settings.forward_endpoint,
            ", ".join(p.name for p in self.chain.plugins) or "none",
        )

    async def stop(self) -> None:
        """Finish in-flight requests (within the grace period), then release everything."""
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_seconds)
            self._server = None
        if self._derive_task is not None:
            self._derive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._derive_task
        await self.chain.close()
        if self._channel is not None:
            await self._channel.close()
        logger.info("stopped")

    # -- serving ----------------------------------------------------------------------------

    def _handler(self, signal: Signal) -> Any:
        async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            code, response = await self._export(signal, request, context)
            telemetry.REQUESTS.labels(signal.value, code.name).inc()
            if code is not grpc.StatusCode.OK:
                await context.abort(code, response.decode())
            return response

        return export

    async def _export(
        self, signal: Signal, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> tuple[grpc.StatusCode, bytes]:
        try:
            received = signal.count(request)
        except MalformedBatchError as error:
            return grpc.StatusCode.INVALID_ARGUMENT, str(error).encode()
        telemetry.ITEMS_RECEIVED.labels(signal.value).inc(received)

        started = time.perf_counter()
        try:
            try:
                processed, valid = await self.chain.process(signal, request)
            except MalformedBatchError:
                # A plugin found an item it cannot decode: repair the batch (or drop that item
                # alone) and run the chain again, rather than refuse everybody's data.
                request, received = self._repaired(signal, request, received)
                processed, valid = await self.chain.process(signal, request)
            remaining = received if processed is request else signal.count(processed)
            if signal is Signal.METRICS and not valid:
                # The collector's Prometheus exporter leaves out a series whose label value is
                # not UTF-8 at every scrape, silently (a log line): a metrics batch no plugin
                # parsed is parsed here (bots send them every few seconds; their strings are
                # few), and repaired.
                try:
                    signal.validate(processed)
                except MalformedBatchError:
                    processed, remaining = self._repaired(signal, processed, remaining)
                valid = True
        except MalformedBatchError as error:
            return grpc.StatusCode.INVALID_ARGUMENT, str(error).encode()
        except PluginFailedError as error:
            return grpc.StatusCode.UNAVAILABLE, str(error).encode()
        finally:
            telemetry.CHAIN_SECONDS.labels(signal.value).observe(time.perf_counter() - started)
        if not remaining:
            return grpc.StatusCode.OK, b""  # everything was filtered out: nothing to send on
        return await self._pass_on(signal, processed, valid, remaining, context.time_remaining())

    def _repaired(self, signal: Signal, raw: bytes, items: int) -> tuple[bytes, int]:
        """The batch made decodable and how many items it has left; raises
        :class:`MalformedBatchError` when its envelope is broken."""
        try:
            fixed, repairs = repair(raw, signal.request_type.DESCRIPTOR)
        except DecodeError as error:
            raise MalformedBatchError(f"not an OTLP {signal.value} export request") from error
        if repairs.strings:
            telemetry.REPAIRED_STRINGS.labels(signal.value).inc(repairs.strings)
        remaining = signal.count(fixed)
        if remaining < items:
            telemetry.DROPPED_ITEMS.labels(signal.value, "malformed").inc(items - remaining)
        logger.warning(
            "a %s batch did not decode: %d strings that were not UTF-8 repaired (U+FFFD), "
            "%d undecodable items dropped, %d items passed on",
            signal.value,
            repairs.strings,
            items - remaining,
            remaining,
        )
        return fixed, remaining

    async def _pass_on(
        self, signal: Signal, processed: bytes, valid: bool, items: int, deadline: float | None
    ) -> tuple[grpc.StatusCode, bytes]:
        """Forward a processed batch; the next hop's answer is ours."""
        wait = self.settings.forward_timeout_seconds
        if deadline is not None:
            wait = min(wait, max(deadline - 0.05, 0.01))
        try:
            response = await self.send(signal, processed, wait)
        except grpc.aio.AioRpcError as error:
            if not valid and error.code() in _REFUSALS:
                # No plugin parsed the batch, so it may be garbage inside a valid envelope (the
                # collector then answers INTERNAL): parse it only now, off the hot path, and
                # send on what can be repaired.
                try:
                    signal.validate(processed)
                except MalformedBatchError:
                    try:
                        fixed, remaining = self._repaired(signal, processed, items)
                    except MalformedBatchError as malformed:
                        return grpc.StatusCode.INVALID_ARGUMENT, str(malformed).encode()
                    if not remaining:
                        return grpc.StatusCode.OK, b""
                    return await self._pass_on(signal, fixed, True, remaining, deadline)
            # Else the next hop's own status, so the collector retries exactly when it would
            # have retried the next hop (UNAVAILABLE, DEADLINE_EXCEEDED...) and only then.
            return (
                error.code(),
                f"next hop {self.settings.forward_endpoint}: {error.details()}".encode(),
            )
        telemetry.ITEMS_FORWARDED.labels(signal.value).inc(items)
        return grpc.StatusCode.OK, response

    async def send(self, signal: Signal, raw: bytes, wait_seconds: float) -> bytes:
        """Send one serialized request to the next hop; raises ``grpc.aio.AioRpcError``."""
        started = time.perf_counter()
        try:
            response: bytes = await self._forward[signal](raw, timeout=wait_seconds)
        except grpc.aio.AioRpcError as error:
            telemetry.FORWARD_FAILURES.labels(signal.value, error.code().name).inc()
            if error.code() in _HOP_TROUBLE:  # not a refusal of this one batch
                self._last_forward_failure = (
                    time.monotonic(),
                    f"{error.code().name}: {error.details()}",
                )
            raise
        finally:
            telemetry.FORWARD_SECONDS.labels(signal.value).observe(time.perf_counter() - started)
        return response

    # -- derived metrics --------------------------------------------------------------------

    async def _derive_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.derive_interval_seconds)
            await self.derive_once()

    async def derive_once(self) -> None:
        """Collect the plugins' derived metrics and send them to the next hop.

        Derived values are state, not data: when the next hop is down, this round is skipped and
        the next one sends the values as they are then.
        """
        request = ExportMetricsServiceRequest()
        points = {}
        for name, resource_metrics in await self.chain.collect(time.time_ns()):
            request.resource_metrics.extend(resource_metrics)
            points[name] = sum(
                len(otlp.data_points(metric))
                for item in resource_metrics
                for scope in item.scope_metrics
                for metric in scope.metrics
            )
        if not request.resource_metrics:
            return
        try:
            await self.send(
                Signal.METRICS, request.SerializeToString(), self.settings.forward_timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            logger.warning("derived metrics not sent this round: %s", error.details())
            return
        for name, count in points.items():
            telemetry.DERIVED_POINTS.labels(name).inc(count)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What /health reports: the worst of the server, the next hop and the plugins."""
        now = time.monotonic()
        serving = self._server is not None
        next_hop = self._next_hop_check(now)
        plugins = [
            {
                "name": plugin.name,
                "status": "warn" if plugin.stuck_since is not None else "pass",
                "stuck_seconds": None
                if plugin.stuck_since is None
                else round(now - plugin.stuck_since, 1),
                "errors": plugin.errors,
                "last_error": plugin.last_error,
                "budget_seconds": plugin.budget_seconds,
            }
            for plugin in self.chain.plugins
        ]
        plugins += [
            {"name": failure.name, "status": "fail", "load_error": failure.error}
            for failure in self.load_failures
        ]
        status: Status = "healthy"
        if not serving:
            status = "unhealthy"
        elif next_hop["status"] != "pass" or any(p["status"] != "pass" for p in plugins):
            status = "degraded"
        return {
            "status": status,
            "grpc": {"status": "pass" if serving else "fail", "endpoint": self.endpoint},
            "next_hop": next_hop,
            "plugins": plugins,
            "uptime_seconds": round(now - self.started_at, 1) if self.started_at else 0.0,
        }

    def _next_hop_check(self, now: float) -> dict[str, Any]:
        state = self._channel.get_state(try_to_connect=True).name if self._channel else "SHUTDOWN"
        recent = self._last_forward_failure
        failure = recent[1] if recent and now - recent[0] < _RECENT_SECONDS else None
        ok = state in ("READY", "IDLE") and failure is None
        return {
            "status": "pass" if ok else "warn",
            "endpoint": self.settings.forward_endpoint,
            "state": state,
            "last_failure": failure,
        }
