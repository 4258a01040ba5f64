"""tbmon's release number, read from the installed distribution's metadata.

Every tbmon distribution (tbmon-core, tbmon-instrumentation, ..., tbmon-stack) is released with
the same number; this is tbmon-core's, the one all of them depend on.
"""

from importlib.metadata import version

__version__ = version("tbmon-core")
