"""MkDocs hook: serve MathJax from the site itself (no CDN), copied from an installed package.

The `docs` extra installs `django-static-mathjax`, a plain copy of MathJax 3 (the package has no
dependencies; Django is not needed). After each build this hook copies the `tex-mml-chtml`
component with the fonts and TeX extensions it loads into `<site>/javascripts/mathjax/`, which
mkdocs.yml loads after `javascripts/mathjax-config.js`.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

COMPONENT = "tex-mml-chtml.js"
TARGET = Path("javascripts") / "mathjax"


def mathjax_source() -> Path:
    """The `es5` folder of the installed MathJax copy."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        raise PluginError(
            "MathJax is not installed; install the docs extra: pip install -e '.[docs]'"
        )
    source = Path(spec.origin).parent / "static" / "mathjax" / "es5"
    if not (source / COMPONENT).is_file():
        raise PluginError(f"MathJax found at {source.parent} lacks es5/{COMPONENT}")
    return source


def _ignore_other_bundles(folder: str, names: list[str]) -> set[str]:
    """Keep one top-level bundle; sub-folders (fonts, extensions, menu) stay."""
    if Path(folder).name != "es5":
        return set()
    return {name for name in names if name.endswith(".js") and name != COMPONENT}


def on_post_build(config: Any, **kwargs: Any) -> None:
    target = Path(config["site_dir"]) / TARGET
    shutil.copytree(mathjax_source(), target, ignore=_ignore_other_bundles, dirs_exist_ok=True)
