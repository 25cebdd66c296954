"""The commands, and the only layer that knows Hydra.

* ``spikeexp-train`` (:mod:`~spikeexp.cli.train`), ``spikeexp-eval`` (:mod:`~spikeexp.cli.eval`),
  ``spikeexp-plot`` (:mod:`~spikeexp.cli.plot`);
* :mod:`~spikeexp.cli.runner`: one-line errors, exit codes, nothing half-written;
* :mod:`~spikeexp.cli.resume`: ``resume=<run_dir>``;
* :mod:`~spikeexp.cli.sweep_summary`: the Hydra callback that writes a sweep's summary;
* :mod:`~spikeexp.cli.console`: the config tree and the final metrics table.

The commands compose a config with Hydra, resolve it into plain data, set the run context
(:mod:`spikeexp.runtime.context`) and hand the rest to the engine (:mod:`spikeexp.engine`).
"""
