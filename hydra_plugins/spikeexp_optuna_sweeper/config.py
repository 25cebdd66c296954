"""Schema of ``hydra/sweeper=optuna``, registered in Hydra's ConfigStore.

Registered under two names in the group ``hydra/sweeper``: ``spikeexp_optuna`` (unique) and
``optuna`` (the short name; PyPI's ``hydra-optuna-sweeper`` uses it too, so if both are installed
pick ``hydra/sweeper=spikeexp_optuna``; ``spikeexp-train`` ships a ``hydra/sweeper/optuna.yaml``
that always means this sweeper).
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# `sys.modules`, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

SWEEPER_TARGET = "hydra_plugins.spikeexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@dataclass
class OptunaSweeperConf:
    """Settings of one Optuna study run through Hydra's launcher.

    ``params`` maps override keys to Hydra sweep expressions: ``interval(a,b)``,
    ``tag(log, interval(a,b))``, ``tag(int, interval(a,b))``, ``choice(...)``, ``range(...)`` or a
    comma list; any other value is passed unchanged to every trial.
    """

    _target_: str = SWEEPER_TARGET
    # Sampler and pruner stay configs here; the sweeper builds them (and stores the pruner's
    # config in the study, so trials in other processes can build the same pruner).
    _recursive_: bool = False
    # `minimize` or `maximize` (also `min` / `max`, so `${optimized_mode}` works).
    direction: str = "minimize"
    # Finished trials (complete, pruned or failed) the study should hold at the end: a resumed
    # study runs only the missing ones.
    n_trials: int = 20
    # Trials launched together as one batch (parallel with a parallel launcher).
    n_jobs: int = 1
    # Optuna storage URL; null = `sqlite:///<hydra.sweep.dir>/optuna.db`.
    storage: str | None = None
    # Study name inside the storage; the same storage and name continue an existing study.
    study_name: str = "sweep"
    # `_target_` node of an Optuna sampler.
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    )
    # `_target_` node of an Optuna pruner; null = never prune.
    pruner: Any = None
    # Search space: override key -> sweep expression.
    params: dict[str, str] = field(default_factory=dict)
    # Config key through which each trial learns its study (number, study_name, storage), added
    # to the trial's overrides as `++<trial_key>.<field>=...`; null = add nothing.
    trial_key: str | None = "optuna_trial"


for _name in ("spikeexp_optuna", "optuna"):
    ConfigStore.instance().store(
        group="hydra/sweeper", name=_name, node=OptunaSweeperConf, provider="spikeexp"
    )
