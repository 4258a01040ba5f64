"""Components found through entry points (health checks, processor plugins).

A name registered by two installed packages is resolved the way Python resolves imports: the
first one found wins, and the clash is logged so the operator can remove one.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

logger = logging.getLogger(__name__)


def discover(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the first registration of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=group):
        if entry_point.name in found:
            logger.warning(
                "%s: %r is registered twice (%s and %s); using the first",
                group,
                entry_point.name,
                found[entry_point.name].value,
                entry_point.value,
            )
            continue
        found[entry_point.name] = entry_point
    return found
