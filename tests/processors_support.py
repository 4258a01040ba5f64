"""Helpers for the processors tests: a recording next hop, a host process, installable plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf.message import DecodeError
from support import wait_until

from tbmon import otlp_wire as wire
from tbmon.ports import free_ports
from tbmon.processors.api import Signal


@dataclass
class OtlpSink:
    """A stand-in next hop: records every request (parsed), or fails as it is told to."""

    port: int
    received: dict[Signal, list[Any]] = field(default_factory=lambda: {s: [] for s in Signal})
    fail_with: grpc.StatusCode | None = None
    delay_seconds: float = 0.0
    arrived: threading.Event = field(default_factory=threading.Event)

    def handler(self, signal: Signal) -> grpc.RpcMethodHandler:
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.arrived.set()
            time.sleep(self.delay_seconds)
            if self.fail_with is not None:
                context.abort(self.fail_with, "the sink was told to fail")
            try:
                message = signal.request_type.FromString(request)
            except DecodeError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            self.received[signal].append(message)
            return b""

        return grpc.unary_unary_rpc_method_handler(export)

    def all(self, signal: Signal) -> list[Any]:
        return list(self.received[signal])


_ITEM = wire.tag(wire.ScopeItems.ITEMS, wire.LEN)
_SCOPES = wire.tag(wire.ResourceItems.SCOPES, wire.LEN)
_RESOURCES = wire.tag(wire.Request.RESOURCES, wire.LEN)


def raw_request(*items: bytes) -> bytes:
    """A span or log export request of one resource and one scope holding ``items`` as they are
    (well-formed or not): the envelope around hand-made item bytes."""
    scope = b"".join(wire.field(_ITEM, item) for item in items)
    return wire.field(_RESOURCES, wire.field(_SCOPES, scope))


@contextmanager
def otlp_sink(port: int | None = None) -> Iterator[OtlpSink]:
    """A recording OTLP/gRPC server on 127.0.0.1 (a free port unless given)."""
    sink = OtlpSink(port or free_ports(1)[0])
    # As the collector's otlp/processed receiver (max_recv_msg_size_mib: 64).
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 64 * 2**20)],
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(signal.service, {"Export": sink.handler(signal)})
            for signal in Signal
        )
    )
    server.add_insecure_port(f"127.0.0.1:{sink.port}")
    server.start()
    try:
        yield sink
    finally:
        server.stop(0)


@dataclass
class HostClient:
    """Talks to a processors host as the collector and people do: OTLP/gRPC, /health, /metrics."""

    port: int
    http_port: int

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(
            f"http://127.0.0.1:{self.http_port}/health", timeout=5
        ).json()
        return document

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the host's /metrics samples of ``name`` with these labels (0 when none),
        as ``sum(name{labels})`` would be: series may exist at 0 before anything happened."""
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        total = 0.0
        for line in self.metrics().splitlines():
            named = line.startswith((name + "{", name + " "))
            if named and all(label in line for label in wanted):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def export(self, signal: Signal, raw: bytes, timeout: float = 10) -> bytes:
        """Send one raw request as the collector would; raises grpc.RpcError."""
        with grpc.insecure_channel(
            self.endpoint, options=[("grpc.max_send_message_length", 256 * 2**20)]
        ) as channel:
            response: bytes = channel.unary_unary(signal.method)(raw, timeout=timeout)
        return response


@dataclass
class HostProcess(HostClient):
    """A `tbmon processors serve` process this test started."""

    process: subprocess.Popen[str]
    log: Path


def start_host(
    tmp: Path, forward_port: int, env: dict[str, str] | None = None, ready: bool = True
) -> HostProcess:
    """Start a host forwarding to 127.0.0.1:``forward_port``; waits for /health if ``ready``."""
    port, http_port = free_ports(2)
    log = tmp / f"host-{port}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tbmon",
            "processors",
            "serve",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
            "--forward",
            f"127.0.0.1:{forward_port}",
        ],
        env={**os.environ, **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp,
    )
    host = HostProcess(port, http_port, process, log)
    if ready:
        try:
            wait_until(lambda: _answers(host), "the processors host's /health", timeout=30)
        except AssertionError:
            stop_host(host)
            raise AssertionError(f"host did not start:\n{log.read_text()}") from None
    return host


def stop_host(host: HostProcess) -> None:
    if host.process.poll() is None:
        host.process.terminate()
        try:
            host.process.wait(20)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait(5)


def _answers(host: HostProcess) -> bool:
    if host.process.poll() is not None:
        raise AssertionError(f"host exited early:\n{host.log.read_text()}")
    try:
        return httpx.get(f"http://127.0.0.1:{host.http_port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# Test plugins, installed into a temporary folder as a distribution with entry points.
TEST_PLUGINS = '''
import os
import threading
import time

from tbmon.processors import Batch, Processor, otlp
from tbmon.processors.redaction import RedactionProcessor


class Tagging(Processor):
    """Adds attribute plugin.<name>=<position> to every span."""

    name = "tag"

    def process_spans(self, batch):
        request = batch.edit()
        for _, _, span in otlp.spans(request):
            otlp.set_attribute(span.attributes, f"plugin.{self.name}", len(span.attributes))
        return batch


class TaggingA(Tagging):
    name = "a"


class TaggingB(Tagging):
    name = "b"


class Raising(Processor):
    """Changes the batch, then raises: the change must not survive."""

    def process_spans(self, batch):
        for _, _, span in otlp.spans(batch.edit()):
            span.name = "changed-by-raising"
        raise RuntimeError("boom")


class Hanging(Processor):
    """Overruns its budget (sleeps ``seconds``) on batches that contain b"hang"."""

    seconds = 3.0

    def process_spans(self, batch):
        if batch.contains(b"hang"):
            for _, _, span in otlp.spans(batch.edit()):
                span.name = "changed-by-hanging"
            time.sleep(self.seconds)
        return batch


class SlowInline(Hanging):
    """Declares its hooks bounded (inline), then overruns all the same."""

    runs_inline = True
    seconds = 0.3


class BadReturn(Processor):
    def process_logs(self, batch):
        return None


class Deriving(Processor):
    """Derives one gauge per collection."""

    def __init__(self):
        self.calls = 0

    def collect_metrics(self, now):
        self.calls += 1
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource
        resource = Resource(attributes=otlp.key_values({"service.name": "deriving"}))
        calls = otlp.gauge("derived_calls", [({}, float(self.calls))], now)
        return [otlp.resource_metrics(resource, "test", [calls])]


class FlakyRedaction(RedactionProcessor):
    """The real redaction, but it raises while the working directory holds a file
    "redaction-raises" and overruns (3 s) while it holds "redaction-hangs"."""

    runs_inline = False  # it may sleep: on its own thread, so the host is not held up

    def _trouble(self):
        if os.path.exists("redaction-raises"):
            raise RuntimeError("redaction broke")
        if os.path.exists("redaction-hangs"):
            time.sleep(3)

    def process_spans(self, batch):
        self._trouble()
        return super().process_spans(batch)

    def process_logs(self, batch):
        self._trouble()
        return super().process_logs(batch)


class BrokenRedaction(RedactionProcessor):
    """A fail-closed plugin whose constructor raises."""

    def __init__(self):
        raise OSError("cannot read the pattern file")


class NotAProcessor:
    pass
'''

TEST_ENTRY_POINTS = """
[tbmon.processors]
tag_a = tbmon_test_plugins:TaggingA
tag_b = tbmon_test_plugins:TaggingB
raising = tbmon_test_plugins:Raising
hanging = tbmon_test_plugins:Hanging
slow_inline = tbmon_test_plugins:SlowInline
bad_return = tbmon_test_plugins:BadReturn
deriving = tbmon_test_plugins:Deriving
not_a_processor = tbmon_test_plugins:NotAProcessor
flaky_redaction = tbmon_test_plugins:FlakyRedaction
broken_redaction = tbmon_test_plugins:BrokenRedaction
missing_module = tbmon_no_such_module:Nothing
"""


def install_test_plugins(folder: Path) -> Path:
    """Write the test plugins as an installed distribution under ``folder``; returns it (for
    PYTHONPATH or sys.path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tbmon_test_plugins.py").write_text(TEST_PLUGINS)
    dist_info = folder / "tbmon_test_plugins-0.0.0.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tbmon-test-plugins\nVersion: 0.0.0\n"
    )
    (dist_info / "entry_points.txt").write_text(TEST_ENTRY_POINTS)
    return folder
