"""The layering of the package, read from its imports: what may import what."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

import spikeexp
from spikeexp.functional.neurons import MODELS
from spikeexp.module import NEURON_MODULES

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "spikeexp"


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports (at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_only_the_cli_imports_hydra() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sources(PACKAGE)
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        and any(
            name == "hydra" or name.startswith(("hydra.", "hydra_plugins"))
            for name in imports_of(path)
        )
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("functional", ("spikeexp.module", "spikeexp.engine", "lightning", "torch.nn.Module")),
        ("module", ("spikeexp.engine", "spikeexp.callbacks", "spikeexp.cli", "lightning")),
        ("runtime", ("spikeexp.engine", "spikeexp.cli", "spikeexp.callbacks")),
        ("engine", ("spikeexp.cli",)),
        ("callbacks", ("spikeexp.cli",)),
        ("viz", ("spikeexp.cli", "spikeexp.engine")),
        ("nir", ("spikeexp.engine", "spikeexp.cli", "spikeexp.callbacks", "lightning")),
    ],
)
def test_lower_layers_do_not_import_upper_ones(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in imports_of(path) if n.startswith(forbidden))
        for path in sources(PACKAGE / package)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_sweeper_plugin_depends_on_spikeexp_not_the_reverse() -> None:
    plugin = REPO / "hydra_plugins" / "spikeexp_optuna_sweeper"
    assert any("spikeexp.runtime.optuna_study" in imports_of(path) for path in sources(plugin))
    assert not any(
        name.startswith("hydra_plugins") for path in sources(PACKAGE) for name in imports_of(path)
    )


def test_every_model_has_its_visible_classes() -> None:
    """Every model has its four classes (two for non-spiking ones), declared in source."""
    source = (PACKAGE / "module" / "neurons.py").read_text()
    for model in MODELS.values():
        suffixes = ["Cell", ""] + (["RecurrentCell", "Recurrent"] if model.spiking else [])
        for suffix in suffixes:
            name = f"{model.prefix}{suffix}"
            assert re.search(rf"^class {name}\(", source, re.MULTILINE), f"class {name} missing"
            assert NEURON_MODULES[name].model is model
            assert getattr(spikeexp, name) is NEURON_MODULES[name]


def test_every_public_class_greps_to_its_definition() -> None:
    for name in spikeexp.__all__:
        value = getattr(spikeexp, name)
        if not inspect.isclass(value):
            continue
        defining = Path(inspect.getsourcefile(value)).read_text()
        pattern = rf"^class {value.__name__}\b"
        assert value.__name__ == name, name
        assert re.search(pattern, defining, re.MULTILINE), f"{name}: no `class {name}` in source"


def test_every_model_is_exported_by_name() -> None:
    for model in MODELS.values():
        for exported in (model.parameters, model.state, model.step):
            assert getattr(spikeexp.functional, exported.__name__) is exported
            assert exported.__name__ in spikeexp.functional.__all__


def test_pyproject_lists_every_package() -> None:
    """An installed wheel holds exactly the packages pyproject lists: none may be forgotten."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL).group(1)
    listed = set(re.findall(r'^\s*"([\w.]+)",', block, re.MULTILINE))
    found = {".".join(path.parent.relative_to(REPO).parts) for path in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    for name in listed:
        importlib.import_module(name)
