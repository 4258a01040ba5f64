"""What a health check is: the contract between the scheduler and every check, built-in or plugin.

A check is an object with an ``async check()`` that returns an :class:`Outcome`. The scheduler
owns everything else: the timeout, timing, catching exceptions, masking secrets, the snapshot and
the metrics. So a check stays a few lines of "ask the dependency, judge the answer".

Checks are found through the entry-point group :data:`ENTRY_POINT_GROUP`. Each entry point names
a *factory*: a callable taking :class:`~tbmon.health.settings.HealthSettings` and returning a
:class:`Check`, or raising :class:`NotConfigured` when the settings it needs are absent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from tbmon.health.settings import HealthSettings

#: The entry-point group every health check factory is registered under.
ENTRY_POINT_GROUP = "tbmon.health_checks"


class Status(StrEnum):
    """A component's health, best first."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def level(self) -> int:
        """The value of ``health_component_status``: 2 healthy, 1 degraded, 0 unhealthy."""
        return _LEVELS[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """The worst of ``statuses`` (healthy when there are none)."""
        return min(statuses, key=_LEVELS.__getitem__, default=cls.HEALTHY)


_LEVELS = {Status.HEALTHY: 2, Status.DEGRADED: 1, Status.UNHEALTHY: 0}


@dataclass(frozen=True)
class Outcome:
    """What one run of a check found.

    ``metadata`` is shown to operators in ``/health/detailed``: figures and, when something is
    wrong, an ``error`` saying what. Values must be JSON types; strings are masked for secrets.
    """

    status: Status
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Check(ABC):
    """One component's probe. Subclass it, implement :meth:`check`, register a factory."""

    @abstractmethod
    async def check(self) -> Outcome:
        """Ask the dependency and judge its answer.

        Raising marks the component unhealthy with the exception's message; so does running
        past the check's timeout (the scheduler cancels it). Blocking code must run through
        ``asyncio.to_thread`` so the timeout can fire.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what :meth:`check` opened (clients, connections); called once at shutdown."""


class CheckFailed(Exception):  # noqa: N818 - "database: CheckFailed: cannot connect"
    """Raise from :meth:`Check.check` to report the component unhealthy with this message."""


class NotConfigured(Exception):  # noqa: N818 - reads as a state: "database: NotConfigured"
    """Raised by a factory whose settings are absent; the message says which to set."""


#: What an entry point of :data:`ENTRY_POINT_GROUP` names.
CheckFactory: TypeAlias = Callable[["HealthSettings"], Check]
