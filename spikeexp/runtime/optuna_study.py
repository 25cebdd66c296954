"""Optuna storages and the trial side of a sweep, shared by the sweeper and its trials.

The sweeper plugin (``hydra_plugins.spikeexp_optuna_sweeper``) creates the study and adds
``++optuna_trial.number=N``, ``++optuna_trial.study_name=...`` and ``++optuna_trial.storage=...``
to each trial's overrides, so a trial finds its study whatever launcher runs it (in-process,
joblib workers, SLURM jobs)::

    reporter = TrialReporter.from_config(config["optuna_trial"])
    if reporter.report(value, step=epoch):   # True: the study's pruner says stop
        ...

A pruned trial is marked with the user attribute ``pruned_at_step``; the sweeper then records it as
PRUNED whether the trial stopped by raising ``optuna.TrialPruned`` or by ending early. Optuna is
imported only when a storage is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

SQLITE_PREFIX = "sqlite:///"
SQLITE_LOCK_TIMEOUT_S = 60
"""Seconds a process waits for another one's SQLite write lock (parallel trials report at once)."""
PRUNED_ATTR = "pruned_at_step"
PRUNER_ATTR = "pruner"
TRIAL_FIELDS = ("number", "study_name", "storage")


def default_storage_url(sweep_dir: str | Path) -> str:
    """``sqlite:///<sweep_dir>/optuna.db`` with an absolute path."""
    return f"{SQLITE_PREFIX}{Path(sweep_dir).resolve() / 'optuna.db'}"


def absolute_storage_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute, so trials that run elsewhere (another
    working directory, a cluster node) open the same file."""
    if not url.startswith(SQLITE_PREFIX) or url.startswith(SQLITE_PREFIX + "/"):
        return url
    return f"{SQLITE_PREFIX}{Path(url[len(SQLITE_PREFIX) :]).resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``; SQLite files get a lock timeout and their folder."""
    import optuna

    if url.startswith(SQLITE_PREFIX):
        Path(url[len(SQLITE_PREFIX) :]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}}
        )
    return optuna.storages.get_storage(url)


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
        import optuna

        from spikeexp.runtime.targets import instantiate

        storage = open_storage(self.storage)
        study_id = storage.get_study_id_from_name(self.study_name)
        pruner_config = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
        pruner = instantiate("pruner", pruner_config) if pruner_config else None
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
