"""``spikeexp-train``: compose a config with Hydra, train, test the best (or last) checkpoint.

    spikeexp-train                                   # the default digits experiment
    spikeexp-train neuron=lsnn optimizer.lr=1e-2 trainer.max_epochs=3
    spikeexp-train experiment=fashion_mnist_conv
    spikeexp-train -m neuron=lif,lsnn                # a sweep (outputs/multirun/...)
    spikeexp-train --cfg job | --info | --help       # Hydra's own views of the config

A run writes into its Hydra run directory (``outputs/<date>/<time>`` under the current folder):
``.hydra/`` (composed config and overrides), ``config_tree.log`` (the resolved config),
``checkpoints/`` (best on ``optimized_metric``, and ``last.ckpt``), ``tensorboard/`` (events) and
``metrics.json`` (final metrics). The return value of :func:`main` is the value of
``optimized_metric`` (for sweepers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from spikeexp.cli.console import print_config, print_summary
from spikeexp.cli.resume import checkpoint_to_resume
from spikeexp.cli.runner import guarded, record_job_failure, run_cli
from spikeexp.cli.sweep_summary import is_multirun
from spikeexp.engine import build_experiment, build_test_trainer, build_trainer, plain
from spikeexp.engine.origins import Origins
from spikeexp.engine.validate import validate_config
from spikeexp.runtime.allocator import keep_freed_memory
from spikeexp.runtime.context import RunContext, run_context, set_run_context
from spikeexp.runtime.processes import (
    guard_ddp_relaunch,
    limit_torch_threads,
    set_matmul_precision,
)


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def set_context_from_hydra() -> None:
    """Hand what Hydra knows about this run down to the callbacks
    (:mod:`spikeexp.runtime.context`)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    set_run_context(
        RunContext(
            multirun=is_multirun(),
            choices={group: str(option) for group, option in choices.items() if option},
        )
    )


def train(config: DictConfig) -> dict[str, float]:
    """Validate, seed, build, fit, test the best (or last) checkpoint; return the final metrics.

    The composed (unresolved) ``config`` gives the validation pass its interpolation links, and
    Hydra its group choices, so that errors name keys and groups as the user wrote them. Nothing
    is written into the run directory before the experiment is built.

    The metrics are the last logged epoch values, ``test/*`` of the weights ``test_checkpoint``
    names (the best checkpoint, or the weights at the end of training), and ``optimized_metric``
    set to the best score seen by the checkpoint callback when it monitors that metric.
    """
    set_context_from_hydra()
    spec = validate_config(
        guard_ddp_relaunch(plain(config), is_multirun()),
        origins=Origins.of_config(config),
        choices=run_context().choices,
    )
    settings = spec.config
    if settings["keep_freed_memory"]:
        keep_freed_memory()
    pl.seed_everything(settings["seed"], workers=True, verbose=False)
    limit_torch_threads(settings["torch_threads"])
    set_matmul_precision(settings["matmul_precision"])
    output_dir = Path(settings["paths"]["output_dir"])
    experiment = build_experiment(spec)
    if rank_zero_only.rank == 0:
        print_config(settings, output_dir)
    trainer = build_trainer(spec)
    trainer.fit(
        experiment.module,
        datamodule=experiment.datamodule,
        ckpt_path=checkpoint_to_resume(settings, experiment.module),
    )
    metrics = {k: _number(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    optimized = settings["optimized_metric"]
    if best and checkpoint.monitor == optimized and checkpoint.best_model_score:
        metrics[optimized] = _number(checkpoint.best_model_score)
    tester = build_test_trainer(spec, trainer) if settings["test"] else None
    if tester is not None:
        # ckpt_path None: the module as it is, i.e. the weights at the end of training
        tested = best if settings["test_checkpoint"] == "best" else ""
        results = tester.test(
            experiment.module, datamodule=experiment.datamodule, ckpt_path=tested or None
        )
        metrics.update({k: float(v) for k, v in results[0].items()} if results else {})
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print_summary(metrics, output_dir, best)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://spikeexp.conf", config_name="train")
def hydra_main(config: DictConfig) -> float | None:
    """The Hydra task: train; return ``optimized_metric`` for sweepers.

    In a multirun a failing job is reported in one line, its traceback goes to the job's log
    (:func:`~spikeexp.cli.runner.record_job_failure`), and it returns None, so the other jobs and
    the sweep summary still run (:mod:`spikeexp.cli.sweep_summary`)."""
    try:
        metrics = guarded(train, config)
    except Exception as error:
        if not is_multirun():
            raise
        record_job_failure(error)
        return None
    value = metrics.get(config.optimized_metric)
    return None if value is None or math.isnan(value) else value


def main() -> None:
    """Console script ``spikeexp-train``: one-line errors, ``resume=<run_dir>``
    (:mod:`spikeexp.cli.runner`, :mod:`spikeexp.cli.resume`)."""
    run_cli(hydra_main, resumable=True)


if __name__ == "__main__":
    main()
