"""Hydra sweeper plugin: Bayesian search with a current Optuna release (``hydra/sweeper=optuna``).

Public modules (imported by Hydra's plugin scan, so they stay light): :mod:`.config` (the
``hydra/sweeper`` schema) and :mod:`.optuna_sweeper` (the :class:`~.optuna_sweeper.OptunaSweeper`
plugin). Modules starting with ``_`` import Optuna and are only loaded when a sweep runs.

The plugin depends on spikeexp, never the reverse: the trial side of a sweep (storages, reporting
intermediate values, pruning) lives in :mod:`spikeexp.runtime.optuna_study`.
"""
