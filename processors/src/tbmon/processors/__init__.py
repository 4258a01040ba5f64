"""tbmon.processors: Python plugins in the collector pipeline, over OTLP/gRPC.

Write a plugin by subclassing :class:`Processor` and registering it in the ``tbmon.processors``
entry-point group; :mod:`tbmon.processors.otlp` has helpers for OTLP messages and
:mod:`tbmon.processors.testing` a test kit. Run the host with ``tbmon processors serve``.
"""

from tbmon.processors.api import Batch, MalformedBatchError, Processor, Signal
from tbmon.processors.loader import ENTRY_POINT_GROUP

__all__ = ["ENTRY_POINT_GROUP", "Batch", "MalformedBatchError", "Processor", "Signal"]
