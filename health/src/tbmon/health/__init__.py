"""tbmon.health: every component's health on one port, answered from a background snapshot.

The public API is what a custom check needs (see docs/health.md), plus the app factory::

    from tbmon.health import Check, NotConfigured, Outcome, Status, HealthSettings
"""

from tbmon.health.app import create_app
from tbmon.health.check import (
    ENTRY_POINT_GROUP,
    Check,
    CheckFactory,
    CheckFailed,
    NotConfigured,
    Outcome,
    Status,
)
from tbmon.health.settings import HealthSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "Check",
    "CheckFactory",
    "CheckFailed",
    "HealthSettings",
    "NotConfigured",
    "Outcome",
    "Status",
    "create_app",
]
