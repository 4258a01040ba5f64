"""Telegram's HTML parse mode: escaping values into it, and parsing it the way Telegram does.

The bridge escapes every label and annotation value with :func:`escape`, and measures a message
with :func:`visible_length` (Telegram's 4096-character limit applies to the text *after* the tags
and entities are parsed). The Telegram test server validates what it receives with :func:`parse`,
which follows the Bot API's documented rules and the behaviour of Telegram's own parser (TDLib):

- only the tags b/strong, i/em, u/ins, s/strike/del, span class="tg-spoiler", tg-spoiler,
  tg-emoji, a, code, pre and blockquote exist; any other ``<`` starts an "unsupported start tag";
- ``&lt; &gt; &amp; &quot;`` and numeric entities are decoded; any other ``&`` stays literal;
- tags must nest and close; an error names the UTF-8 byte offset, as Telegram's message does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Telegram's limit on a message's text, counted after entity parsing.
MESSAGE_LIMIT = 4096

_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = frozenset(" \t\r\n\v\0")
_MAX_CODE_POINT = 0x10FFFF


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; the message reads like Telegram's own."""


@dataclass
class Parsed:
    """The plain text Telegram shows, and the tags (entities) found around it."""

    text: str
    #: (tag, start, end, url): character offsets into ``text``; url only for ``a``.
    entities: list[tuple[str, int, int, str]] = field(default_factory=list)


def escape(value: str) -> str:
    """``value`` as literal text inside Telegram HTML (also safe inside a quoted attribute)."""
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts in (an emoji outside the BMP is 2)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def visible_length(html: str) -> int:
    """How long Telegram considers this HTML message: its parsed text, in UTF-16 units."""
    return utf16_length(parse(html).text.strip())


def plain_text(html: str) -> str:
    """The text Telegram would show, without formatting (for logs and a plain-text fallback)."""
    return parse(html).text


def parse(html: str) -> Parsed:
    """Parse like Telegram; raises :class:`EntityParseError` where Telegram answers 400."""
    return _Parser(html).run()


class _Parser:
    def __init__(self, html: str) -> None:
        self.html = html
        self.i = 0
        self.out: list[str] = []
        self.length = 0  # characters in ``out``
        self.open: list[tuple[str, int, str]] = []  # tag, start in text, url
        self.entities: list[tuple[str, int, int, str]] = []
        self.surrogate = False

    def offset(self, index: int) -> int:
        return len(self.html[:index].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.length += len(text)

    def run(self) -> Parsed:
        html, size = self.html, len(self.html)
        while self.i < size:
            char = html[self.i]
            if char == "&" and (found := self.entity_at(self.i)) is not None:
                self.emit(found[0])
                self.i = found[1]
                continue
            if char != "<":
                self.emit(char)
                self.i += 1
                continue
            if self.i + 1 < size and html[self.i + 1] == "/":
                self.end_tag()
            else:
                self.start_tag()
        if self.open:
            raise EntityParseError(
                f"Can't find end tag corresponding to start tag {self.open[-1][0]}"
            )
        if self.surrogate:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, check "
                "for unmatched surrogate code units"
            )
        return Parsed("".join(self.out), sorted(self.entities, key=lambda e: (e[1], -e[2])))

    def entity_at(self, index: int) -> tuple[str, int] | None:
        """The entity starting at ``index`` decoded, and where it ends; None: a literal ``&``."""
        html, start = self.html, index + 1
        end = start
        if end < len(html) and html[end] == "#":
            end += 1
            hexadecimal = end < len(html) and html[end] in "xX"
            end += hexadecimal
            digits_start = end
            alphabet = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
            while end < len(html) and html[end] in alphabet:
                end += 1
            digits = html[digits_start:end]
            if not digits or len(html[start:end]) >= 10:
                return None
            code = int(digits, 16 if hexadecimal else 10)
            if code == 0 or code > _MAX_CODE_POINT:
                return None
            if 0xD800 <= code <= 0xDFFF:
                self.surrogate = True
            decoded = chr(code)
        else:
            while end < len(html) and html[end].isascii() and html[end].isalpha():
                end += 1
            named = _NAMED.get(html[start:end])
            if named is None:
                return None
            decoded = named
        return decoded, end + 1 if end < len(html) and html[end] == ";" else end

    def start_tag(self) -> None:
        html, size = self.html, len(self.html)
        begin = self.i
        j = begin + 1
        while j < size and html[j] not in _SPACE and html[j] != ">":
            j += 1
        if j >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {self.offset(begin)}")
        name = html[begin + 1 : j].lower()
        if name not in _TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {self.offset(begin)}'
            )
        attributes: dict[str, str] = {}
        while True:
            while j < size and html[j] in _SPACE:
                j += 1
            if j >= size:
                raise EntityParseError(f"Unclosed start tag at byte offset {self.offset(begin)}")
            if html[j] == ">":
                break
            j = self.attribute(name, begin, j, attributes)
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.offset(begin)}'
            )
        self.open.append((name, self.length, attributes.get("href", "")))
        self.i = j + 1

    def attribute(self, tag: str, begin: int, j: int, attributes: dict[str, str]) -> int:
        html, size = self.html, len(self.html)
        name_start = j
        while j < size and html[j] not in _SPACE and html[j] != "=":
            j += 1
        name = html[name_start:j]
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {self.offset(begin)}'
            )
        while j < size and html[j] in _SPACE:
            j += 1
        if j >= size or html[j] != "=":
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte '
                f"offset {self.offset(begin)}"
            )
        j += 1
        while j < size and html[j] in _SPACE:
            j += 1
        if j >= size:
            raise EntityParseError(
                f'Unclosed start tag "{tag}" at byte offset {self.offset(begin)}'
            )
        if html[j] in "'\"":
            attributes[name], j = self.quoted(begin, j)
            return j
        token_start = j
        while j < size and ((html[j].isascii() and html[j].isalnum()) or html[j] in ".-"):
            j += 1
        if j >= size or (html[j] not in _SPACE and html[j] != ">"):
            raise EntityParseError(
                f"Unexpected end of name token at byte offset {self.offset(token_start)}"
            )
        attributes[name] = html[token_start:j].lower()
        return j

    def quoted(self, begin: int, j: int) -> tuple[str, int]:
        """A quoted attribute value starting at ``j`` (entities decoded), and where it ends."""
        html, size = self.html, len(self.html)
        quote = html[j]
        j += 1
        value: list[str] = []
        while j < size and html[j] != quote:
            if html[j] == "&" and (found := self.entity_at(j)) is not None:
                value.append(found[0])
                j = found[1]
                continue
            value.append(html[j])
            j += 1
        if j >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {self.offset(begin)}")
        return "".join(value), j + 1

    def end_tag(self) -> None:
        html, size = self.html, len(self.html)
        begin = self.i
        if not self.open:
            raise EntityParseError(f"Unexpected end tag at byte offset {self.offset(begin)}")
        j = begin + 2
        while j < size and html[j] not in _SPACE and html[j] != ">":
            j += 1
        name = html[begin + 2 : j].lower()
        while j < size and html[j] in _SPACE:
            j += 1
        if j >= size or html[j] != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {self.offset(begin)}")
        expected, start, url = self.open[-1]
        if name and name != expected:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {self.offset(begin)}, expected "</{expected}>", '
                f'found "</{name}>"'
            )
        self.open.pop()
        if self.length > start:
            self.entities.append((expected, start, self.length, url))
        self.i = j + 1
