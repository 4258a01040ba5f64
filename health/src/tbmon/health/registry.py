"""Find the installed checks (entry points) and build the ones the settings enable.

Built-in checks are registered like any plugin, in ``pyproject.toml`` under
``[project.entry-points."tbmon.health_checks"]``; the entry point's name is the component name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tbmon.health.check import ENTRY_POINT_GROUP, Check, NotConfigured
from tbmon.health.settings import ENV_PREFIX, HealthSettings
from tbmon.plugins import discover

logger = logging.getLogger(__name__)


class ConfigurationError(ValueError):
    """The settings name checks that do not exist or cannot be built; the message says which."""


@dataclass(frozen=True)
class ScheduledCheck:
    """A built check with what the scheduler needs to run it."""

    name: str
    check: Check
    timeout: float
    critical: bool


def build(settings: HealthSettings) -> list[ScheduledCheck]:
    """The checks to run, in order: ``HEALTH_CHECKS`` if set, else every configured one.

    A check named in ``HEALTH_CHECKS`` that cannot be built is a :class:`ConfigurationError`;
    otherwise an unconfigured check is left out quietly and a broken plugin is left out with a
    log line, so one bad plugin never takes the health service down.
    """
    installed = discover(ENTRY_POINT_GROUP)
    explicit = settings.checks is not None
    for variable, names in (
        ("CHECKS", settings.checks or []),
        ("CRITICAL", settings.critical),
        ("TIMEOUTS", list(settings.timeouts)),
    ):
        unknown = [name for name in names if name not in installed]
        if unknown:
            raise ConfigurationError(
                f"{ENV_PREFIX}{variable} names unknown check(s) {', '.join(unknown)}; "
                f"installed checks: {', '.join(installed)}"
            )
    scheduled = []
    wanted = list(dict.fromkeys(settings.checks)) if settings.checks is not None else installed
    for name in wanted:
        entry_point = installed[name]
        try:
            check = entry_point.load()(settings)
            if not isinstance(check, Check):
                raise TypeError(f"returned {type(check).__name__}, not a tbmon.health.Check")
        except NotConfigured as reason:
            if explicit:
                raise ConfigurationError(
                    f"{ENV_PREFIX}CHECKS enables {name}, but it is not configured: {reason}"
                ) from None
            logger.info("health check %s is off: %s", name, reason)
            continue
        except Exception as error:
            if explicit:
                raise ConfigurationError(
                    f"{ENV_PREFIX}CHECKS enables {name}, but its plugin {entry_point.value} "
                    f"failed to load: {type(error).__name__}: {error}"
                ) from error
            logger.error(
                "skipping health check plugin %s (%s): %s: %s",
                name,
                entry_point.value,
                type(error).__name__,
                error,
            )
            continue
        scheduled.append(
            ScheduledCheck(
                name=name,
                check=check,
                timeout=settings.timeout_for(name),
                critical=name in settings.critical,
            )
        )
    return scheduled
