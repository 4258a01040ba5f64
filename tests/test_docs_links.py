"""What the docs point at exists: README.md, docs/*.md and the examples' READMEs, checked offline.

- every relative markdown link ``[text](path#anchor)`` names a file or folder of the checkout, and
  its anchor a heading of the linked page (GitHub's slugs);
- every repository path the text names (``stack/src/tbmon/stack/...``, ``tests/test_x.py``, in
  prose, code spans and code blocks alike) exists, a glob matching at least one file; only the
  files a reader is told to create are exempt (:data:`CREATED_BY_THE_READER`);
- every module a code span names (``tbmon.standins.exchange``, ``tbmon.health.probes.ProbeLayer``)
  is a module of one of the source roots, or a name its source defines;
- every ``make TARGET`` in code is a target of the Makefile.

A folder that moves without its docs fails here, naming the page, the line and the path. Reads
files only (no imports of the code, no network): about 0.1 s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support import CHECKOUT

DOCS = sorted(
    [
        CHECKOUT / "README.md",
        *(CHECKOUT / "docs").glob("*.md"),
        *(CHECKOUT / "examples").glob("*/README.md"),
    ]
)
#: The checkout's top-level folders: a path the docs name starts with one of these.
FOLDERS = (
    "alert_bridge",
    "bench",
    "core",
    "docs",
    "examples",
    "health",
    "instrumentation",
    "otel-collector",
    "processors",
    "stack",
    "tests",
)
#: Files the docs tell the reader to create (copied from an example, git-ignored).
CREATED_BY_THE_READER = {
    "stack/src/tbmon/stack/.env",
    "stack/src/tbmon/stack/prometheus/rules/custom.yml",
}
SOURCE_ROOTS = sorted(CHECKOUT.glob("*/src"))

LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(map(re.escape, FOLDERS))})/[\w./*-]*)")
CODE_SPAN = re.compile(r"`([^`]+)`")
MODULE = re.compile(r"tbmon(?:\.[A-Za-z_]\w*)+")
MAKE = re.compile(r"(?:^|&&|;)\s*make ([a-z][\w-]*)")
TARGET = re.compile(r"^([a-z][\w-]*):", re.MULTILINE)


def _name(page: Path) -> str:
    return str(page.relative_to(CHECKOUT)) if page.is_relative_to(CHECKOUT) else page.name


def _spans(page: Path) -> list[str]:
    """The code spans of the page's prose (a span may wrap across lines)."""
    prose = "\n".join(line for _, line, fenced in _lines(page) if not fenced)
    return CODE_SPAN.findall(prose)


def _lines(page: Path) -> list[tuple[int, str, bool]]:
    """(line number, text, inside a fenced code block) of each line."""
    fenced = False
    lines = []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        lines.append((number, line, fenced))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line, fenced in _lines(page):
        heading = re.match(r"#{1,6}\s+(.+)", line)
        if heading and not fenced:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for number, line, fenced in _lines(page):
        if fenced:
            continue
        for match in LINK.finditer(line):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = Path(os.path.normpath(page.parent / path)) if path else page
            where = f"{_name(page)}:{number}: {target}"
            if not linked.exists():
                problems.append(f"{where}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where}: no heading #{anchor} in {linked.name}")
    return problems


def _exists(path: str) -> bool:
    if "*" in path:
        return any(CHECKOUT.glob(path))
    return path.rstrip("/") in CREATED_BY_THE_READER or (CHECKOUT / path).exists()


def missing_paths(page: Path) -> list[str]:
    problems = []
    for number, line, _ in _lines(page):
        text = LINK.sub("[]()", line)  # a link's target is broken_links' to report
        for match in PATH.finditer(text):
            path = match.group(1).rstrip(".")
            if not _exists(path):
                problems.append(f"{_name(page)}:{number}: {path}")
    return problems


def _defines(module: list[str], name: str) -> bool:
    for root in SOURCE_ROOTS:
        folder = root.joinpath(*module)
        for source in (folder.with_suffix(".py"), folder / "__init__.py"):
            if source.is_file() and re.search(rf"\b{re.escape(name)}\b", source.read_text()):
                return True
    return False


def _is_module(parts: list[str]) -> bool:
    for root in SOURCE_ROOTS:
        folder = root.joinpath(*parts)
        if folder.with_suffix(".py").is_file() or folder.is_dir():
            return True
    return False


def unknown_modules(page: Path) -> list[str]:
    """Module names in code spans (a span may wrap across lines) that no source root holds.

    ``tbmon.X...`` counts as a module name when ``tbmon.X`` is a package; the last part may be a
    name the module defines (a class, a function). Attribute names (``tbmon.strategy``) are not
    packages and are left alone."""
    problems = []
    for span in _spans(page):
        name = re.sub(r"\s+", "", span)
        if not MODULE.fullmatch(name):
            continue
        parts = name.split(".")
        if not _is_module(parts[:2]) or _is_module(parts):
            continue
        if not (_is_module(parts[:-1]) and _defines(parts[:-1], parts[-1])):
            problems.append(f"{_name(page)}: {name}")
    return problems


def unknown_make_targets(page: Path) -> list[str]:
    targets = set(TARGET.findall((CHECKOUT / "Makefile").read_text()))
    code = [line for _, line, fenced in _lines(page) if fenced]
    code += _spans(page)
    return [
        f"{_name(page)}: make {target}"
        for text in code
        for target in MAKE.findall(text)
        if target not in targets
    ]


@pytest.mark.parametrize("page", DOCS, ids=lambda page: str(page.relative_to(CHECKOUT)))
def test_what_the_docs_point_at_exists(page: Path) -> None:
    problems = (
        broken_links(page)
        + missing_paths(page)
        + unknown_modules(page)
        + unknown_make_targets(page)
    )
    assert not problems, "\n".join(problems)


def test_the_checks_find_what_is_broken(tmp_path: Path) -> None:
    """Each check fails on a page with the mistake it looks for, so a pass above means something."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "[gone](no-such.md), [bad anchor](#nowhere), [good](#a-page)\n"
        "`otel-collector/config.yaml` (moved), `stack/src/tbmon/stack/prometheus/rules/*.yml`\n"
        "`tbmon.instrumentation.exchange_test_server`, `tbmon.standins.exchange`\n"
        "`make up`, `make install`\n"
    )
    assert broken_links(page) == [
        "page.md:3: no-such.md: no such file",
        "page.md:3: #nowhere: no heading #nowhere in page.md",
    ]
    assert missing_paths(page) == ["page.md:4: otel-collector/config.yaml"]
    assert unknown_modules(page) == ["page.md: tbmon.instrumentation.exchange_test_server"]
    assert unknown_make_targets(page) == ["page.md: make up"]
