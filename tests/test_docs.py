"""The documentation holds together: README and model card stay short, README keeps the
developer commands CI relies on, every relative link (and its #anchor) in the Markdown files
resolves, images stay small, metadata.txt points nowhere it cannot reach."""

from __future__ import annotations

import configparser
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CARD = ROOT / "resources" / "MODEL_CARD.md"
DOCS = sorted([README, CARD, *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_readme_is_a_front_page() -> None:
    assert README.stat().st_size <= 12 * 1024


def test_model_card_is_a_card() -> None:
    assert CARD.stat().st_size <= 12 * 1024


def test_readme_keeps_the_two_make_commands() -> None:
    # .ci/run and CI run README's test command; make demo is the analyst's first try.
    lines = [line.split("#")[0].strip() for line in README.read_text(encoding="utf-8").splitlines()]
    assert "make test" in lines and "make demo" in lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    problems = []
    for line in _prose_lines(doc.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            if not dest.exists():
                problems.append(f"{target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not problems, "\n".join(problems)


def test_doc_images_are_small() -> None:
    images = sorted((ROOT / "docs" / "img").glob("*.png"))
    assert images
    for img in images:
        assert img.stat().st_size < 300 * 1024, img.name


def test_metadata_points_nowhere_it_cannot_reach() -> None:
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert "example.invalid" not in text
    meta = configparser.ConfigParser()
    meta.read_string(text)
    general = meta["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author"):
        assert general.get(key, "").strip(), key
    assert general["changelog"].strip()
