"""Griffe extension: render the reST parts of spikeexp's docstrings on the documentation site.

The docstrings use Google-style sections with reST inside: math
(``.. math::`` blocks and ``:math:`...``` roles) and cross-reference roles (``:class:``,
``:func:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``). mkdocstrings renders docstrings as
Markdown, so before rendering this extension rewrites

- a ``.. math::`` block into a ``$$ ... $$`` display block (lines with ``&`` or ``\\`` inside
  ``\\begin{aligned}``; blank lines separate equations, as in Sphinx),
- ``:math:`x``` into ``$x$`` (pymdownx.arithmatex, rendered by MathJax),
- ``:class:`a.b.C``` (also ``~a.b.C``, ``Title <a.b.C>``) into an optional autorefs link: a
  link where the target is documented on the site, plain code where it is not,
- a simple table (rows framed by ``====  ====`` rules) into a Markdown table,
- a paragraph ending in ``::`` (a literal block follows) into one ending in ``:``,
- a grouped entry ``a, b: description`` of an ``Args:`` section (its names may wrap onto the
  next line) into one entry per name with the same description.

Loaded by mkdocstrings through ``extensions:`` in mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|mod|meth|attr|data|exc|obj):`([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
_TABLE_RULE = re.compile(r"^(?P<indent>[ \t]*)=+(?: +=+)+[ \t]*$")
_LITERAL_MARKER = re.compile(r"(?<![:.])::[ \t]*$")
_ARGS_SECTION = re.compile(r"^(?P<indent>[ \t]*)(?:Args|Arguments|Parameters|Attributes):[ \t]*$")
_GROUPED_ENTRY = re.compile(r"^(?P<names>[\w*]+(?:\s*,\s*[\w*]+)+)\s*:\s*(?P<text>.*)$", re.S)


def _math_block(lines: list[str], indent: str) -> list[str]:
    """Display math for the lines of one equation (Sphinx wraps multi-line math in aligned)."""
    body = "\n".join(line.strip() for line in lines).strip()
    if "&" in body or "\\\\" in body:
        body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"
    return [f"{indent}$$", *(f"{indent}{line}" for line in body.splitlines()), f"{indent}$$"]


def _convert_math_directives(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _MATH_DIRECTIVE.match(lines[index])
        if not match:
            out.append(lines[index])
            index += 1
            continue
        indent = match["indent"]
        content = [match["rest"]] if match["rest"].strip() else []
        index += 1
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= len(indent):
                break
            content.append(line)
            index += 1
        while content and not content[-1].strip():
            content.pop()
        equations: list[list[str]] = [[]]
        for line in content:
            if line.strip():
                equations[-1].append(line)
            elif equations[-1]:
                equations.append([])
        if out and out[-1].strip():
            out.append("")
        for number, equation in enumerate(eq for eq in equations if eq):
            if number:
                out.append("")
            out.extend(_math_block(equation, indent))
        out.append("")
    return "\n".join(out)


def _table_cell(text: str) -> str:
    """A table cell: pipes inside math become ``\\vert``, other pipes are escaped."""
    parts = re.split(r"(:math:`[^`]+`)", text.strip())
    return "".join(
        part.replace("|", r"\vert ") if part.startswith(":math:") else part.replace("|", r"\|")
        for part in parts
    )


def _convert_simple_tables(text: str) -> str:
    """reST simple tables (top rule, header, rule, rows, bottom rule) to Markdown tables."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        rule = _TABLE_RULE.match(lines[index])
        rules = [index]
        if rule:
            scan = index + 1
            while scan < len(lines) and len(rules) < 3 and lines[scan].strip():
                if lines[scan].rstrip() == lines[index].rstrip():
                    rules.append(scan)
                scan += 1
        if not rule or len(rules) < 3:
            out.append(lines[index])
            index += 1
            continue
        indent = rule["indent"]
        spans = [m.span() for m in re.finditer(r"=+", lines[index])]
        starts = [start for start, _ in spans]

        def cells(line: str, starts: list[int] = starts) -> list[str]:
            bounds = [*starts[1:], None]
            return [line[start:end] for start, end in zip(starts, bounds, strict=True)]

        rows: list[list[str]] = []
        for line in lines[rules[1] + 1 : rules[2]]:
            values = cells(line)
            if rows and not values[0].strip():
                rows[-1] = [
                    f"{old.rstrip()} {new.strip()}"
                    for old, new in zip(rows[-1], values, strict=True)
                ]
            else:
                rows.append(values)
        header = cells(lines[rules[0] + 1])
        if out and out[-1].strip():
            out.append("")
        out.append(indent + "| " + " | ".join(_table_cell(c) for c in header) + " |")
        out.append(indent + "|" + "---|" * len(header))
        out.extend(indent + "| " + " | ".join(_table_cell(c) for c in row) + " |" for row in rows)
        out.append("")
        index = rules[2] + 1
    return "\n".join(out)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_grouped_entries(text: str) -> str:
    """``a, b: text`` in an ``Args:`` section becomes ``a: text`` and ``b: text``."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        section = _ARGS_SECTION.match(lines[index])
        out.append(lines[index])
        index += 1
        if not section:
            continue
        base = len(section["indent"])
        while index < len(lines) and (not lines[index].strip() or _indent_of(lines[index]) > base):
            entry = [lines[index]]
            index += 1
            while (
                index < len(lines)
                and lines[index].strip()
                and (_indent_of(lines[index]) > _indent_of(entry[0]))
            ):
                entry.append(lines[index])
                index += 1
            grouped = _GROUPED_ENTRY.match(" ".join(line.strip() for line in entry))
            if not entry[0].strip() or not grouped:
                out.extend(entry)
                continue
            indent = entry[0][: _indent_of(entry[0])]
            for name in re.split(r"\s*,\s*", grouped["names"]):
                out.append(f"{indent}{name}: {grouped['text']}")
    return "\n".join(out)


def _role_link(match: re.Match[str], module: str, scope: str) -> str:
    target = match[2].strip()
    title = None
    explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", target)
    if explicit:
        title, target = explicit[1], explicit[2]
    short = target.startswith("~")
    target = target.lstrip("~.")
    if title is None:
        title = target.rsplit(".", 1)[-1] if short else target
        if match[1] in {"func", "meth"} and not title.endswith(")"):
            title += "()"
    if "." not in target and module:
        # A bare name: a member of the class for :meth:/:attr:, else of the module.
        target = f"{scope if match[1] in {'meth', 'attr'} else module}.{target}"
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'


def rst_to_markdown(text: str, module: str = "", scope: str = "") -> str:
    """Rewrite the reST parts of a docstring as Markdown.

    ``module`` and ``scope`` (dotted paths of the docstring's module and of its object) qualify
    bare names in cross-reference roles.
    """
    text = _split_grouped_entries(text)
    text = _convert_simple_tables(text)
    text = _convert_math_directives(text)
    text = "\n".join(_LITERAL_MARKER.sub(":", line) for line in text.splitlines())
    text = _MATH_ROLE.sub(lambda m: f"${m[1].strip()}$", text)
    return _ROLE.sub(lambda match: _role_link(match, module, scope or module), text)


class RstDocstrings(griffe.Extension):
    """Rewrites each docstring when Griffe creates its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and obj.docstring.value:
            module = obj.path if obj.is_module else obj.module.path
            scope = obj.path if obj.is_class else (obj.parent.path if obj.parent else module)
            obj.docstring.value = rst_to_markdown(obj.docstring.value, module, scope)
