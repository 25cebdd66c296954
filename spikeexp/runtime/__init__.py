"""Process and file support of a run; no Hydra, no knowledge of the config groups.

* :mod:`~spikeexp.runtime.checkpoint`: atomic checkpoint writes, ``weights_only`` loads, checks
  that a checkpoint fits a model.
* :mod:`~spikeexp.runtime.run_files`: the one lookup of a run's config and best or last
  checkpoint (used by eval, plot, export and resume).
* :mod:`~spikeexp.runtime.context`: what the command line knows about the run (sweep or single
  run, chosen config groups), handed down to the callbacks.
* :mod:`~spikeexp.runtime.processes`: torch threads and the guard against Lightning's ``ddp``
  re-running the command line.
* :mod:`~spikeexp.runtime.allocator`: keep freed memory in the process (glibc ``mallopt``).
* :mod:`~spikeexp.runtime.optuna_study`: Optuna storages and the trial side of a sweep.
* :mod:`~spikeexp.runtime.targets`: ``_target_`` nodes -> objects, and :class:`ConfigError`, the
  one-line error of a bad config value.
"""
