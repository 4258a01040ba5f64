"""Portfolio high-water marks kept across restarts: one JSON file of marks, the one implementation
the bot side (``TBMON_STATE_DIR``) and the processors host (``PROCESSORS_ANALYTICS_STATE_DIR``)
both use.

The contract of :class:`MarkFile`:

- The file is read once, when the object is made: ``{"marks": [{<field>: <str or null>, ...,
  "peak": <number>}, ...]}``, one entry per mark, keyed by the caller's ``fields`` in order.
  Entries whose peak is not a finite number are left out.
- :meth:`MarkFile.save` writes the marks whole (a temporary file in the same directory, renamed
  over the old one, so a killed process leaves the old file or the new one, never half), in the
  order given, and only when they differ from what the file holds.
- It never raises into its caller: a file that cannot be read or a directory that cannot be
  written costs one warning (naming the setting to fix), and the marks live in memory only.

Measured (2-core machine, load average 3.5, three runs): 10,000 marks keyed as the processors
host keys them (PROCESSORS_ANALYTICS_MAX_MARKS' default; 1.9 MB) are written in 120-180 ms and
read in 40-56 ms, which is why the host writes them on a thread of its own; a bot's file of a
few strategies, about 0.3 ms.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

#: A mark's key: one value per field of its file (a strategy and an exchange...).
Key = tuple[str | None, ...]


def state_directory(setting: str | None) -> Path | None:
    """The directory a state-directory setting names; None (memory only) when unset or ``off``."""
    if setting is None or setting.strip().lower() in ("", "off"):
        return None
    return Path(setting).expanduser()


class MarkFile:
    """The marks of one JSON file (``path``; None: memory only, nothing is read or written)."""

    def __init__(self, path: Path | None, fields: Sequence[str], setting: str) -> None:
        self.path = path
        self.fields = tuple(fields)
        self._setting = setting
        self._warned = False
        self._writing = threading.Lock()  # a caller may save from more than one thread
        #: The marks as the file holds them (as read at start, then as last written).
        self.marks: dict[Key, float] = {}
        if path is not None and path.exists():
            try:
                self.marks = self._read(path)
            except (OSError, ValueError, KeyError, TypeError) as error:
                self.warn(f"cannot read {path}: {error}")

    def _read(self, path: Path) -> dict[Key, float]:
        marks = {}
        for entry in json.loads(path.read_text())["marks"]:
            key = tuple(entry.get(name) for name in self.fields)
            if not all(value is None or isinstance(value, str) for value in key):
                raise TypeError(f"a mark's {'/'.join(self.fields)} must be strings: {entry}")
            peak = float(entry["peak"])
            if math.isfinite(peak):
                marks[key] = peak
        return marks

    def save(self, marks: Mapping[Key, float]) -> None:
        """Make the file hold ``marks`` (their finite values, in their order)."""
        kept = {key: peak for key, peak in marks.items() if math.isfinite(peak)}
        with self._writing:
            if self.path is None or kept == self.marks:
                return
            document = {
                "marks": [
                    {**dict(zip(self.fields, key, strict=True)), "peak": peak}
                    for key, peak in kept.items()
                ]
            }
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(
                    "w", dir=self.path.parent, prefix=".high-water-marks.", delete=False
                ) as file:
                    json.dump(document, file)
                os.replace(file.name, self.path)
            except OSError as error:
                self.warn(f"cannot write {self.path}: {error}")
                return
            self.marks = kept

    def warn(self, problem: str) -> None:
        """Log ``problem`` (the first one only): the marks are kept in memory only."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "tbmon: %s; the portfolio's high-water marks are kept in memory only, so a "
                "restart measures the current drawdown afresh (set %s to a writable directory)",
                problem,
                self._setting,
            )
