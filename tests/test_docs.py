"""The README stays short, and every relative link of the README and the docs site resolves.

`mkdocs build --strict` (run by CI) checks the site in depth, anchors and API references
included; these fast checks need no MkDocs and also cover the README, which the site does not
build.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_BYTES = 15_000

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def link_targets(markdown: str) -> list[str]:
    """Link and image targets of a Markdown text, outside code blocks and inline code."""
    targets: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        reference = _REFERENCE_LINK.match(line)
        if reference:
            targets.append(reference[1])
            continue
        targets.extend(_INLINE_LINK.findall(_INLINE_CODE.sub("", line)))
    return targets


def broken_links(page: Path) -> list[str]:
    """Relative link targets of `page` (fragment and query removed) that are not files."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if _EXTERNAL.match(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if path and not (page.parent / path).resolve().is_file():
            broken.append(target)
    return broken


def nav_paths(node: object) -> list[str]:
    """Page paths named in an mkdocs.yml `nav` (nested lists and single-key mappings)."""
    if isinstance(node, str):
        return [] if _EXTERNAL.match(node) else [node]
    if isinstance(node, list):
        return [path for item in node for path in nav_paths(item)]
    if isinstance(node, dict):
        return [path for value in node.values() for path in nav_paths(value)]
    return []


def test_readme_is_at_most_15_kb() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize(
    "page",
    [README, *sorted(DOCS.rglob("*.md"))],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_relative_links_point_to_files(page: Path) -> None:
    assert broken_links(page) == []


def test_nav_pages_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    missing = [path for path in nav_paths(config["nav"]) if not (DOCS / path).is_file()]
    assert missing == []


def test_link_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# there\n", encoding="utf-8")
    (tmp_path / "img.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#part) ![ok](img.png) [web](https://example.org) [top](#top)\n"
        "[gone](missing.md) ![gone](pictures/none.png) `[code](not-a-link.md)`\n"
        "[ref]: also-missing.md\n"
        "```\n[in a fence](fenced.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md", "pictures/none.png", "also-missing.md"]


def _rst_hook():
    """docs/hooks/rst_docstrings.py (needs Griffe, from the `docs` extra)."""
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        "rst_docstrings", DOCS / "hooks" / "rst_docstrings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_math_roles_and_tables_become_markdown() -> None:
    convert = _rst_hook().rst_to_markdown
    text = (
        "Step :math:`v_t`, see :func:`lif_step` and :class:`~a.b.C`:\n"
        "\n"
        ".. math::\n"
        "    v &= a \\\\\n"
        "    z &= b\n"
        "\n"
        "=====  ============\n"
        "name   value\n"
        "=====  ============\n"
        "abs    :math:`|x|`\n"
        "=====  ============\n"
    )
    markdown = convert(text, module="m", scope="m")
    assert "Step $v_t$" in markdown
    assert '<autoref identifier="m.lif_step" optional><code>lif_step()</code></autoref>' in markdown
    assert '<autoref identifier="a.b.C" optional><code>C</code></autoref>' in markdown
    assert "$$\n\\begin{aligned}\nv &= a \\\\\nz &= b\n\\end{aligned}\n$$" in markdown
    assert "| name | value |\n|---|---|\n| abs | $\\vert x\\vert$ |" in markdown


def test_grouped_args_become_one_entry_per_name() -> None:
    convert = _rst_hook().rst_to_markdown
    text = "Args:\n    low, high: the range,\n        inclusive.\n    seed: a seed.\n"
    assert convert(text) == (
        "Args:\n    low: the range, inclusive.\n    high: the range, inclusive.\n    seed: a seed."
    )
