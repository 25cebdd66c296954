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
        self.direction = direction
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

    def check_settings(self, config: DictConfig | None = None) -> None:
        """Raise a one-line ``ConfigError`` (a ``ValueError``) on the first bad setting; given the
        composed ``config``, it names the key a value was written as (``optimized_mode``, not
        ``hydra.sweeper.direction = ${optimized_mode}``)."""
        from spikeexp.engine.origins import Origins
        from spikeexp.engine.schema import ConfigError, validate_target

        try:
            if self.direction not in DIRECTIONS:
                raise ConfigError(
                    f"hydra.sweeper.direction must be one of {', '.join(DIRECTIONS)} "
                    f"(got {self.direction!r})"
                )
            for key, value in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs)):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigError(
                        f"hydra.sweeper.{key} must be an integer >= 1 (got {value!r})"
                    )
            if not self.study_name:
                raise ConfigError(
                    f"hydra.sweeper.study_name must be a non-empty string (got {self.study_name!r})"
                )
            for key, node in (("sampler", self.sampler), ("pruner", self.pruner)):
                if node:
                    validate_target(f"hydra.sweeper.{key}", node)
        except ConfigError as error:
            raw = OmegaConf.to_container(config, resolve=False) if config is not None else {}
            raise Origins.of_config(raw).explain(error, raw) from None
        self.direction = DIRECTIONS[self.direction]

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.check_settings(config)
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
