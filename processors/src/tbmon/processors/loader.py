"""Finding plugins: the ``tbmon.processors`` entry-point group, ordered by PROCESSORS_PLUGINS.

A package makes a plugin available by declaring an entry point in that group (name = what
PROCESSORS_PLUGINS lists, value = ``module:Class``). A name in the configuration that no
installed package provides, or a plugin setting that does not parse or validate, is a
configuration error (start-up fails, naming the variable); a plugin that is installed but broken
(its import or constructor raises) is skipped with a log line and reported by /health, so one bad
package cannot take the pipeline down, unless it fails closed (see :func:`load`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint

from tbmon.plugins import discover
from tbmon.processors.api import Processor
from tbmon.processors.chain import Plugin
from tbmon.processors.settings import ProcessorsSettings
from tbmon.settings import InvalidSettingsError

logger = logging.getLogger(__name__)

#: The entry-point group plugins register in.
ENTRY_POINT_GROUP = "tbmon.processors"


class PluginConfigError(ValueError):
    """PROCESSORS_PLUGINS names something no installed package provides, or a plugin's own
    settings are invalid."""


@dataclass(frozen=True)
class LoadFailure:
    """A configured plugin that could not be loaded, and why."""

    name: str
    error: str


def load(settings: ProcessorsSettings) -> tuple[list[Plugin], list[LoadFailure]]:
    """The configured plugins in order, and the ones that were skipped as broken.

    A fail-closed plugin (by its class, or listed in PROCESSORS_REJECT_ON_FAILURE) that cannot
    be built stops the start instead of being skipped: the host must not run without it.
    """
    installed = discover(ENTRY_POINT_GROUP)
    unknown = [name for name in settings.plugins if name not in installed]
    if unknown:
        raise PluginConfigError(
            f"PROCESSORS_PLUGINS names {', '.join(unknown)}, which no installed package provides; "
            f"installed plugins: {', '.join(sorted(installed)) or 'none'}"
        )
    listed = settings.reject_on_failure
    unlisted = [name for name in listed or () if name not in settings.plugins]
    if unlisted:
        raise PluginConfigError(
            f"PROCESSORS_REJECT_ON_FAILURE names {', '.join(unlisted)}, "
            "which PROCESSORS_PLUGINS does not list"
        )
    plugins, failures = [], []
    for name in settings.plugins:
        reject = None if listed is None else name in listed
        try:
            cls = _processor_class(installed[name])
            reject = cls.fail_closed if reject is None else reject
            processor = cls()
        except InvalidSettingsError as error:
            raise PluginConfigError(f"plugin {name}: invalid settings: {error}") from error
        except Exception as error:
            if reject:
                raise PluginConfigError(
                    f"plugin {name} fails closed (a failure refuses the data), so the host does "
                    f"not start without it: {type(error).__name__}: {error}"
                ) from error
            logger.exception("plugin %s (%s) is broken and skipped", name, installed[name].value)
            failures.append(LoadFailure(name, f"{type(error).__name__}: {error}"))
            continue
        plugins.append(Plugin(name, processor, settings.budget(name), bool(reject)))
        logger.info(
            "plugin %s loaded (%s)%s",
            name,
            installed[name].value,
            "; fails closed" if reject else "",
        )
    return plugins, failures


def _processor_class(entry_point: EntryPoint) -> type[Processor]:
    cls = entry_point.load()
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise TypeError(f"{entry_point.value} is not a subclass of tbmon.processors.Processor")
    return cls
