"""The documentation's links lead somewhere, and the README stays a page.

Every relative link in the project's Markdown files names a file that exists and,
with a ``#fragment``, a heading of that file (as GitHub makes anchors), so moving a
section from one page to another cannot leave a dead link behind.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = sorted(
    path for pattern in ("*.md", "plugins/**/*.md", "examples/**/*.md", "tests/**/*.md")
    for path in ROOT.glob(pattern)
)
FENCE = re.compile(r"```.*?```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors: a heading lower-cased, punctuation but '-' and '_' dropped, spaces as '-'."""
    headings = re.findall(r"^#+ (.*)$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    dead = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        destination = (page.parent / path) if path else page
        if not destination.exists():
            dead.append(target)
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            dead.append(target)
    assert dead == []


def test_the_readme_is_a_page_and_the_manual_has_the_rest() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 400
    assert "](MANUAL.md)" in readme


def test_every_section_of_the_readme_is_in_its_contents() -> None:
    readme = (ROOT / "README.md").read_text()
    contents = readme.split("## Contents", 1)[1].split("\n## ", 1)[0]
    sections = re.findall(r"^## (.*)$", FENCE.sub("", readme), re.M)
    listed = set(re.findall(r"\(#([^)]+)\)", contents))
    missing = [title for title in sections if title != "Contents"
               and re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") not in listed]
    assert missing == []


def test_the_manual_s_layout_table_names_every_module_as_its_docstring_does() -> None:
    manual = (ROOT / "MANUAL.md").read_text()
    missing = []
    for folder in ("watchdog", "plugins"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name == "__main__.py":
                continue
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            summary = doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
            if f"| `{folder}/{path.name}` | {summary} |" not in manual:
                missing.append(path.name)
    assert missing == []
