"""`tbmon backup`: the seed's Backup and Recovery, in one command, into one dated folder.

    <output>/tbmon-backup-20260115T143045Z/
      config/       the rule and config files (Prometheus, Alertmanager, collector, Jaeger, Loki,
                    Grafana provisioning and dashboards, the Compose file, .env.example)
      grafana/      every dashboard and the datasources, through Grafana's API (where it runs)
      prometheus/   a TSDB snapshot through the admin API (copied when its files are reachable
                    from here, as on the local stack; in Compose, the command to copy it)
      manifest.json what was saved, skipped or failed and why, with a SHA-256 of every file

Secrets are never copied: stack/src/tbmon/stack/.env and the rendered Alertmanager config stay
out. A part that cannot be saved is recorded as such and the others are still saved.
docs/operations.md has the matching restore steps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import httpx

from tbmon.settings import StackSettings
from tbmon.stack.operations import COMPOSE, OperationsSettings, json_body
from tbmon.stack.resources import COLLECTOR_CONFIG, COLLECTOR_MANIFEST, STACK_DATA
from tbmon.version import __version__

#: Files and folders of the checkout that make up the stack's configuration.
#: The configs a backup keeps, by their place in the backup (config/<name>).
CONFIG_PATHS: dict[str, Path] = {
    "stack/prometheus": STACK_DATA / "prometheus",
    "stack/alertmanager": STACK_DATA / "alertmanager",
    "stack/jaeger": STACK_DATA / "jaeger",
    "stack/loki": STACK_DATA / "loki",
    "stack/grafana": STACK_DATA / "grafana",
    "stack/docker-compose.monitoring.yml": STACK_DATA / "docker-compose.monitoring.yml",
    "stack/.env.example": STACK_DATA / ".env.example",
    "otel-collector/config.yaml": COLLECTOR_CONFIG,
    "otel-collector/builder-config.yaml": COLLECTOR_MANIFEST,
}


class Outcome(StrEnum):
    SAVED = "saved"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class Part:
    """One part of the backup and what became of it."""

    name: str
    outcome: Outcome
    detail: str
    files: list[str] = field(default_factory=list)


@dataclass
class Report:
    folder: Path
    parts: list[Part]

    @property
    def failed(self) -> bool:
        return any(part.outcome is Outcome.FAILED for part in self.parts)


class Backup:
    """One backup run against one stack."""

    def __init__(
        self,
        stack: StackSettings,
        operations: OperationsSettings,
        prometheus_data: Path | None = None,
    ) -> None:
        self.stack = stack
        self.operations = operations
        #: Where Prometheus keeps its TSDB, seen from here (the local stack's, by default).
        self.prometheus_data = prometheus_data or stack.data_dir / "prometheus" / "tsdb"

    def run(self, output: Path, now: datetime | None = None) -> Report:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        output.mkdir(parents=True, exist_ok=True)
        folder = output / f"tbmon-backup-{stamp}"
        for attempt in range(2, 100):  # never mix two backups taken within one second
            try:
                folder.mkdir()
                break
            except FileExistsError:
                folder = output / f"tbmon-backup-{stamp}-{attempt}"
        else:
            raise FileExistsError(f"{folder}: too many backups within one second")
        with httpx.Client(timeout=self.operations.timeout) as client:
            parts = [
                _attempt("config", lambda: self._config(folder)),
                _attempt("grafana", lambda: self._grafana(client, folder)),
                _attempt("prometheus", lambda: self._prometheus(client, folder)),
            ]
        manifest = {
            "created": stamp,
            "tbmon_version": __version__,
            "parts": [{**asdict(part), "outcome": str(part.outcome)} for part in parts],
            "sha256": {
                str(path.relative_to(folder)): _sha256(path)
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            },
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return Report(folder, parts)

    def _config(self, folder: Path) -> Part:
        saved = []
        for relative, source in CONFIG_PATHS.items():
            target = folder / "config" / relative
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns(".env"))
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            else:
                continue
            saved.append(relative)
        return Part("config", Outcome.SAVED, f"{len(saved)} files and folders", saved)

    def _grafana(self, client: httpx.Client, folder: Path) -> Part:
        url = self.operations.grafana_url.rstrip("/")
        try:
            client.get(f"{url}/api/health").raise_for_status()
        except httpx.HTTPError as error:
            return Part(
                "grafana",
                Outcome.SKIPPED,
                f"Grafana not reachable at {url} ({type(error).__name__}); the provisioned "
                "dashboards are in config/stack/grafana. Set GRAFANA_URL if it runs elsewhere",
            )
        auth = self.operations.grafana_auth()
        if auth is None:
            return Part(
                "grafana",
                Outcome.SKIPPED,
                "GRAFANA_ADMIN_PASSWORD is not set (in the environment or .env)",
            )
        search = client.get(f"{url}/api/search", params={"type": "dash-db"}, auth=auth)
        if search.status_code in (401, 403):
            return Part(
                "grafana",
                Outcome.FAILED,
                f"Grafana refused {self.operations.grafana_admin_user} ({search.status_code}): "
                "check GRAFANA_ADMIN_USER and GRAFANA_ADMIN_PASSWORD",
            )
        search.raise_for_status()
        target = folder / "grafana" / "dashboards"
        target.mkdir(parents=True)
        saved = []
        for hit in search.json():
            response = client.get(f"{url}/api/dashboards/uid/{hit['uid']}", auth=auth)
            response.raise_for_status()
            path = target / f"{_safe(hit['uid'])}.json"
            path.write_text(json.dumps(response.json(), indent=2) + "\n")
            saved.append(str(path.relative_to(folder)))
        datasources = client.get(f"{url}/api/datasources", auth=auth)
        datasources.raise_for_status()
        (folder / "grafana" / "datasources.json").write_text(
            json.dumps(datasources.json(), indent=2) + "\n"
        )
        saved.append("grafana/datasources.json")
        return Part(
            "grafana", Outcome.SAVED, f"{len(saved) - 1} dashboards and the datasources", saved
        )

    def _prometheus(self, client: httpx.Client, folder: Path) -> Part:
        url = self.stack.url(self.stack.prometheus_port)
        try:
            response = client.post(f"{url}/api/v1/admin/tsdb/snapshot")
        except httpx.HTTPError as error:
            return Part(
                "prometheus",
                Outcome.FAILED,
                f"Prometheus not reachable at {url} ({type(error).__name__}): start it "
                f"(`tbmon stack up prometheus` or `{COMPOSE} up -d prometheus`) and run the backup "
                "again",
            )
        body = json_body(response)
        if not response.is_success or body.get("status") != "success":
            return Part(
                "prometheus",
                Outcome.FAILED,
                f"snapshot refused ({response.status_code}: "
                f"{body.get('error', response.text)[:200]}); "
                "Prometheus must run with --web.enable-admin-api (both stacks do)",
            )
        name = body["data"]["name"]
        snapshot = self.prometheus_data / "snapshots" / name
        target = folder / "prometheus" / "snapshot"
        if not snapshot.is_dir():  # inside the Compose stack's volume: copy it out with docker
            problem = _copy_from_compose(name, target)
            if problem is not None:
                command = _compose_copy_command(name, target)
                (folder / "prometheus").mkdir(exist_ok=True)
                (folder / "prometheus" / "COPY-SNAPSHOT.txt").write_text(command + "\n")
                return Part(
                    "prometheus",
                    Outcome.FAILED,
                    f"snapshot {name} was taken inside Prometheus's volume but not copied here "
                    f"({problem}); finish with: {command}",
                    ["prometheus/COPY-SNAPSHOT.txt"],
                )
            files = _files(folder, target)
            return Part("prometheus", Outcome.SAVED, f"TSDB snapshot {name} (from Compose)", files)
        shutil.copytree(snapshot, target)
        # Ours now: leave no copy behind to fill Prometheus's disk.
        shutil.rmtree(snapshot)
        return Part("prometheus", Outcome.SAVED, f"TSDB snapshot {name}", _files(folder, target))


def _files(folder: Path, under: Path) -> list[str]:
    return [str(path.relative_to(folder)) for path in sorted(under.rglob("*")) if path.is_file()]


def _compose_copy_command(name: str, target: Path) -> str:
    return (
        f"{COMPOSE} cp prometheus:/prometheus/snapshots/{name} {target} && "
        f"{COMPOSE} exec prometheus rm -rf /prometheus/snapshots/{name}"
    )


def _copy_from_compose(name: str, target: Path) -> str | None:
    """Copy a snapshot out of the Compose stack's Prometheus, then delete it there; the problem
    if that could not be done."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    compose = ["docker", "compose", "-f", str(STACK_DATA / "docker-compose.monitoring.yml")]
    source = f"/prometheus/snapshots/{name}"
    for argv in (
        [*compose, "cp", f"prometheus:{source}", str(target)],
        [*compose, "exec", "-T", "prometheus", "rm", "-rf", source],
    ):
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{' '.join(argv[3:5])}: {error}"
        if result.returncode != 0:
            return f"{' '.join(argv[3:5])}: {result.stderr.strip()[-300:]}"
    return None


def _attempt(name: str, run: Callable[[], Part]) -> Part:
    """A part that raised is recorded as failed, with the error; the other parts go on."""
    try:
        return run()
    except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
        return Part(name, Outcome.FAILED, f"{type(error).__name__}: {error}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
