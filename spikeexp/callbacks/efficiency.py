r"""Efficiency report of the test stage, with NeuroBench's definitions (Yik et al. 2025,
"The neurobench framework for benchmarking neuromorphic computing algorithms and systems").

:class:`EfficiencyReport` watches every test batch and, at the end of the test stage, logs per
neuron layer ``<layer>`` (each spiking layer and the readout) and in total (``total``):

=============================================  ==============================================
tag (``test/efficiency/...``)                  definition
=============================================  ==============================================
``activation_sparsity/<layer>``                :math:`1 - \frac{\#\{z \ne 0\}}{\#z}` over the
                                               layer's outputs, all steps and test samples
                                               (spiking layers only)
``synops_ac/<layer>``                          effective accumulates per sample: products
                                               :math:`w_{ij} x_j` with :math:`x_j \ne 0` and
                                               :math:`w_{ij} \ne 0` in the connections into the
                                               layer, when their input is spikes (values in
                                               {-1, 0, 1}); summed over steps
``synops_mac/<layer>``                         the same for real-valued inputs (multiply-
                                               accumulates), e.g. the first layer fed analog
                                               pixels
``synops_dense/<layer>``                       all products, zero or not (every input times
                                               every weight): the cost of a dense accelerator
``neuron_updates/<layer>``                     neuron state updates per sample: neurons
                                               :math:`\times` steps
``parameters/<layer>``                         trainable and fixed parameters (``nn.Parameter``)
``footprint_bytes/<layer>``                    bytes of parameters and buffers
``connection_sparsity/<layer>``                zero weights / all weights of the connections
                                               (biases excluded)
=============================================  ==============================================

A layer's connections are the stateless layers before it in the network (``fc1`` and ``bn1``
belong to ``hidden1``; ``fc_out`` to ``readout``); a recurrent layer also owns its input and
recurrent weight matrices, whose recurrent input at step :math:`t` is its own spikes of step
:math:`t-1`. Plastic connections (``PlasticLinear``, ``PlasticConv2d``) count like Linear and
Conv layers; the lateral inhibition of a competitive layer is not counted. Biases and batch norm
are not synaptic operations (as in NeuroBench). ``total`` sums the layers (the sparsities are
ratios over all layers together). Parameters and footprint count the whole network; the
encoder, which has no weights here, is left out.

The values go through ``LightningModule.log`` (so into TensorBoard, the test results and
``metrics.json``) and are kept in :attr:`EfficiencyReport.report` for the console table.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from spikeexp.module import Lift, PlasticConnection, PlasticConv2d, PlasticLinear

PREFIX = "test/efficiency"
COUNTS = ("synops_ac", "synops_mac", "synops_dense", "neuron_updates")
STATIC = ("parameters", "footprint_bytes", "connection_sparsity")
METRICS = ("activation_sparsity", *COUNTS, *STATIC)
CONNECTIONS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weighted_connection(module: nn.Module) -> nn.Module | None:
    """The weighted connection a network layer applies: the Linear/Conv a :class:`Lift` wraps,
    a plastic connection itself, or ``None``."""
    inner = module.module if isinstance(module, Lift) else module
    return inner if isinstance(inner, (*CONNECTIONS, PlasticConnection)) else None


def is_spiking(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is -1, 0 or 1 (spikes, NeuroBench's test)."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def matrix_ops(weight: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    r"""``(effective, dense)`` products of ``x @ weight.T`` for ``weight`` ``[out, in]`` and
    ``x`` ``[..., in]``: :math:`\sum [x_j \ne 0] [w_{ij} \ne 0]` and all ``out * in`` products
    per input row."""
    weight = weight.detach()
    active = (x.detach() != 0).to(weight.dtype)
    per_input = (weight != 0).to(weight.dtype).sum(dim=0)  # nonzero weights of each input
    effective = float((active.reshape(-1, active.shape[-1]) @ per_input).sum())
    return effective, float(active.shape[:-1].numel()) * weight.numel()


def connection_ops(layer: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    r"""``(effective, dense)`` products of ``layer`` (Linear, Conv or plastic) applied to ``x``
    ``[N, ...]``: the layer evaluated on the nonzero patterns (:math:`[x \ne 0]`,
    :math:`[w \ne 0]`, no bias) and on all ones, summed over its outputs."""
    weight = layer.weight.detach()
    if isinstance(layer, (nn.Linear, PlasticLinear)):
        return matrix_ops(weight, x)
    active = (x.detach() != 0).to(weight.dtype)
    if isinstance(layer, PlasticConv2d):
        convolve, geometry, groups = F.conv2d, layer.connection, 1
    else:
        convolve = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[type(layer)]
        geometry, groups = layer, layer.groups
    options = {
        "stride": geometry.stride,
        "padding": geometry.padding,
        "dilation": geometry.dilation,
        "groups": groups,
    }
    effective = float(convolve(active, (weight != 0).to(weight.dtype), **options).sum())
    dense = float(convolve(torch.ones_like(active), torch.ones_like(weight), **options).sum())
    return effective, dense


class EfficiencyReport(Callback):
    """Log NeuroBench's efficiency metrics at the end of every test stage (module docstring).

    The report is computed from forward hooks registered for the test stage only; training and
    validation cost nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, float] = {}
        self._handles: list[Any] = []
        self._counts: dict[str, dict[str, float]] = {}
        self._samples = 0

    # ------------------------------------------------------------------ structure

    @staticmethod
    def groups(network: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
        """Each neuron layer (spiking layers and ``readout``) with the layers before it."""
        layers = network.layers
        groups: dict[str, list[tuple[str, nn.Module]]] = {}
        pending: list[tuple[str, nn.Module]] = []
        for name, module in layers.named_children():
            pending.append((name, module))
            if not isinstance(module, Lift) and getattr(module, "stateful", True):
                groups[name] = pending
                pending = []
        return groups

    @staticmethod
    def weights(module: nn.Module) -> list[torch.Tensor]:
        """The connection weights of one layer (Linear/Conv, plastic, recurrent input and
        recurrent)."""
        connection = weighted_connection(module)
        if connection is not None:
            return [connection.weight.detach()]
        inner = module.module if isinstance(module, Lift) else module
        if hasattr(inner, "input_weights"):
            return [inner.input_weights.detach(), inner.effective_recurrent_weights().detach()]
        return []

    def static_metrics(self, network: nn.Module) -> dict[str, float]:
        """Parameters, footprint and connection sparsity per neuron layer and in total."""
        values: dict[str, float] = {}
        totals = defaultdict(float)
        for layer, members in self.groups(network).items():
            modules = [module for _, module in members]
            parameters = sum(p.numel() for m in modules for p in m.parameters())
            footprint = sum(
                t.numel() * t.element_size()
                for m in modules
                for t in (*m.parameters(), *m.buffers())
            )
            weights = [w for m in modules for w in self.weights(m)]
            zeros = sum(int((w == 0).sum()) for w in weights)
            count = sum(w.numel() for w in weights)
            values[f"parameters/{layer}"] = float(parameters)
            values[f"footprint_bytes/{layer}"] = float(footprint)
            if count:
                values[f"connection_sparsity/{layer}"] = zeros / count
            totals["zeros"] += zeros
            totals["count"] += count
        values["parameters/total"] = float(sum(p.numel() for p in network.parameters()))
        values["footprint_bytes/total"] = float(
            sum(t.numel() * t.element_size() for t in (*network.parameters(), *network.buffers()))
        )
        if totals["count"]:
            values["connection_sparsity/total"] = totals["zeros"] / totals["count"]
        return values

    # ------------------------------------------------------------------ hooks

    def _add(self, layer: str, key: str, value: float) -> None:
        self._counts.setdefault(layer, defaultdict(float))[key] += value

    def _connection_hook(self, layer: str, module: nn.Module, args: tuple, output: Any) -> None:
        x = args[0]
        steps = x.shape[0]
        connection = weighted_connection(module)
        if steps > 1 and x.stride(0) == 0:  # the same input at every step: count one, times T
            effective, dense = connection_ops(connection, x[0])
            effective, dense = effective * steps, dense * steps
            spiking = is_spiking(x[0])
        else:
            effective, dense = connection_ops(connection, x.reshape(-1, *x.shape[2:]))
            spiking = is_spiking(x)
        self._add(layer, "synops_ac" if spiking else "synops_mac", effective)
        self._add(layer, "synops_dense", dense)

    def _neuron_hook(self, layer: str, module: nn.Module, args: tuple, output: Any) -> None:
        x, out = args[0], output[0]
        self._add(layer, "neuron_updates", float(out.shape[0] * out[0].numel()))
        if hasattr(module, "input_weights"):
            previous = torch.cat([torch.zeros_like(out[:1]), out[:-1]]).detach()
            for inputs, weight in (
                (x, module.input_weights),
                (previous, module.effective_recurrent_weights()),
            ):
                effective, dense = matrix_ops(weight, inputs)
                self._add(layer, "synops_ac" if is_spiking(inputs) else "synops_mac", effective)
                self._add(layer, "synops_dense", dense)
        if layer in self._spiking:
            self._add(layer, "active", float(torch.count_nonzero(out)))
            self._add(layer, "outputs", float(out.numel()))

    def _hook(self, method: Callable[..., None], layer: str) -> Callable[..., None]:
        return functools.partial(method, layer)

    # ------------------------------------------------------------------ Lightning

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        network = pl_module.network
        self._spiking = set(network.spiking_layers)
        self._counts, self._samples = {}, 0
        self._remove_hooks()
        for layer, members in self.groups(network).items():
            for _, module in members:
                if weighted_connection(module) is not None:
                    hook = self._hook(self._connection_hook, layer)
                    self._handles.append(module.register_forward_hook(hook))
            neuron = members[-1][1]
            self._handles.append(neuron.register_forward_hook(self._hook(self._neuron_hook, layer)))

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        records = getattr(pl_module.network, "records", {})
        if records:
            self._samples += next(iter(records.values())).shape[1]
        else:
            self._samples += len(pl_module.task.inputs(batch))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
        self.report = self.compute(pl_module.network)
        for name, value in self.report.items():
            pl_module.log(f"{PREFIX}/{name}", value, on_step=False, on_epoch=True, batch_size=1)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def compute(self, network: nn.Module) -> dict[str, float]:
        """The report from the counts gathered so far (per-sample averages, ratios)."""
        samples = max(self._samples, 1)
        values: dict[str, float] = {}
        totals = defaultdict(float)
        for layer, counts in self._counts.items():
            for key in COUNTS:
                values[f"{key}/{layer}"] = counts.get(key, 0.0) / samples
                totals[key] += counts.get(key, 0.0)
            if counts.get("outputs"):
                values[f"activation_sparsity/{layer}"] = 1.0 - counts["active"] / counts["outputs"]
                totals["active"] += counts["active"]
                totals["outputs"] += counts["outputs"]
        for key in COUNTS:
            values[f"{key}/total"] = totals[key] / samples
        if totals["outputs"]:
            values["activation_sparsity/total"] = 1.0 - totals["active"] / totals["outputs"]
        values |= self.static_metrics(network)
        return {name: values[name] for name in sorted(values, key=_order)}


def _order(name: str) -> tuple[int, str]:
    metric = name.split("/", 1)[0]
    return (METRICS.index(metric) if metric in METRICS else len(METRICS), name)


def report_rows(metrics: dict[str, float]) -> list[tuple[str, dict[str, float]]]:
    """``metrics`` entries ``test/efficiency/<metric>/<layer>`` as rows ``(layer, {metric:
    value})``, layers in the order they appear and ``total`` last."""
    rows: dict[str, dict[str, float]] = {}
    start = f"{PREFIX}/"
    for name, value in metrics.items():
        if not name.startswith(start):
            continue
        metric, layer = name[len(start) :].split("/", 1)
        rows.setdefault(layer, {})[metric] = value
    layers = [layer for layer in rows if layer != "total"] + (["total"] if "total" in rows else [])
    return [(layer, rows[layer]) for layer in layers]


def format_count(value: float) -> str:
    """A count in engineering notation with 3 significant digits (``1.23e+06``), small ones
    as integers."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.0f}" if abs(value) < 1e4 else f"{value:.3g}"
