"""The trial side of a sweep (imported through :mod:`.trial`): report intermediate values and ask
whether to stop early.

The sweeper adds ``++optuna_trial.number=N``, ``++optuna_trial.study_name=...`` and
``++optuna_trial.storage=...`` to each trial's overrides, so a trial finds its study whatever
launcher runs it (in-process, joblib workers, SLURM jobs)::

    reporter = TrialReporter.from_config(config.optuna_trial)
    if reporter.report(value, step=epoch):   # True: the study's pruner says stop
        ...

A pruned trial is marked with the user attribute ``pruned_at_step``; the sweeper then records it
as PRUNED whether the trial stopped by raising ``optuna.TrialPruned`` or by ending early.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

PRUNED_ATTR = "pruned_at_step"
PRUNER_ATTR = "pruner"
TRIAL_FIELDS = ("number", "study_name", "storage")


@dataclass(frozen=True)
class TrialReporter:
    """Handle on one running trial of a stored study."""

    number: int
    study_name: str
    storage: str

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> TrialReporter:
        """From the ``optuna_trial`` node the sweeper passes (number, study_name, storage)."""
        missing = [key for key in TRIAL_FIELDS if node.get(key) is None]
        if missing:
            raise ValueError(
                f"optuna_trial needs {', '.join(TRIAL_FIELDS)} (missing: {', '.join(missing)})"
            )
        return cls(int(node["number"]), str(node["study_name"]), str(node["storage"]))

    @cached_property
    def _trial(self) -> Any:
        import hydra.utils
        import optuna

        from hydra_plugins.spikeexp_optuna_sweeper._storage import open_storage

        storage = open_storage(self.storage)
        study_id = storage.get_study_id_from_name(self.study_name)
        pruner_config = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
        pruner = hydra.utils.instantiate(pruner_config) if pruner_config else None
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        return optuna.trial.Trial(study, trial_id)

    def report(self, value: float, step: int) -> bool:
        """Store ``value`` at ``step``; True (and the trial marked pruned) if it should stop."""
        trial = self._trial
        trial.report(float(value), step)
        if not trial.should_prune():
            return False
        trial.set_user_attr(PRUNED_ATTR, step)
        return True
