"""Hydra sweeper plugin: Bayesian search with a current Optuna release (``hydra/sweeper=optuna``).

Public modules (imported by Hydra's plugin scan, so they stay light): :mod:`.config` (the
``hydra/sweeper`` schema), :mod:`.optuna_sweeper` (the :class:`~.optuna_sweeper.OptunaSweeper`
plugin) and :mod:`.trial` (the trial side: report intermediate values, ask whether to prune).
Modules starting with ``_`` import Optuna and are only loaded when a sweep runs.
"""
