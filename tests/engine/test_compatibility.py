"""Every composition of task x topology x decoder x encoder that the shipped configs allow either
trains a few steps or is refused by the validation pass, before any data are loaded, with one line
naming the groups involved and working alternatives (each alternative is checked to validate).

The compositions are the product of the options in ``conf/task``, ``conf/topology``,
``conf/decoder`` and ``conf/encoder`` (a new option joins the matrix by itself). Each group is
composed with Hydra once per option, at tiny sizes, and the four are put together as Hydra would
(the topology, decoder and encoder options only fill their own section; the slow test composes
every composition with Hydra and runs it through ``spikeexp-train``'s own ``train``). Which
compositions are refused is stated below by hand, from the data each task gives.

The default-suite matrix (576 compositions) takes about 35 s of CPU time in one process (80 s
wall on a shared 2-core machine).
"""

from __future__ import annotations

import atexit
import math
import re
import shutil
import tempfile
from functools import cache
from importlib.resources import files
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

from spikeexp.cli.train import train
from spikeexp.engine import ConfigError, build_experiment, build_trainer, plain, validate_config
from spikeexp.runtime.targets import instantiate, locate
from spikeexp.tasks.base import TaskNeeds
from tests.helpers import compose_like_cli
from tests.tasks.conftest import fake_dataset

GROUPS = ("task", "topology", "decoder", "encoder")
COMMON = [
    "seq_length=4",
    "trainer.max_epochs=1",
    "logger=none",
    "~callbacks",
    "test=false",
]
IDX_ROOT, SHD_ROOT, NMNIST_ROOT = "{idx}", "{shd}", "{nmnist}"
"""Placeholders for the folders of small data files (:func:`data_root`)."""
TINY: dict[str, dict[str, list[str]]] = {
    "task": {
        "digits": ["data.batch_size=8"],
        "mnist": ["data.batch_size=8", f"data.root={IDX_ROOT}"],
        "fashion_mnist": ["data.batch_size=8", f"data.root={IDX_ROOT}"],
        "memory": [
            "data.batch_size=4",
            "data.periods=4",
            "data.period_steps=3",
            "data.store_range=[0,1]",
            "data.recall_range=[2,3]",
            "data.train_batches=2",
            "data.val_batches=1",
            "data.test_batches=1",
            "data.long_test_batches=0",
        ],
        "sequential_digits": ["data.batch_size=8", "data.order=rows"],
        "smnist": [
            "data.batch_size=8",
            f"data.root={IDX_ROOT}",
            "data.order=rows",
            "data.thresholds=2",
        ],
        "shd": ["data.batch_size=4", f"data.root={SHD_ROOT}", "data.duration=0.01"],
        "nmnist": ["data.batch_size=4", f"data.root={NMNIST_ROOT}", "data.duration=0.01"],
    },
    "topology": {
        "mlp": ["topology.hidden=[8]"],
        "recurrent": ["topology.hidden=[8]"],
        "conv": ["topology.channels=[2]", "topology.hidden=[8]"],
        "competitive": ["~topology.hidden", "topology.size=8"],
    },
    "encoder": {"population": ["encoder.size=2"]},
}
"""Overrides keeping each option small (a new task needs its entry: see the test below)."""

# What each task gives, stated by hand: the matrix test checks the refusals against it.
SEQUENCE_TASKS = {"memory", "sequential_digits", "smnist", "shd", "nmnist"}
"""Tasks whose samples are sequences already (they need encoder=none)."""
VOLTAGE_READING_TASKS = {"memory"}
"""Tasks that read their LI readout themselves (no spiking readout)."""
FLAT_STEP_TASKS = {"memory", "sequential_digits", "smnist", "shd"}
"""Sequence tasks whose steps are vectors (no image for a conv topology)."""


def options(group: str) -> list[str]:
    folder = files("spikeexp.conf") / group
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


MATRIX = list(product(*(options(group) for group in GROUPS)))


def expected_refusal(task: str, topology: str, decoder: str, encoder: str) -> str | None:
    """The start of the refusal of a composition (None: it trains)."""
    if task in SEQUENCE_TASKS and encoder != "none":
        return f"task={task} provides sequences of"
    if task not in SEQUENCE_TASKS and encoder == "none":
        return f"task={task} gives static samples of shape"
    rank_fits = encoder != "population" and task not in FLAT_STEP_TASKS
    if topology == "conv" and not rank_fits:
        return "topology=conv needs input [channels, height, width] per time step"
    if topology == "competitive":  # every task option has a loss and reads fc_out + readout
        return "topology=competitive has no readout layer"
    if task in VOLTAGE_READING_TASKS and decoder == "spike_count":
        return f"task={task} reads the voltage of its readout layer itself"
    return None


@cache
def data_root(kind: str) -> Path:
    """Small data files in the published layouts, once per test process: MNIST IDX files (40 +
    10 random images), SHD HDF5 files, N-MNIST binary files."""
    root = Path(tempfile.mkdtemp(prefix=f"spikeexp-{kind}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    if kind == "idx":
        fake_dataset(root, train=40, test=10)
    else:
        from tests.tasks.test_events import write_nmnist, write_shd

        {"shd": write_shd, "nmnist": write_nmnist}[kind](root)
    return root


def tiny(group: str, option: str) -> list[str]:
    """The overrides of :data:`TINY` for ``group=option``, data folders filled in."""
    overrides = TINY.get(group, {}).get(option, [])
    kinds = ("idx", "shd", "nmnist")
    return [o.format(**{k: data_root(k) for k in kinds if f"{{{k}}}" in o}) for o in overrides]


@cache
def _group(group: str, option: str) -> Any:
    """The resolved section of ``group=option`` at tiny sizes (the whole config for a task)."""
    overrides = ["paths.output_dir=unused", *COMMON, f"{group}={option}", *tiny(group, option)]
    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        config = plain(compose("train", overrides=overrides))
    return config if group == "task" else config[group]


def composition(task: str, topology: str, decoder: str, encoder: str) -> dict[str, Any]:
    """The plain config of a composition: the task's, with the three other sections swapped."""
    config = {key: value for key, value in _group("task", task).items()}
    for group, option in (("topology", topology), ("decoder", decoder), ("encoder", encoder)):
        config[group] = _group(group, option)
    return config


ALTERNATIVE = re.compile(r"(\w+)=(\w+)(?: \(or ([\w, ]+)\))?")


def alternatives(message: str) -> list[dict[str, str]]:
    """The alternatives a refusal proposes after ``; use ``, each as the group options to set:
    ``a=x (or y) or b=z`` is three alternatives of one change, ``a=x, b=y and c=z`` one of three
    changes."""
    head, _, advice = message.rpartition("; use ")
    assert head, message
    found = ALTERNATIVE.findall(advice)
    if " and " in advice:
        return [{group: option for group, option, _ in found}]
    return [
        {group: option}
        for group, first, others in found
        for option in [first, *(others.split(", ") if others else [])]
    ]


def _fit_a_few_steps(config: dict[str, Any], choices: dict[str, str], root: Path) -> None:
    spec = validate_config(config, choices=choices)
    experiment = build_experiment(spec)
    before = [p.detach().clone() for p in experiment.module.parameters()]
    trainer = build_trainer(
        spec,
        max_steps=2,
        limit_train_batches=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(experiment.module, datamodule=experiment.datamodule)
    assert trainer.global_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    after = list(experiment.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize(GROUPS, MATRIX, ids=["-".join(c) for c in MATRIX])
def test_every_composition_trains_or_is_refused_in_one_line(
    task: str, topology: str, decoder: str, encoder: str, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    choices = dict(zip(GROUPS, (task, topology, decoder, encoder), strict=True))
    config = composition(task, topology, decoder, encoder)
    refusal = expected_refusal(task, topology, decoder, encoder)
    if refusal is None:
        _fit_a_few_steps(config, choices, tmp_path)
        return
    with pytest.raises(ConfigError) as caught:
        validate_config(config, choices=choices)
    message = str(caught.value)
    assert message.startswith(refusal) and "\n" not in message, message
    named = [
        f"{group}={option}" for group, option in choices.items() if f"{group}={option}" in message
    ]
    assert len(named) >= 2, message
    for changes in alternatives(message):
        assert all(option in options(group) for group, option in changes.items()), message
        changed = {group: _group(group, option) for group, option in changes.items()}
        validate_config({**config, **changed}, choices={**choices, **changes})


def test_the_matrix_covers_every_option_and_both_outcomes() -> None:
    assert {task for task, *_ in MATRIX} <= set(TINY["task"]), "a new task needs a TINY entry"
    outcomes = [expected_refusal(*case) for case in MATRIX]
    assert any(o is None for o in outcomes) and any(o is not None for o in outcomes)
    for task in options("task"):
        assert any(o is None for case, o in zip(MATRIX, outcomes, strict=True) if case[0] == task)


@pytest.mark.parametrize("task", options("task"))
def test_nothing_is_loaded_by_the_validation_pass(
    task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It constructs the data module to ask for its declaration, and nothing more."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("data loaded during validation")

    data_class = locate("data", _group("task", task)["data"]["_target_"])
    for method in ("prepare_data", "setup", "train_dataloader", "val_dataloader"):
        monkeypatch.setattr(data_class, method, fail)
    encoder = "none" if task in SEQUENCE_TASKS else "poisson"
    validate_config(composition(task, "mlp", "li_max", encoder))
    with pytest.raises(ConfigError):
        validate_config(
            composition(task, "mlp", "li_max", "spike_latency" if encoder == "none" else "none")
        )


@pytest.mark.parametrize(
    ("task", "needs"),
    [
        ("digits", TaskNeeds((1, 8, 8))),
        ("mnist", TaskNeeds((1, 28, 28))),
        ("fashion_mnist", TaskNeeds((1, 28, 28))),
        ("memory", TaskNeeds((12, 20), sequence_steps=12, decoder=False, readout="voltage")),
        ("sequential_digits", TaskNeeds((8, 8), sequence_steps=8)),
        ("smnist", TaskNeeds((28, 28 * 2 * 2), sequence_steps=28)),
        ("shd", TaskNeeds((10, 700), sequence_steps=10)),
        ("nmnist", TaskNeeds((10, 2, 34, 34), sequence_steps=10)),
    ],
)
def test_each_task_declares_its_needs(task: str, needs: TaskNeeds) -> None:
    """The declarations of the shipped tasks (memory at 4 periods of 3 steps, 4 x 5 channels)."""
    config = _group("task", task)
    task_class = locate("task", config["task"]["_target_"])
    assert task_class.needs(instantiate("data", config["data"])) == needs


@pytest.mark.slow
@pytest.mark.parametrize(GROUPS, MATRIX, ids=["-".join(c) for c in MATRIX])
def test_every_composition_through_train(
    task: str, topology: str, decoder: str, encoder: str, tmp_path: Path
) -> None:
    """The same matrix, each composition composed by Hydra and run by ``train`` (fit, validation,
    test of the best checkpoint); refusals leave nothing in the run directory."""
    torch.set_num_threads(1)
    groups = {"task": task, "topology": topology, "decoder": decoder, "encoder": encoder}
    overrides = [f"{group}={option}" for group, option in groups.items()]
    for group, option in groups.items():
        overrides += tiny(group, option)
    overrides += [
        f"paths.output_dir={tmp_path / 'run'}",
        *(o for o in COMMON if o != "test=false"),
        "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1",
    ]
    config = compose_like_cli(overrides)
    try:
        refusal = expected_refusal(task, topology, decoder, encoder)
        if refusal is None:
            metrics = train(config)
            assert math.isfinite(metrics["train/loss"]) and 0 <= metrics["test/acc"] <= 1
        else:
            with pytest.raises(ConfigError, match=re.escape(refusal)):
                train(config)
            assert not (tmp_path / "run").exists()
    finally:
        HydraConfig.instance().cfg = None
