"""Where the stack's programs are: Debian's packages, and the Go builds that `make install` caches.

A Go build is kept under ``<cache_dir>/<name>/<key>/`` where the key is the first 16 hex digits
of the SHA-256 of the file that pins its version (the Collector Builder manifest, or the go.mod of
a build module in ``tbmon/stack/provision/``). ``tbmon/stack/provision/install.sh``
computes the same key, so
editing a manifest makes the old binary invisible here instead of silently running it.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from tbmon.stack.resources import COLLECTOR_MANIFEST, STACK_DATA


class BinaryMissingError(RuntimeError):
    """A program the stack needs is not installed."""


@dataclass(frozen=True)
class Binary:
    """One program: a Debian package's file, or a cached Go build keyed by its manifest."""

    name: str
    fixed_path: str | None = None  # a Debian package's file, or this Python
    manifest: Path | None = None  # the pinning file, for Go builds

    def path(self, cache_dir: Path) -> Path:
        """The program's path; raises :class:`BinaryMissingError` with what to do if absent."""
        if self.fixed_path is not None:
            found = Path(self.fixed_path)
        else:
            found = self.cache_folder(cache_dir) / self.name
        if not found.is_file():
            raise BinaryMissingError(
                f"{self.name} is not installed (looked for {found}): run `tbmon stack install` "
                "(in a checkout: `make install`)"
            )
        return found

    def cache_folder(self, cache_dir: Path) -> Path:
        assert self.manifest is not None, f"{self.name} is not a Go build"
        return cache_dir / self.name / manifest_key(self.manifest)


def manifest_key(manifest: Path) -> str:
    """The cache key of a build: the manifest's SHA-256, shortened (as install.sh computes it)."""
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]


OTELCOL = Binary("otelcol-tbmon", manifest=COLLECTOR_MANIFEST)
JAEGER = Binary("jaeger", manifest=STACK_DATA / "provision/jaeger/go.mod")
VICTORIA_LOGS = Binary("victoria-logs", manifest=STACK_DATA / "provision/victoria-logs/go.mod")
#: This interpreter, for tbmon's own services (``python -m tbmon ...``).
PYTHON = Binary("python", fixed_path=sys.executable)
PROMETHEUS = Binary("prometheus", fixed_path="/usr/bin/prometheus")
PROMTOOL = Binary("promtool", fixed_path="/usr/bin/promtool")
ALERTMANAGER = Binary("prometheus-alertmanager", fixed_path="/usr/bin/prometheus-alertmanager")
AMTOOL = Binary("amtool", fixed_path="/usr/bin/amtool")
NODE_EXPORTER = Binary("prometheus-node-exporter", fixed_path="/usr/bin/prometheus-node-exporter")
THANOS = Binary("thanos", manifest=STACK_DATA / "provision/thanos/go.mod")
