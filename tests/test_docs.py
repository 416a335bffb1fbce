"""The README and the pages in docs/: the README stays a learner's and an instructor's page (at most 12,000 bytes, no
generated tables), and every relative link in them reaches a file that exists, and a heading there when it names one.
"""

from __future__ import annotations

from pathlib import Path
import pytest
import re

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
README_LIMIT = 12_000  # bytes (issue 31): the long material lives in docs/

LINK = re.compile(r"\]\(([^()\s]+)\)")  # [text](target) and the outer link of a badge [![alt](image)](target)
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (where `# x` is code, not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, without Markdown marks and punctuation other than
    hyphens and underscores, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of ``path``, numbered as GitHub numbers repeated headings (``x``, ``x-1``, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def relative_links(path: Path) -> list[str]:
    return [target for line in prose_lines(path.read_text()) for target in LINK.findall(line)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # not http:, https:, mailto: ...


def test_the_readme_is_at_most_12000_bytes():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, (f"README.md is {size:,} bytes, over {README_LIMIT:,}: move reference material to "
                                  "docs/reference.md, measured tables to docs/RESULTS.md")


def test_the_pages_exist_and_the_readme_links_each_of_them():
    readme = README.read_text()
    for page in ("docs/RESULTS.md", "docs/reference.md", "docs/instructors.md", "docs/studies/gpu-preset.md"):
        assert (ROOT / page).is_file(), page
        assert f"]({page})" in readme, f"the README does not link {page}"


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file does not exist, or whose Markdown file has no such heading."""
    broken = []
    for target in relative_links(page):
        where, _, anchor = target.partition("#")
        file = (page.parent / where).resolve() if where else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_an_existing_file_and_heading(page):
    assert relative_links(page) or page.name != "README.md"
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Course\n\n## For instructors\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("# A page's title: with `code`\n\n```\n# not a heading\n```\n\n## Again\n## Again\n\n"
                    "[ok](#a-pages-title-with-code) [twice](#again-1) [up](../README.md#for-instructors) "
                    "[gone](nowhere.md) [no heading](../README.md#for-learners) [code](#not-a-heading) "
                    "[site](https://example.org)\n")
    assert anchors(page) == {"a-pages-title-with-code", "again", "again-1"}
    assert [b.split(":")[0] for b in broken_links(page)] == ["nowhere.md", "../README.md#for-learners",
                                                             "#not-a-heading"]


def test_the_readme_holds_no_generated_tables_and_the_results_page_holds_them_all():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables_for_docs", ROOT / "tools" / "readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    assert "GENERATED" not in README.read_text()
    assert tables.RESULTS_PAGE == ROOT / "docs" / "RESULTS.md"
    assert tables.marker_problems(tables.RESULTS_PAGE.read_text()) == []


def test_the_readme_opens_every_notebook_on_colab_and_gives_the_two_commands():
    readme = README.read_text()
    notebooks = sorted(p.name for p in (ROOT / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) == 6
    for name in notebooks:
        badge = rf"\(https://colab\.research\.google\.com/github/[^)]+/notebooks/student/{re.escape(name)}\)"
        assert re.search(badge, readme), f"no Colab badge for {name}"
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["make course", "make test"]


def test_the_docs_hold_no_link_that_publishing_would_have_to_rewrite():
    """tools/sync_notebooks.py --repo/--ref rewrites the README's Colab links; the pages in docs/ link relatively."""
    for page in PAGES[1:]:
        text = page.read_text()
        assert "colab.research.google.com/github/" not in text and "github.com/gapcourse/" not in text, page


def test_the_reference_says_what_the_cache_hash_does_not_protect_against():
    reference = " ".join((ROOT / "docs" / "reference.md").read_text().split())
    assert "not against deliberate edits" in reference
