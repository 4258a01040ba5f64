"""Text from alerts made honest: no character in it can hide or reorder what a reader sees.

Every label and annotation value reaches a Telegram message through :func:`undisguised` (the
formatter's ``clean``). It removes

- control characters (Unicode category Cc), except newline and tab: terminal escapes, NUL, bell;
- format characters (Cf), which are invisible and change how the text around them shows: the
  bidirectional overrides, embeddings and isolates (U+202A-202E, U+2066-2069: the "Trojan
  Source" trick: ``invoice`` U+202E ``gnp.exe`` shows as ``invoiceexe.png``), the direction marks
  (U+200E, U+200F, U+061C), zero-width spaces and joiners that split a word invisibly (U+200B,
  U+2060, U+FEFF), soft hyphens, invisible operators, interlinear annotations, and the tag
  characters (U+E0000-E007F) that can carry hidden text;

but keeps the zero-width joiner and non-joiner (U+200D, U+200C), which emoji sequences (👩‍💻) and
scripts such as Persian need and which cannot reorder or hide anything.

A character's verdict is looked up in Unicode's database once and then kept, so cleaning costs
one ``str.translate`` per value.
"""

from __future__ import annotations

import unicodedata

#: Removed: invisible characters that control how text shows.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf"})
#: Kept although their category is removed: line breaks and tabs, and the joiners.
_KEPT = frozenset("\n\t\u200c\u200d")


class _Verdicts(dict[int, int | None]):
    """``str.translate``'s table: a code point to itself (kept) or to None (removed), looked up
    on first sight."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        kept = char in _KEPT or unicodedata.category(char) not in _REMOVED_CATEGORIES
        verdict = self[code] = code if kept else None
        return verdict


_VERDICTS = _Verdicts()


def undisguised(value: str) -> str:
    """``value`` without control or format characters (newline, tab and the joiners stay)."""
    return value.translate(_VERDICTS)
