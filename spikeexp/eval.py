"""``spikeexp-eval``: test a trained network on its task's test set.

    spikeexp-eval run_dir=outputs/2026-01-01/12-00-00            # best checkpoint of that run
    spikeexp-eval run_dir=outputs/2026-01-01/12-00-00 checkpoint=last
    spikeexp-eval ckpt_path=outputs/.../checkpoints/last.ckpt     # config stored in the file
    spikeexp-eval run_dir=... +data.num_workers=2                 # override the run's config

With ``run_dir`` the run's own ``.hydra/config.yaml`` is used; with ``ckpt_path`` alone the
resolved config saved in the checkpoint (hyper-parameter ``config``). Keys added with ``+`` are
merged on top of that config. Checkpoints are loaded with ``weights_only=True`` and checked
against the rebuilt network first. The test metrics are printed and written to ``metrics.json``
in the eval's own run directory (``outputs/eval/<date>/<time>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from spikeexp.allocator import keep_freed_memory
from spikeexp.checkpoint import check_config_targets, load_checkpoint_file, verify_checkpoint
from spikeexp.errors import guarded, run_cli
from spikeexp.experiment import build_experiment, build_test_trainer
from spikeexp.schema import ConfigError
from spikeexp.train import print_summary

EVAL_KEYS = ("task_name", "run_dir", "ckpt_path", "checkpoint")
CHECKPOINT_CHOICES = ("best", "last")


def best_checkpoint(run_dir: Path, last: Path) -> Path:
    """The best checkpoint recorded by the run's ``ModelCheckpoint`` (looked up in
    ``checkpoints/`` by file name, so moved run folders work), else ``last``."""
    states = load_checkpoint_file(last).get("callbacks", {})
    for state in states.values():
        best = state.get("best_model_path") if isinstance(state, Mapping) else None
        if best and (run_dir / "checkpoints" / Path(best).name).is_file():
            return run_dir / "checkpoints" / Path(best).name
    return last


def run_checkpoint(run_dir: Path, which: str) -> Path:
    """The checkpoint of ``run_dir`` to test: ``best`` (falls back to last) or ``last``."""
    if which not in CHECKPOINT_CHOICES:
        raise ConfigError(
            f"checkpoint must be one of {', '.join(CHECKPOINT_CHOICES)} (got {which!r})"
        )
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    if not last.is_file():
        found = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
        if not found:
            raise ConfigError(f"run_dir: no checkpoint in {folder} (did the run train an epoch?)")
        last = max(found, key=lambda path: path.stat().st_mtime)
    return best_checkpoint(run_dir, last) if which == "best" else last


def saved_config(config: DictConfig) -> tuple[DictConfig, Path]:
    """The training config and checkpoint selected by ``run_dir`` / ``ckpt_path``."""
    if config.run_dir is None and config.ckpt_path is None:
        raise ConfigError("give run_dir=<run folder> or ckpt_path=<checkpoint file>")
    if config.run_dir is not None:
        run_dir = Path(config.run_dir)
        config_file = run_dir / ".hydra" / "config.yaml"
        if not config_file.is_file():
            raise ConfigError(f"run_dir: {config_file} does not exist (not a spikeexp-train run?)")
        train_config = OmegaConf.load(config_file)
        checkpoint = (
            Path(config.ckpt_path)
            if config.ckpt_path is not None
            else run_checkpoint(run_dir, config.checkpoint)
        )
        return train_config, checkpoint
    checkpoint = Path(config.ckpt_path)
    stored = load_checkpoint_file(checkpoint).get("hyper_parameters", {}).get("config")
    if not isinstance(stored, Mapping) or not stored:
        raise ConfigError(
            f"ckpt_path: {checkpoint} holds no run config; use run_dir=<its run folder> instead"
        )
    check_config_targets(stored, f"ckpt_path: {checkpoint}")
    return OmegaConf.create(dict(stored)), checkpoint


def evaluation_config(config: DictConfig, output_dir: str) -> tuple[DictConfig, Path]:
    """The training config, with the eval's extra keys merged, writing to ``output_dir``."""
    train_config, checkpoint = saved_config(config)
    extra = {k: v for k, v in config.items() if k not in EVAL_KEYS and k != "hydra"}
    merged = OmegaConf.merge(train_config, OmegaConf.create(extra))
    with open_dict(merged):
        merged.paths = {"output_dir": output_dir}
        merged.logger = None
        merged.callbacks = None
    return merged, checkpoint


def evaluate(config: DictConfig, output_dir: str) -> dict[str, float]:
    """Rebuild the run's network, load the checkpoint and test it; return the test metrics."""
    train_config, checkpoint = evaluation_config(config, output_dir)
    if train_config.get("keep_freed_memory"):
        keep_freed_memory()
    pl.seed_everything(train_config.seed, workers=True, verbose=False)
    experiment = build_experiment(train_config)
    state = verify_checkpoint(checkpoint, experiment.module)["state_dict"]
    experiment.module.load_state_dict(state)
    trainer = build_test_trainer(train_config, enable_checkpointing=False)
    results = trainer.test(experiment.module, datamodule=experiment.datamodule)
    metrics = {name: float(value) for name, value in results[0].items()} if results else {}
    if trainer.is_global_zero:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        report = {"checkpoint": str(checkpoint), "metrics": metrics}
        (Path(output_dir) / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        print_summary(metrics, Path(output_dir), str(checkpoint))
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://spikeexp.conf", config_name="eval")
def hydra_main(config: DictConfig) -> Any:
    """The Hydra task of ``spikeexp-eval``."""
    output_dir = HydraConfig.get().runtime.output_dir
    return guarded(lambda eval_config: evaluate(eval_config, output_dir), config)


def main() -> None:
    """Console script ``spikeexp-eval`` (one-line errors, see :mod:`spikeexp.errors`)."""
    run_cli(hydra_main)


if __name__ == "__main__":
    main()
