"""The HPARAMS tab of TensorBoard: the run's hyper-parameters next to its metrics.

At the start of fitting, :class:`HParamsLogger` writes the flattened resolved config
(``neuron.v_th``, ``optimizer.lr`` ...) and the chosen option of every config group
(``choice.neuron: lsnn``, from the run context the command line sets,
:mod:`spikeexp.runtime.context`) once into each TensorBoard logger's event
file, declaring the metric tags ``metrics``. TensorBoard shows for each declared metric the last
value logged under that tag, so the table fills in as the run logs ``val/acc``, ``test/acc`` ...;
no placeholder values are written, and a run that stops early still appears. Needs
``default_hp_metric: false`` on the logger (as in ``conf/logger/tensorboard.yaml``), or TensorBoard
also lists an ``hp_metric``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from spikeexp.callbacks.tensorboard import tensorboard_writers
from spikeexp.runtime.context import run_context

HParamValue = bool | int | float | str


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, HParamValue]:
    """Nested mappings as ``{"a.b": value}``; lists become strings (``"[1, 2]"``), None "null"."""
    flat: dict[str, HParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten_config(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        elif value is None:
            flat[name] = "null"
        else:
            flat[name] = str(value)
    return flat


def group_choices(choices: Mapping[str, str], exclude: Iterable[str] = ()) -> dict[str, str]:
    """``{"choice.<group>": option}`` for the chosen config groups, without the groups in
    ``exclude`` and Hydra's own (``hydra/...``)."""
    skipped = set(exclude)
    return {
        f"choice.{group}": str(option)
        for group, option in choices.items()
        if option is not None and group not in skipped and not group.startswith("hydra")
    }


class HParamsLogger(Callback):
    """Write hyper-parameters and the declared metric tags for TensorBoard's HPARAMS tab.

    Args:
        metrics: metric tags shown as columns (e.g. ``val/acc``); they must be the names the run
            logs. ``optimized_metric`` is typically one of them.
        exclude: top-level config sections and config groups left out (paths and plumbing, not
            hyper-parameters).
        config: the resolved config; default: the Lightning module's ``hparams["config"]``.
        choices: the option of each config group; default: those of the run context
            (:func:`spikeexp.runtime.context.run_context`), read when the callback is made.
    """

    def __init__(
        self,
        metrics: Iterable[str] = ("val/acc", "val/loss"),
        exclude: Iterable[str] = ("callbacks", "logger", "paths", "hydra", "debug"),
        config: Mapping[str, Any] | None = None,
        choices: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.metrics = list(dict.fromkeys(metrics))
        if not self.metrics or not all(isinstance(name, str) and name for name in self.metrics):
            raise ValueError(
                f"callbacks.hparams.metrics must be a non-empty list of metric tags "
                f"(got {list(metrics)})"
            )
        self.exclude = set(exclude)
        self.config = config
        self.choices = dict(run_context().choices if choices is None else choices)

    def params(self, pl_module: LightningModule) -> dict[str, HParamValue]:
        """The flattened hyper-parameters and group choices of the run."""
        config = self.config if self.config is not None else pl_module.hparams.get("config", {})
        kept = {key: value for key, value in config.items() if key not in self.exclude}
        return {**group_choices(self.choices, self.exclude), **flatten_config(kept)}

    @rank_zero_only
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from torch.utils.tensorboard.summary import hparams

        writers = tensorboard_writers(trainer)
        if not writers:
            return
        experiment, start, end = hparams(self.params(pl_module), dict.fromkeys(self.metrics, 0.0))
        for writer in writers:
            file_writer = writer._get_file_writer()
            for summary in (experiment, start, end):
                file_writer.add_summary(summary)
