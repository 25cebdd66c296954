"""``spikeexp-eval``: test a trained network on its task's test set.

    spikeexp-eval run_dir=outputs/2026-01-01/12-00-00            # best checkpoint of that run
    spikeexp-eval run_dir=outputs/2026-01-01/12-00-00 checkpoint=last
    spikeexp-eval ckpt_path=outputs/.../checkpoints/last.ckpt     # config stored in the file
    spikeexp-eval run_dir=... +data.num_workers=2                 # override the run's config

With ``run_dir`` the run's own ``.hydra/config.yaml`` is used; with ``ckpt_path`` alone the
resolved config saved in the checkpoint (hyper-parameter ``config``). Keys added with ``+`` are
merged on top of that config. The run and its checkpoint are found by
:mod:`spikeexp.runtime.run_files`; checkpoints are loaded with ``weights_only=True`` and checked
against the rebuilt network first. The test metrics are printed and written to ``metrics.json``
in the eval's own run directory (``outputs/eval/<date>/<time>``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from spikeexp.cli.console import print_summary
from spikeexp.cli.runner import guarded, run_cli
from spikeexp.engine import build_experiment, build_test_trainer, validate_config
from spikeexp.engine.origins import Origins
from spikeexp.runtime.allocator import keep_freed_memory
from spikeexp.runtime.checkpoint import verify_checkpoint
from spikeexp.runtime.processes import set_matmul_precision
from spikeexp.runtime.run_files import locate_run, offline_config

EVAL_KEYS = ("task_name", "run_dir", "ckpt_path", "checkpoint")


def evaluate(config: DictConfig, output_dir: str) -> dict[str, float]:
    """Rebuild the run's network, load the checkpoint and test it; return the test metrics."""
    train_config, checkpoint = locate_run(config.run_dir, config.ckpt_path, config.checkpoint)
    extra = {k: v for k, v in OmegaConf.to_container(config).items() if k not in EVAL_KEYS}
    spec = validate_config(
        offline_config(train_config, output_dir, extra), origins=Origins.of_config(train_config)
    )
    if spec.config["keep_freed_memory"]:
        keep_freed_memory()
    set_matmul_precision(spec.config["matmul_precision"])
    pl.seed_everything(spec.config["seed"], workers=True, verbose=False)
    experiment = build_experiment(spec)
    state = verify_checkpoint(checkpoint, experiment.module)["state_dict"]
    experiment.module.load_state_dict(state)
    trainer = build_test_trainer(spec, enable_checkpointing=False)
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
    """Console script ``spikeexp-eval`` (one-line errors, see :mod:`spikeexp.cli.runner`)."""
    run_cli(hydra_main)


if __name__ == "__main__":
    main()
