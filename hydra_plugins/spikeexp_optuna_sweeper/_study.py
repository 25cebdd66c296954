"""The search loop: ask Optuna for a batch of trials, launch them as Hydra jobs, tell results."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra.utils
import optuna
from hydra.core.utils import JobReturn
from optuna.trial import Trial, TrialState

from hydra_plugins.spikeexp_optuna_sweeper._report import write_results
from hydra_plugins.spikeexp_optuna_sweeper._search_space import (
    SearchSpace,
    override_value,
    parse_search_space,
)
from spikeexp.runtime.optuna_study import (
    PRUNED_ATTR,
    PRUNER_ATTR,
    absolute_storage_url,
    default_storage_url,
    open_storage,
)

if TYPE_CHECKING:
    from hydra_plugins.spikeexp_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# A job that catches its own exception may leave its traceback here (spikeexp-train does, after
# printing a line for it); the last line becomes the trial's error message.
JOB_ERROR_FILE = "job_error.txt"


def _create_study(sweeper: OptunaSweeper, storage_url: str) -> optuna.Study:
    sampler = hydra.utils.instantiate(sweeper.sampler) if sweeper.sampler else None
    pruner = hydra.utils.instantiate(sweeper.pruner) if sweeper.pruner else None
    study = optuna.create_study(
        study_name=sweeper.study_name,
        storage=open_storage(storage_url),
        sampler=sampler,
        pruner=pruner,
        direction=sweeper.direction,
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != sweeper.direction:
        raise ValueError(
            f"hydra.sweeper.direction is {sweeper.direction!r} but study "
            f"{sweeper.study_name!r} in {storage_url} was created with {stored!r}"
        )
    study.set_user_attr(PRUNER_ATTR, sweeper.pruner)
    return study


def _trial_overrides(sweeper: OptunaSweeper, trial: Trial, storage_url: str) -> list[str]:
    if not sweeper.trial_key:
        return []
    fields = {"number": trial.number, "study_name": sweeper.study_name, "storage": storage_url}
    return [f"++{sweeper.trial_key}.{key}={override_value(value)}" for key, value in fields.items()]


def _job_dir(job: JobReturn) -> str | None:
    try:
        return str(job.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        return None


def _outcome(job: JobReturn) -> tuple[TrialState, float | None, str | None]:
    """State, value and error message of a finished job."""
    try:
        value = job.return_value
    except optuna.TrialPruned:
        return TrialState.PRUNED, None, None
    except Exception as error:
        return TrialState.FAIL, None, f"{type(error).__name__}: {error}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return TrialState.FAIL, None, f"job returned {value!r}, not a number"
    if not math.isfinite(number):
        return TrialState.FAIL, None, f"job returned {number}"
    return TrialState.COMPLETE, number, None


def _stored_user_attrs(study: optuna.Study, number: int) -> dict[str, Any]:
    """User attributes of trial ``number`` as stored now (the trial may have written them from
    another process; ``Trial.user_attrs`` only knows this process's writes)."""
    for stored in study.get_trials(deepcopy=False):
        if stored.number == number:
            return stored.user_attrs
    return {}


def _tell(study: optuna.Study, trial: Trial, job: JobReturn) -> None:
    state, value, error = _outcome(job)
    if PRUNED_ATTR in _stored_user_attrs(study, trial.number):
        state, error = TrialState.PRUNED, None
    job_dir = _job_dir(job)
    reported = False
    if job_dir:
        trial.set_user_attr("job_dir", job_dir)
        error_file = Path(job_dir, JOB_ERROR_FILE)
        if state == TrialState.FAIL and error_file.is_file():
            error = error_file.read_text().strip().splitlines()[-1]
            reported = True
    if error:
        trial.set_user_attr("error", error)
        # A job that wrote its error file has printed its own line already.
        log.log(
            logging.DEBUG if reported else logging.WARNING,
            "trial %d failed: %s",
            trial.number,
            error,
        )
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
        log.info("trial %d: %s = %.6g %s", trial.number, "value", value, trial.params)
    else:
        study.tell(trial, state=state)
        if state == TrialState.PRUNED:
            log.info("trial %d pruned", trial.number)


def _run_batches(
    sweeper: OptunaSweeper, study: optuna.Study, space: SearchSpace, storage_url: str
) -> None:
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    remaining = sweeper.n_trials - finished
    log.info(
        "study %r (%s): %d finished trials, %d to run, %d per batch",
        sweeper.study_name,
        storage_url,
        finished,
        max(remaining, 0),
        sweeper.n_jobs,
    )
    while remaining > 0:
        trials = [study.ask(space.distributions) for _ in range(min(sweeper.n_jobs, remaining))]
        overrides = [
            [*space.overrides(trial.params), *_trial_overrides(sweeper, trial, storage_url)]
            for trial in trials
        ]
        sweeper.validate_batch_is_legal(overrides)
        jobs = sweeper.launcher.launch(overrides, initial_job_idx=trials[0].number)
        for trial, job in zip(trials, jobs, strict=True):
            _tell(study, trial, job)
        remaining -= len(trials)


def run_study(sweeper: OptunaSweeper, arguments: list[str]) -> dict[str, Any]:
    """Run (or continue) the study of ``sweeper``; write the results into the sweep dir."""
    config = sweeper.config
    sweep_dir = Path(config.hydra.sweep.dir)
    space = parse_search_space(sweeper.params, arguments)
    storage_url = absolute_storage_url(sweeper.storage or default_storage_url(sweep_dir))
    study = _create_study(sweeper, storage_url)
    _run_batches(sweeper, study, space, storage_url)
    results = write_results(study, storage_url, sweep_dir)
    log.info(
        "best trial %s: value %s, params %s (written to %s)",
        results["best_trial"],
        results["best_value"],
        results["best_params"],
        sweep_dir,
    )
    return results
