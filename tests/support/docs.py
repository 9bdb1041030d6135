"""The README's and docs/ pages' examples, as tests read them: each fenced shell or Python
block with the marker that precedes it (`<!-- illustrative -->` or `<!-- tested: FILE::TEST -->`,
the convention docs/README.md documents), and the commands of a README section's block."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

README = REPO / "README.md"
EXAMPLE_LANGUAGES = frozenset({"bash", "sh", "console", "shell", "python"})
ILLUSTRATIVE = "<!-- illustrative -->"
TESTED = re.compile(r"<!-- tested: (?P<file>\S+\.py)::(?P<test>\w+) -->")
_FENCE = re.compile(r"^\s*```(?P<language>\S*)\s*$")


@dataclass(frozen=True)
class ShellBlock:
    """One fenced shell block: where it is, the marker line before it, and its text."""

    path: Path
    line: int  # 1-based line of the opening fence
    marker: str  # the line just before the fence, stripped ("" if none)
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documentation_pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks(path: Path) -> list[ShellBlock]:
    """Every fenced shell or Python block of the markdown file `path` (indented ones included,
    as in a list item), in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, opened, language = [], None, ""
    for number, line in enumerate(lines):
        fence = _FENCE.match(line)
        if fence is None:
            continue
        if opened is None:
            opened, language = number, fence["language"]
            continue
        if language in EXAMPLE_LANGUAGES:
            marker = lines[opened - 1].strip() if opened else ""
            indent = len(lines[opened]) - len(lines[opened].lstrip())
            body = "\n".join(text[indent:].rstrip() for text in lines[opened + 1 : number])
            blocks.append(ShellBlock(path, opened + 1, marker, body + "\n"))
        opened = None
    return blocks


def section_blocks(heading: str, path: Path = README) -> list[ShellBlock]:
    """The shell blocks under the `## heading` section of `path`, in order."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[: end if end >= 0 else None].count("\n")
    return [block for block in shell_blocks(path) if first <= block.line <= last + 1]


def section_block(heading: str, path: Path = README) -> ShellBlock:
    """The one shell block under the `## heading` section of `path`."""
    found = section_blocks(heading, path)
    assert len(found) == 1, f"{path.name} § {heading}: {len(found)} shell blocks, expected one"
    return found[0]


def commands(block: ShellBlock) -> list[str]:
    """The block's command lines, comments and blank lines dropped."""
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in block.text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
