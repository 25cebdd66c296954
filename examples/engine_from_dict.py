"""A Lightning run built by the engine from a config written as a Python dict (no Hydra).

    python examples/engine_from_dict.py --epochs 3

The dict has the sections of a ``spikeexp-train`` config (the same keys as the YAML in
``conf/``); the optional ones (scheduler, logger, callbacks, regularisation ...) take their
defaults. ``build_experiment`` validates it once and builds the data, encoder, network, task and
the LightningModule; ``build_trainer`` the Lightning trainer.
"""

from __future__ import annotations

import argparse
import tempfile

import lightning.pytorch as pl

from spikeexp.engine import build_experiment, build_trainer


def config(epochs: int, output_dir: str) -> dict:
    """The default digits experiment, written out by hand."""
    return {
        "dt": 1e-3,
        "seq_length": 16,
        "seed": 0,
        "neuron": {"model": "lif", "tau_mem_inv": 100.0, "tau_syn_inv": 200.0},
        "encoder": {"_target_": "spikeexp.module.ConstantCurrentEncoder", "seq_length": 16},
        "topology": {"type": "mlp", "hidden": [128]},
        "decoder": {"_target_": "spikeexp.module.MaxOverTime", "readout": {"model": "li"}},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2},
        "task": {"_target_": "spikeexp.tasks.classification.ClassificationTask"},
        "data": {"_target_": "spikeexp.tasks.digits.DigitsDataModule", "batch_size": 32},
        "trainer": {
            "_target_": "lightning.pytorch.Trainer",
            "max_epochs": epochs,
            "accelerator": "cpu",
            "default_root_dir": output_dir,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        settings = config(arguments.epochs, output_dir)
        pl.seed_everything(settings["seed"], verbose=False)
        experiment = build_experiment(settings)
        trainer = build_trainer(experiment.spec)
        trainer.fit(experiment.module, datamodule=experiment.datamodule)
        results = trainer.test(experiment.module, datamodule=experiment.datamodule, verbose=False)
    print(f"test accuracy {results[0]['test/acc']:.3f}")


if __name__ == "__main__":
    main()
