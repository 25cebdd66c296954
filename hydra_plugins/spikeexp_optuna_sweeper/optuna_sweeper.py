"""The Hydra sweeper plugin class; the search itself lives in :mod:`._study` (imports Optuna)."""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}


class OptunaSweeper(Sweeper):
    """Runs an Optuna study: each trial is a Hydra job launched by the configured launcher.

    See :class:`hydra_plugins.spikeexp_optuna_sweeper.config.OptunaSweeperConf` for the settings.
    """

    def __init__(
        self,
        direction: str,
        n_trials: int,
        n_jobs: int,
        storage: str | None,
        study_name: str,
        sampler: Any,
        pruner: Any,
        params: Any,
        trial_key: str | None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"hydra.sweeper.direction must be one of {', '.join(DIRECTIONS)} "
                f"(got {direction!r})"
            )
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"hydra.sweeper.{key} must be an integer >= 1 (got {value!r})")
        if not study_name:
            raise ValueError(
                f"hydra.sweeper.study_name must be a non-empty string (got {study_name!r})"
            )
        self.direction = DIRECTIONS[direction]
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.storage = storage
        self.study_name = study_name
        self.sampler = _plain(sampler)
        self.pruner = _plain(pruner)
        self.params = _plain(params) or {}
        self.trial_key = trial_key
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.spikeexp_optuna_sweeper._study import run_study

        assert self.config is not None, "setup() must run before sweep()"
        return run_study(self, arguments)


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node
