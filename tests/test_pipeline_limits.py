"""Size limits hop by hop, derived from the configs themselves so that they cannot drift.

What a bot may send (the collector's OTLP receivers) must fit a batch (else the exporter's queue
drops the whole merged batch, other senders' items with it), and every later hop must take the
largest batch (a refusal there is permanent): the processors host, the collector's
``otlp/processed`` receiver, Jaeger's OTLP receiver, VictoriaLogs and Loki (Compose). The poison
test in
``test_fault_tolerance.py`` sends 2.5 MiB values through the real stack beside a good sender.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tbmon.processors.settings import ProcessorsSettings
from tbmon.settings import StackSettings
from tbmon.stack import components
from tbmon.stack.resources import COLLECTOR_CONFIG, STACK_DATA

MIB = 2**20
#: What each hop may add to a batch (masks longer than the secrets they replace, the execution
#: plugin's marks): far less than the size itself, so the later hops take twice the batches.
GROWTH = 2
#: Jaeger's Badger store indexes every tag in a key of at most 65,000 bytes (badger's limit);
#: VictoriaLogs ignores log records above 2 MB.
BADGER_MAX_KEY = 65_000
VICTORIA_LOGS_MAX_RECORD = 2_000_000


def _yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _loki_size(text: str | int) -> int:
    """Loki's sizes (flagext.ByteSize, humanize's units): 256KB, 16MB, 0."""
    if isinstance(text, int):
        return text
    number, unit = re.fullmatch(r"(\d+)\s*([KMG]i?B)?", text).groups()  # type: ignore[union-attr]
    factors = {None: 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": MIB}
    return int(number) * factors[unit]


def _size(text: str) -> int:
    """VictoriaLogs' size flags: 64MiB, 2MB..."""
    number, unit = re.fullmatch(r"(\d+)([KMG]i?B)?", text).groups()  # type: ignore[union-attr]
    factors = {None: 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": MIB}
    return int(number) * factors[unit]


def test_every_hop_takes_what_the_one_before_may_send(tmp_path: Path) -> None:
    collector = _yaml(COLLECTOR_CONFIG)
    protocols = collector["receivers"]["otlp"]["protocols"]
    # What one bot request may hold (gRPC's limit is on the decompressed message, as is HTTP's).
    largest_request = max(
        protocols["grpc"]["max_recv_msg_size_mib"] * MIB,
        protocols["http"]["max_request_body_size"],
    )
    batches = {}
    for name, exporter in collector["exporters"].items():
        if "sending_queue" not in exporter:
            continue
        queue = exporter["sending_queue"]
        assert queue["storage"] == "file_storage", name
        batch = queue["batch"]
        # Cut by bytes, above the largest request: one item always fits a batch.
        assert batch["sizer"] == "bytes", name
        assert batch["max_size"] >= largest_request, name
        batches[name] = batch["max_size"]

    host = ProcessorsSettings().max_message_bytes
    processed = (
        collector["receivers"]["otlp/processed"]["protocols"]["grpc"]["max_recv_msg_size_mib"] * MIB
    )
    jaeger = (
        _yaml(STACK_DATA / "jaeger" / "config.yaml")["receivers"]["otlp"]["protocols"]["grpc"][
            "max_recv_msg_size_mib"
        ]
        * MIB
    )
    victoria_logs = _size(components.VICTORIA_LOGS_MAX_REQUEST)
    flag = f"-opentelemetry.maxRequestSize={components.VICTORIA_LOGS_MAX_REQUEST}"
    (logs,) = components.select(["logs"])
    assert flag in logs.args(components.Layout(StackSettings(data_dir=tmp_path), "logs"))

    assert host >= GROWTH * batches["otlp_grpc/processors"]
    assert processed >= host  # the host forwards what it accepted, after its plugins
    assert jaeger >= GROWTH * batches["otlp_grpc/jaeger"]
    assert victoria_logs >= GROWTH * batches["otlp_http/logs"]


def test_values_are_cut_below_what_the_backends_store() -> None:
    limits = _yaml(COLLECTOR_CONFIG)["processors"]["transform/limits"]
    statements = [
        statement
        for kind in ("trace_statements", "log_statements", "metric_statements")
        for group in limits[kind]
        for statement in group["statements"]
    ]
    cuts = {int(n) for s in statements for n in re.findall(r"truncate_all\([\w.]+, (\d+)\)", s)}
    assert cuts
    # A tag's value is only part of Badger's index key: room for the service name, the tag's
    # key, the time and the trace id.
    assert max(cuts) + 16 * 1024 <= BADGER_MAX_KEY
    assert max(cuts) * 30 < VICTORIA_LOGS_MAX_RECORD
    # Every place the statements cut is also marked.
    for path in (
        "resource.attributes",
        "span.attributes",
        "spanevent.attributes",
        "log.attributes",
    ):
        assert any(f'set({path}["tbmon.truncated"], true)' in s for s in statements), path


def _body_cut(limits: dict[str, Any]) -> int:
    """The size the collector cuts log bodies to (the cache it moves the body through)."""
    (cut,) = {
        int(n)
        for group in limits["log_statements"]
        for statement in group["statements"]
        for n in re.findall(r"truncate_all\(log\.cache, (\d+)\)", statement)
    }
    return cut


def test_loki_takes_every_record_and_batch_the_collector_sends() -> None:
    """Loki (Compose) refuses an entry for good (a 4xx) when its line or its structured
    metadata (the attributes) passes a limit, and retries for ever a push above a rate burst:
    each limit takes what the collector may send."""
    collector = _yaml(COLLECTOR_CONFIG)
    limits = _yaml(STACK_DATA / "loki" / "loki.yaml")["limits_config"]
    protocols = collector["receivers"]["otlp"]["protocols"]
    largest_request = max(
        protocols["grpc"]["max_recv_msg_size_mib"] * MIB,
        protocols["http"]["max_request_body_size"],
    )
    batch = collector["exporters"]["otlp_http/logs"]["sending_queue"]["batch"]["max_size"]
    # Loki's defaults where the file says nothing: 256KB lines, 64KB and 128 entries of
    # structured metadata.
    line = _loki_size(limits.get("max_line_size", "256KB"))
    assert line == 0 or line >= _body_cut(collector["processors"]["transform/limits"])
    metadata = _loki_size(limits.get("max_structured_metadata_size", "64KB"))
    assert metadata == 0 or metadata >= largest_request, "a record's attributes may fill a request"
    entries = limits.get("max_structured_metadata_entries_count", 128)
    assert entries == 0, "the collector does not bound the number of a record's attributes"
    # Bursts in MB (Loki's ingestion_burst_size_mb) and in bytes.
    assert limits["ingestion_burst_size_mb"] * 10**6 >= GROWTH * batch
    assert _loki_size(limits["per_stream_rate_limit_burst"]) >= GROWTH * batch


def test_victoria_logs_takes_every_record_s_fields(tmp_path: Path) -> None:
    """VictoriaLogs drops a row of more than -insert.maxFieldsPerLine fields (1,000 unless the
    stack sets it): the collector keeps at most that many attributes a record and a resource,
    with room for the fields of its own (time, body, severity, ids, scope)."""
    statements = [
        statement
        for group in _yaml(COLLECTOR_CONFIG)["processors"]["transform/limits"]["log_statements"]
        for statement in group["statements"]
    ]
    kept = {
        target: int(count)
        for statement in statements
        for target, count in re.findall(r"^limit\(([\w.]+), (\d+)", statement)
    }
    (logs,) = components.select(["logs"])
    args = logs.args(components.Layout(StackSettings(data_dir=tmp_path), "logs"))
    flag = [a.split("=", 1)[1] for a in args if a.startswith("-insert.maxFieldsPerLine=")]
    most = int(flag[0]) if flag else 1000
    assert set(kept) == {"log.attributes", "resource.attributes"}
    assert sum(kept.values()) + 32 <= most
