"""Bad input: one line on stderr naming the bad value and what is valid, exit code 1, no
traceback (unless HYDRA_FULL_ERROR=1), and no half-written run directory left behind.

Most cases call the real command's entry point in-process (``run_cli(hydra_main)`` with
``sys.argv`` set, exactly what the console script does); two run ``spikeexp-train`` as a
subprocess to check exit code and traceback behaviour end to end.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeexp.cli.runner import run_cli
from spikeexp.cli.train import hydra_main
from spikeexp.module import NEURON_MODULES, LILinear
from spikeexp.module.decode import MaxOverTime

# Keeps a case that wrongly passes validation short; not needed by the failing cases.
QUICK = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=1",
    "++trainer.limit_val_batches=1",
    "test=false",
    "logger=none",
    "callbacks=minimal",
]


@pytest.fixture
def train_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``train_cli(*overrides)`` runs ``spikeexp-train <overrides>`` in-process into
    ``tmp_path/run``; returns ``(exit code, stderr)``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(*overrides: str, quick: bool = True) -> tuple[int, str]:
        extra = QUICK if quick else []
        arguments = ["spikeexp-train", f"hydra.run.dir={tmp_path / 'run'}", *extra, *overrides]
        monkeypatch.setattr(sys, "argv", arguments)
        capsys.readouterr()
        with pytest.raises(SystemExit) as caught:
            run_cli(hydra_main, resumable=True)
        return caught.value.code, capsys.readouterr().err

    return run


def _assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


BAD_VALUES = {
    "unknown option": (["neuron=lfi"], ["neuron=lfi", "valid: iaf, izhikevich, li, li_box, lif"]),
    "unknown top-level key": (
        ["foo.bar=1"],
        ["unknown key foo.bar; valid keys of the config: task_name, dt, seq_length", "+foo.bar="],
    ),
    "unknown key in group": (
        ["neuron.tau_mem=1"],
        ["unknown key neuron.tau_mem; did you mean neuron.tau_mem_inv?", "v_th, v_reset"],
    ),
    "wrong type": (["optimizer.lr=abc"], ["optimizer.lr must be a number", "'abc'"]),
    "override syntax": (["neuron.v_th=[1,"], ["cannot parse override", "neuron.v_th=[1,"]),
    "negative time constant": (["neuron.tau_mem_inv=-1"], ["tau_mem_inv must be > 0", "-1"]),
    "zero time constant": (["neuron.tau_syn_inv=0"], ["tau_syn_inv must be > 0", "got 0"]),
    "zero dt": (["dt=0"], ["dt must be > 0", "got 0"]),
    "negative dt": (["dt=-0.001"], ["dt must be > 0", "-0.001"]),
    "unstable Euler step": (["neuron.tau_mem_inv=2000"], ["dt * tau_mem_inv must be < 1", "2000"]),
    "threshold below reset": (["neuron.v_th=-0.5"], ["v_th must be > v_reset", "v_th=-0.5"]),
    "empty sequence": (["seq_length=0"], ["seq_length must be >= 1", "got 0"]),
    "negative rate": (["encoder=poisson", "encoder.f_max=-5"], ["f_max must be > 0", "-5"]),
    "rate above 1/dt": (["encoder=poisson", "encoder.f_max=5000"], ["f_max * dt must be <= 1"]),
    "probability out of range": (["data.val_fraction=1.5"], ["val_fraction must be in (0, 1)"]),
    "zero batch size": (["data.batch_size=0"], ["batch_size must be an integer >= 1", "got 0"]),
    "unknown test checkpoint": (
        ["test_checkpoint=middle"],
        ["test_checkpoint must be one of best, last", "'middle'"],
    ),
    "label smoothing out of range": (
        ["label_smoothing=1.0"],
        ["label_smoothing must be in [0, 1)", "got 1.0"],
    ),
    "bad checkpoint interval": (
        ["last_checkpoint_every_n_steps=0"],
        ["last_checkpoint_every_n_steps must be null or >= 1 (got 0)"],
    ),
    "non-spiking neuron in a spiking layer": (["neuron=li"], ["li", "valid: iaf", "lif"]),
    "spiking readout for a voltage decoder": (
        ["decoder.readout.model=lif"],
        ["decoder.readout.model=lif", "valid: li"],
    ),
    "value reaching another key by interpolation": (
        ["trainer.max_epochs=abc"],
        [
            "error: trainer.max_epochs must be an integer (got 'abc')",
            "scheduler.scheduler.T_max = ${trainer.max_epochs}",
        ],
    ),
    "interpolation of a missing key": (
        ["trainer.max_epochs=${nope}"],
        ["error: trainer.max_epochs: Interpolation key 'nope' not found"],
    ),
    "key removed that another key interpolates": (
        ["~trainer.max_epochs"],
        ["error: scheduler.scheduler.T_max: Interpolation key 'trainer.max_epochs' not found"],
    ),
    "top-level seed": (["seed=abc"], ["error: seed must be an integer (got 'abc')"]),
    "seed out of range": (["seed=-1"], ["error: seed must be in [0, 4294967295] (got -1)"]),
    "top-level dt": (["dt=abc"], ["error: dt must be a number (got 'abc')"]),
    "top-level seq_length": (["seq_length=1.5"], ["seq_length must be an integer (got 1.5)"]),
    "dt too long for the neurons": (
        ["dt=0.5"],
        ["dt * tau_syn_inv must be < 1", "dt < 0.005", "neuron.dt = ${dt}"],
    ),
    "dt too long for the encoder's rate": (
        ["encoder=poisson", "dt=0.1", "neuron=iaf", "decoder=spike_count"],
        ["encoder: f_max * dt must be <= 1", "encoder.dt = ${dt}"],
    ),
    "sequence task with an encoder": (
        ["task=memory", "topology=mlp"],
        ["error: task=memory provides sequences of 2400 steps", "encoder=constant_current"],
    ),
    "static task without an encoder": (
        ["encoder=none"],
        ["task=digits gives static samples of shape (1, 8, 8)", "use encoder=constant_current"],
    ),
    "per-step vectors into a conv topology": (
        ["task=memory", "encoder=none", "topology=conv"],
        ["error: topology=conv needs input [channels, height, width]", "use topology=mlp"],
    ),
    "spiking readout for a task that reads voltages": (
        ["task=memory", "encoder=none", "topology=recurrent", "decoder=spike_count"],
        ["error: task=memory reads the voltage", "decoder=spike_count", "use decoder=last_voltage"],
    ),
    "encoder output does not fit the topology": (
        ["topology=conv", "encoder=population", "encoder.layout=flat"],
        ["topology=conv needs input [channels, height, width]", "encoder=population", "(512,)"],
    ),
}


@pytest.mark.parametrize("overrides, fragments", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_is_one_line_and_leaves_no_run_dir(
    train_cli, tmp_path: Path, overrides: list[str], fragments: list[str]
) -> None:
    code, stderr = train_cli(*overrides)
    _assert_one_line_error(code, stderr, *fragments)
    assert not (tmp_path / "run").exists()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """Four small, valid MNIST IDX files (40 train and 10 test images)."""
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count))
    return root


def test_truncated_idx_file(train_cli, tmp_path: Path, mnist_root: Path) -> None:
    images = mnist_root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    # With the default logger and callbacks: setup has created the TensorBoard folder by then.
    code, stderr = train_cli("task=mnist", f"data.root={mnist_root}", quick=False)
    _assert_one_line_error(code, stderr, str(images), "is truncated", "found 31260")
    assert not (tmp_path / "run").exists()


def test_wrong_magic_number(train_cli, tmp_path: Path, mnist_root: Path) -> None:
    labels = mnist_root / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x1f\x00" + labels.read_bytes()[2:])
    code, stderr = train_cli("task=mnist", f"data.root={mnist_root}")
    _assert_one_line_error(code, stderr, str(labels), "wrong magic number 0x1f000801")
    assert not (tmp_path / "run").exists()


def test_missing_dataset_says_where_it_looked(train_cli, tmp_path: Path) -> None:
    code, stderr = train_cli("task=mnist", f"data.root={tmp_path / 'nowhere'}")
    _assert_one_line_error(code, stderr, "MNIST files not found", str(tmp_path / "nowhere"))


def test_root_that_is_a_file(train_cli, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, stderr = train_cli("task=mnist", f"data.root={not_a_folder}")
    _assert_one_line_error(code, stderr, f"data.root {not_a_folder} is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_root(train_cli, mnist_root: Path) -> None:
    mnist_root.chmod(0)
    try:
        code, stderr = train_cli("task=mnist", f"data.root={mnist_root}")
    finally:
        mnist_root.chmod(0o755)
    _assert_one_line_error(code, stderr, "is not readable")


def test_existing_folder_with_other_files_is_never_removed(train_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    code, stderr = train_cli("dt=0")
    _assert_one_line_error(code, stderr, "dt must be > 0")
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_modules_state_the_expected_layout() -> None:
    with pytest.raises(ValueError, match=r"expects input \[T, batch, input_size\]"):
        NEURON_MODULES["LIFRecurrent"](input_size=4, hidden_size=3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"expects input \[T, batch, input_size\]"):
        LILinear(4, 3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"expects time-first input \[T, batch, \.\.\.\]"):
        NEURON_MODULES["LIF"]()(torch.zeros(4))
    with pytest.raises(ValueError, match=r"expects a readout sequence \[T, batch, classes\]"):
        MaxOverTime()(torch.zeros(2, 4))


def _command(arguments: list[str], cwd: Path, full_error: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.Popen(
        ["spikeexp-train", *arguments],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_command_exit_code_one_line_and_traceback_with_hydra_full_error(tmp_path: Path) -> None:
    # The real console script, three times at once (each spends most of its time importing),
    # each in its own folder: runs started in the same second share a run directory name.
    folders = [tmp_path / name for name in ("plain", "full", "memory")]
    for folder in folders:
        folder.mkdir()
    plain = _command(["neuron.v_th=-0.5"], cwd=folders[0], full_error=False)
    full = _command(["neuron=lfi"], cwd=folders[1], full_error=True)
    memory = _command(["task=memory", "topology=mlp"], cwd=folders[2], full_error=False)
    _, plain_stderr = plain.communicate(timeout=300)
    _, full_stderr = full.communicate(timeout=300)
    _, memory_stderr = memory.communicate(timeout=300)
    assert plain.returncode == 1
    assert plain_stderr.strip().splitlines() == [
        "error: neuron: v_th must be > v_reset (got v_th=-0.5, v_reset=0)"
    ]
    # A composition that cannot work is refused before the run starts.
    assert memory.returncode == 1
    assert memory_stderr.strip().splitlines() == [
        "error: task=memory provides sequences of 2400 steps of shape (20,) itself, but "
        "encoder=constant_current makes seq_length steps of static samples; use encoder=none"
    ]
    # The run directory is gone; only its empty parent outputs/<date>/ may stay.
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]
    assert full.returncode == 1
    assert "Traceback (most recent call last)" in full_stderr
    assert "MissingConfigException" in full_stderr
