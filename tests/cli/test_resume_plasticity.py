"""``spikeexp-train resume=<run_dir>`` continues plastic networks exactly: the weights learnt by
their rules, the adaptive thresholds, the label assignments, carried rule state (traces and
eligibility) and the step count of gradient-free runs all come back from the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeexp.callbacks.reliability import reliability_callbacks
from spikeexp.engine import experiment
from spikeexp.runtime.checkpoint import load_checkpoint_file
from tests.cli.test_resume import (
    _final_state,
    _identical,
    _resume_in_process,
    _SigtermAt,
    _train,
)

LIMITS = [
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "test=false",
    "callbacks=minimal",
]
RUNS = {
    # Gradient-free: STDP, thresholds, label assignment, Poisson generator, step counting.
    "digits_stdp": [
        "experiment=digits_stdp",
        "topology.size=30",
        "seq_length=20",
        "data.batch_size=32",
        *LIMITS,
    ],
    # Mixed: reward-modulated synapses with eligibility carried across batches, Adam elsewhere.
    "mixed_mstdp": [
        "encoder=poisson",
        "seq_length=8",
        "topology.hidden=[16]",
        "+plasticity@topology.layers.hidden1.plasticity=mstdp",
        "topology.layers.hidden1.plasticity.carry_state=true",
        "topology.layers.hidden1.plasticity.a_plus=0.05",
        "data.batch_size=32",
        *LIMITS,
    ],
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        for name, overrides in RUNS.items():
            run_dir = tmp_path_factory.mktemp(name) / "run"
            _train(patch, f"hydra.run.dir={run_dir}", *overrides)
            runs[name] = run_dir
    return runs


def test_the_runs_keep_rule_state_in_their_checkpoints(uninterrupted: dict[str, Path]) -> None:
    digits = load_checkpoint_file(uninterrupted["digits_stdp"] / "checkpoints" / "last.ckpt")
    assert digits["global_step"] == 8  # gradient-free steps are counted
    assert digits["state_dict"]["network.layers.exc.theta"].sum() > 0
    assert digits["state_dict"]["task._extra_state"]["assignments"].shape == (30,)
    mixed = load_checkpoint_file(uninterrupted["mixed_mstdp"] / "checkpoints" / "last.ckpt")
    rule_state = mixed["state_dict"]["network.layers.fc1._extra_state"]["rule_state"]
    assert rule_state["e"].shape == (32, 16, 64) and rule_state["e"].abs().sum() > 0


@pytest.mark.parametrize("name", list(RUNS))
def test_sigterm_mid_epoch_then_resume_is_exact(
    name: str,
    uninterrupted: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(
            experiment,
            "reliability_callbacks",
            lambda every: [*reliability_callbacks(every), _SigtermAt(2, "on_train_batch_start")],
        )
        with pytest.raises(SystemExit) as caught:
            _train(patch, f"hydra.run.dir={run_dir}", *RUNS[name])
    assert caught.value.code == 143
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 3
    _resume_in_process(monkeypatch, run_dir)
    weights, metrics = _final_state(run_dir)
    expected_weights, expected_metrics = _final_state(uninterrupted[name])
    assert _identical(weights, expected_weights)
    assert metrics == expected_metrics


def test_epoch_end_resume_with_more_epochs_is_exact(
    uninterrupted: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    part = tmp_path / "part"
    _train(monkeypatch, f"hydra.run.dir={part}", *RUNS["digits_stdp"], "trainer.max_epochs=1")
    _resume_in_process(monkeypatch, part, "trainer.max_epochs=2")
    weights, metrics = _final_state(part)
    expected_weights, expected_metrics = _final_state(uninterrupted["digits_stdp"])
    assert _identical(weights, expected_weights)
    assert metrics == expected_metrics
