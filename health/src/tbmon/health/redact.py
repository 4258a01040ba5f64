"""Keep secrets out of health answers: passwords in URLs, token-like query values, known secrets.

Every string a check reports (metadata and error messages alike) passes through a
:class:`Redactor` before anyone can read it, so a plugin that puts a connection string or an
exception message into its metadata cannot leak a password.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

MASK = "***"

# scheme://user:password@  ->  scheme://user:***@
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@\s/]+)@", re.I)
# ?api_key=abc&x=1  ->  ?api_key=***&x=1  (names containing token, key, secret, password...)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&\s#]*(?:token|key|secret|passw|pwd|signature|auth)[^=&\s#]*=)"
    r"(?P<value>[^&\s#]+)",
    re.I,
)
# password=abc in libpq key/value strings and similar.
_SECRET_PAIR = re.compile(
    r"(?P<name>\b(?:password|passwd|pwd|token|secret)\s*[=:]\s*)(?P<value>[^\s&;,]+)", re.I
)


class Redactor:
    """Masks secrets in text and in JSON-like values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        value = _USERINFO.sub(rf"\g<head>:{MASK}@", value)
        value = _SECRET_QUERY.sub(rf"\g<name>{MASK}", value)
        return _SECRET_PAIR.sub(rf"\g<name>{MASK}", value)

    def value(self, value: Any) -> Any:
        """A JSON-safe copy of ``value`` with every string masked (others become strings)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, Mapping):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item) for item in value]
        return self.text(value.isoformat() if isinstance(value, datetime | date) else str(value))
