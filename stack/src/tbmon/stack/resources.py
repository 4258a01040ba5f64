"""Where the stack's own files are: the package data of ``tbmon.stack`` and ``tbmon.collector``.

Every runtime path to a config, rule, dashboard, manifest or provisioning file goes through
here, the same way from a checkout (editable install) and from an installed wheel: through
:mod:`importlib.resources`. pip installs wheels as plain files, so each is a real path the
backends (Prometheus, the collector, install.sh) can be given on their command lines.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_folder(package: str) -> Path:
    """The folder of ``package`` on disk; an error naming the fix if it is not plain files."""
    root = files(package)
    if not isinstance(root, Path):
        raise RuntimeError(
            f"{package} is not installed as plain files ({root!r}): reinstall it with pip"
        )
    return root


#: tbmon.stack's folder: prometheus/, alertmanager/, grafana/, jaeger/, loki/, kubernetes/,
#: provision/ (install.sh and the Go pins), docker-compose.monitoring.yml, .env.example.
STACK_DATA = package_folder("tbmon.stack")
#: tbmon.collector's folder: config.yaml and builder-config.yaml.
COLLECTOR_DATA = package_folder("tbmon.collector")
COLLECTOR_CONFIG = COLLECTOR_DATA / "config.yaml"
COLLECTOR_MANIFEST = COLLECTOR_DATA / "builder-config.yaml"
INSTALL_SCRIPT = STACK_DATA / "provision" / "install.sh"
