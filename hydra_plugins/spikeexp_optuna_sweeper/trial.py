"""Public import point of the trial side: ``from hydra_plugins.spikeexp_optuna_sweeper.trial import
TrialReporter``.

The classes live in :mod:`._trial`: Hydra's plugin scan re-executes every public module of
``hydra_plugins`` (it skips ``_`` modules), which would replace a class defined here by a copy,
and pickling (joblib, submitit) a function that uses the first copy would then fail.
"""

from hydra_plugins.spikeexp_optuna_sweeper._trial import PRUNED_ATTR, PRUNER_ATTR, TrialReporter

__all__ = ["PRUNED_ATTR", "PRUNER_ATTR", "TrialReporter"]
