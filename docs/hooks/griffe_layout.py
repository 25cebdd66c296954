"""Griffe extension: read spikeexp's package layout as it is installed.

``tasks/`` installs as ``spikeexp.tasks`` (``[tool.setuptools.package-dir]`` in pyproject.toml);
static analysis of ``spikeexp/`` does not see it, so it is loaded from the repository root and
attached to the ``spikeexp`` package as ``spikeexp.tasks``.

Loaded by mkdocstrings through ``extensions:`` in mkdocs.yml (run mkdocs from the repository
root).
"""

from __future__ import annotations

from typing import Any

import griffe


class PackageLayout(griffe.Extension):
    """Attaches ``tasks`` as ``spikeexp.tasks``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.path == "spikeexp" and "tasks" not in pkg.members:
            tasks = loader.load("tasks", find_stubs_package=False)
            if isinstance(tasks, griffe.Module):
                tasks.parent = pkg
                pkg.set_member("tasks", tasks)
