"""`tbmon backup` against the real local stack, and the restore it promises: a Prometheus started
on the saved snapshot answers with the data that was backed up."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from support import Backends, otlp_sdk, wait_until

from tbmon.ports import free_ports
from tbmon.settings import StackSettings
from tbmon.stack import binaries
from tbmon.stack.backup import Backup, Outcome, Report
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.supervisor import Supervisor

pytestmark = pytest.mark.stack


def _operations(**values: str) -> OperationsSettings:
    """Grafana only where a test runs one; nothing read from the environment or .env."""
    (closed,) = free_ports(1)
    return OperationsSettings.model_validate(
        {"grafana_url": f"http://127.0.0.1:{closed}", **values}
    )


def _parts(report: Report) -> dict[str, tuple[Outcome, str]]:
    return {part.name: (part.outcome, part.detail) for part in report.parts}


def test_backup_saves_config_and_a_snapshot_that_restores(
    stack: Supervisor, backends: Backends, tmp_path: Path
) -> None:
    metric, value = f"backup_probe_{uuid.uuid4().hex[:8]}", 4242.5
    with otlp_sdk(backends.otlp_grpc, "backup-probe") as sdk:
        sdk.meter_provider.get_meter("probe").create_gauge(metric).set(value)
    wait_until(lambda: backends.prometheus(metric), f"{metric} in Prometheus")

    report = Backup(stack.settings, _operations()).run(tmp_path / "backups")

    assert re.fullmatch(r"tbmon-backup-\d{8}T\d{6}Z", report.folder.name)
    parts = _parts(report)
    assert parts["config"][0] is Outcome.SAVED
    assert parts["grafana"][0] is Outcome.SKIPPED
    assert "Grafana not reachable" in parts["grafana"][1]
    assert parts["prometheus"][0] is Outcome.SAVED
    assert not report.failed
    config = report.folder / "config"
    for relative in (
        "stack/prometheus/prometheus.yml",
        "stack/alertmanager/alertmanager.yml",
        "stack/grafana/provisioning/datasources/datasources.yaml",
        "otel-collector/config.yaml",
        "stack/docker-compose.monitoring.yml",
    ):
        assert (config / relative).is_file(), relative
    assert not list(report.folder.rglob(".env"))  # secrets stay out
    manifest = json.loads((report.folder / "manifest.json").read_text())
    assert {p["name"]: p["outcome"] for p in manifest["parts"]} == {
        "config": "saved",
        "grafana": "skipped",
        "prometheus": "saved",
    }
    files = {str(p.relative_to(report.folder)) for p in report.folder.rglob("*") if p.is_file()}
    assert set(manifest["sha256"]) == files - {"manifest.json"}
    # The snapshot was moved out of Prometheus's data, not left to fill its disk.
    assert not any((stack.settings.data_dir / "prometheus/tsdb/snapshots").iterdir())

    # Restore (docs/operations.md): a Prometheus on a copy of the snapshot has the data.
    snapshot = report.folder / "prometheus" / "snapshot"
    assert any(snapshot.iterdir())
    port = free_ports(1)[0]
    tsdb = tmp_path / "restored"
    shutil.copytree(snapshot, tsdb)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text("global:\n  scrape_interval: 15s\n")
    process = subprocess.Popen(
        [
            str(binaries.PROMETHEUS.path(StackSettings().cache_dir)),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/-/ready").is_success, "the restored Prometheus")
        result = httpx.get(
            f"{url}/api/v1/query", params={"query": f"last_over_time({metric}[1h])"}
        ).json()["data"]["result"]
    finally:
        process.terminate()
        process.wait(15)
    assert [float(r["value"][1]) for r in result] == [value]


def test_prometheus_down_fails_its_part_and_keeps_the_rest(tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    settings = StackSettings.model_validate(
        {"data_dir": tmp_path / "data", "prometheus_port": closed}
    )
    report = Backup(settings, _operations()).run(tmp_path / "backups")
    outcome, detail = _parts(report)["prometheus"]
    assert outcome is Outcome.FAILED
    assert "tbmon stack up prometheus" in detail
    assert _parts(report)["config"][0] is Outcome.SAVED
    assert (report.folder / "manifest.json").is_file()


def test_a_snapshot_out_of_reach_fails_its_part_with_the_command_that_finishes_it(
    stack: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in Compose without a docker command: the snapshot lives in a volume we cannot read."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker-here"))
    volume = tmp_path / "compose-volume"  # where Prometheus's snapshots are not
    report = Backup(stack.settings, _operations(), prometheus_data=volume).run(tmp_path / "out")
    outcome, detail = _parts(report)["prometheus"]
    assert outcome is Outcome.FAILED
    assert report.failed
    assert "no docker command" in detail
    command = (report.folder / "prometheus" / "COPY-SNAPSHOT.txt").read_text()
    assert command.startswith(
        "docker compose -f stack/src/tbmon/stack/docker-compose.monitoring.yml cp prometheus:"
    )
    assert command.strip() in detail


def test_cli_writes_a_dated_folder_and_its_table(stack: Supervisor, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **stack.settings.environment(),
        "GRAFANA_URL": f"http://127.0.0.1:{free_ports(1)[0]}",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tbmon", "backup", "--output", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = tmp_path.glob("tbmon-backup-*")
    assert f"backup: {folder}" in result.stdout.replace("\n", "")
    assert "skipped" in result.stdout
