r"""Each neuron model's NIR node, both ways, worked out from the discrete-time equations.

Notation: :math:`a_s = \tau_{syn}^{-1}`, :math:`a_m = \tau_{mem}^{-1}` (1/s, spikeexp's
parameters), :math:`s` the factor of an ``input_scale`` layer in front of the neuron (1 if none),
:math:`c` the voltage scale of :mod:`spikeexp.nir.conventions` (1, or :math:`1/(\Delta t\, a_m)`
with ``resistance="tau_over_dt"``). Every parameter is broadcast to the layer's shape.

=====================  =============================================================================
spikeexp               NIR node (simulated as in :mod:`spikeexp.nir.conventions`)
=====================  =============================================================================
``lif``                ``CubaLIF``: :math:`\tau_{syn} = 1/a_s`, :math:`\tau_{mem} = 1/a_m`,
                       :math:`w_{in} = s / (\Delta t\, a_s)`, :math:`R = c`,
                       :math:`v_{leak}, v_{threshold}, v_{reset}` times :math:`c`
``lif_box``, ``plif``  ``LIF``: :math:`\tau = 1/a_m`, :math:`R = c s`, voltages times :math:`c`
                       (value reset only)
``iaf``                ``IF``: :math:`R = s / \Delta t`, :math:`v_{threshold}, v_{reset}`
``li``                 ``CubaLI`` as ``lif`` without threshold, or (``readout="li_li"``)
                       ``LI`` (:math:`\tau = 1/a_s`, :math:`R = s/(\Delta t\, a_s)`,
                       :math:`v_{leak} = 0`) then ``LI`` (:math:`\tau = 1/a_m`, :math:`R = c`)
``li_box``             ``LI``: :math:`\tau = 1/a_m`, :math:`R = c s`, :math:`v_{leak}` times
                       :math:`c`
=====================  =============================================================================

Why ``lif`` is exact: spikeexp's step is :math:`i' = i + x`,
:math:`v \leftarrow v + \Delta t\, a_m (v_{leak} - v + i')`, :math:`i \leftarrow (1 - \Delta t\,
a_s) i'`, so :math:`i'_t = (1 - \Delta t\, a_s) i'_{t-1} + x_t`. NIR's Euler step is
:math:`I_t = (1 - \Delta t / \tau_{syn}) I_{t-1} + (\Delta t / \tau_{syn}) w_{in} x_t` followed
by the voltage update from :math:`I_t`: with the values above :math:`I_t = i'_t` and the voltage
equations coincide term by term. ``iaf`` adds its input without ``dt``
(:math:`v \leftarrow v + x`), NIR's ``IF`` integrates :math:`\dot v = R I`, one Euler step
:math:`v \leftarrow v + \Delta t\, R\, x`: hence :math:`R = 1/\Delta t`.

Import reads the same equations backwards: a node's rate constants are :math:`1/\tau`, its
voltages are kept as they are, and whatever multiplies the node's input (:math:`\Delta t\, w_{in}
R / \tau_{syn}` for ``CubaLIF``/``CubaLI``, :math:`R` for ``LIF``/``LI``, :math:`\Delta t\, R` for
``IF``) becomes a gain, a :class:`~spikeexp.module.Scale` layer in front of the neuron (none where
it is 1).

Not expressible (no NIR node has these dynamics): ``lsnn`` (adaptive threshold), ``izhikevich``
(quadratic voltage, recovery variable), ``lif_adex`` (exponential term, adaptation current) and
``lif_box`` with ``reset="subtract"`` (NIR neurons reset to :math:`v_{reset}`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from spikeexp.nir.conventions import SPIKEEXP_KEY, full, parameter

NodeChain = list[tuple[str, nir.NIRNode]]
"""The nodes of one neuron layer in signal order, each with the suffix of its name (``""`` for
the node named like the layer, which is always last)."""


class NotExpressible(Exception):
    """The reason a layer has no NIR form (the exporter adds the layer's name)."""


UNEXPRESSIBLE = {
    "lsnn": "NIR has no adaptive threshold (LSNN's threshold rises after each spike)",
    "izhikevich": "NIR has no Izhikevich neuron (quadratic voltage and recovery variable)",
    "lif_adex": "NIR has no AdEx neuron (exponential voltage term and adaptation current)",
}
"""Models without a NIR node, with the reason."""


@dataclass(frozen=True)
class ExportContext:
    """What a neuron's node depends on besides its parameters.

    Attributes:
        dt: integration step (s).
        shape: the layer's per-sample shape (every parameter is broadcast to it).
        gain: factor on the layer's input (an ``input_scale`` in front of it), of ``shape``.
        resistance: voltage scale, one of :data:`~spikeexp.nir.conventions.RESISTANCES`.
        readout: form of LI layers, one of :data:`~spikeexp.nir.conventions.READOUTS`.
    """

    dt: float
    shape: tuple[int, ...]
    gain: np.ndarray
    resistance: str = "unit"
    readout: str = "cuba_li"

    def of(self, value: Any) -> np.ndarray:
        """``value`` broadcast to the layer's shape (float64)."""
        return full(value, self.shape)

    def voltage_scale(self, tau_mem_inv: Any) -> np.ndarray:
        """:math:`c`: 1, or :math:`1 / (\\Delta t\\, a_m)` for ``resistance="tau_over_dt"``."""
        if self.resistance == "unit":
            return np.ones(self.shape)
        return 1.0 / (self.dt * self.of(tau_mem_inv))


def _export_lif(p: Any, ctx: ExportContext) -> NodeChain:
    rate_syn, rate_mem = ctx.of(p.tau_syn_inv), ctx.of(p.tau_mem_inv)
    c = ctx.voltage_scale(p.tau_mem_inv)
    node = nir.CubaLIF(
        tau_syn=1.0 / rate_syn,
        tau_mem=1.0 / rate_mem,
        r=c,
        v_leak=c * ctx.of(p.v_leak),
        v_threshold=c * ctx.of(p.v_th),
        v_reset=c * ctx.of(p.v_reset),
        w_in=ctx.gain / (ctx.dt * rate_syn),
    )
    return [("", node)]


def _export_lif_box(p: Any, ctx: ExportContext) -> NodeChain:
    if getattr(p, "reset", "value") != "value":
        raise NotExpressible(
            "subtractive reset (reset='subtract') is not expressible: NIR neurons reset to v_reset"
        )
    c = ctx.voltage_scale(p.tau_mem_inv)
    node = nir.LIF(
        tau=1.0 / ctx.of(p.tau_mem_inv),
        r=c * ctx.gain,
        v_leak=c * ctx.of(p.v_leak),
        v_threshold=c * ctx.of(p.v_th),
        v_reset=c * ctx.of(p.v_reset),
    )
    return [("", node)]


def _export_iaf(p: Any, ctx: ExportContext) -> NodeChain:
    node = nir.IF(r=ctx.gain / ctx.dt, v_threshold=ctx.of(p.v_th), v_reset=ctx.of(p.v_reset))
    return [("", node)]


def _export_li(p: Any, ctx: ExportContext) -> NodeChain:
    rate_syn, rate_mem = ctx.of(p.tau_syn_inv), ctx.of(p.tau_mem_inv)
    c = ctx.voltage_scale(p.tau_mem_inv)
    w_in = ctx.gain / (ctx.dt * rate_syn)
    if ctx.readout == "li_li":
        synapse = nir.LI(tau=1.0 / rate_syn, r=w_in, v_leak=np.zeros(ctx.shape))
        membrane = nir.LI(tau=1.0 / rate_mem, r=c, v_leak=c * ctx.of(p.v_leak))
        return [(".synapse", synapse), ("", membrane)]
    node = nir.CubaLI(
        tau_syn=1.0 / rate_syn, tau_mem=1.0 / rate_mem, r=c, v_leak=c * ctx.of(p.v_leak), w_in=w_in
    )
    return [("", node)]


def _export_li_box(p: Any, ctx: ExportContext) -> NodeChain:
    c = ctx.voltage_scale(p.tau_mem_inv)
    node = nir.LI(tau=1.0 / ctx.of(p.tau_mem_inv), r=c * ctx.gain, v_leak=c * ctx.of(p.v_leak))
    return [("", node)]


EXPORTERS: dict[str, Callable[[Any, ExportContext], NodeChain]] = {
    "lif": _export_lif,
    "lif_box": _export_lif_box,
    "plif": _export_lif_box,
    "iaf": _export_iaf,
    "li": _export_li,
    "li_box": _export_li_box,
}
"""spikeexp model name -> its NIR node chain."""


def export_neuron(model: str, p: Any, ctx: ExportContext, extra: dict[str, Any]) -> NodeChain:
    """The NIR nodes of a neuron layer of ``model`` with parameters ``p``; ``extra`` (surrogate,
    learnable, model name) goes into the last node's metadata under ``"spikeexp"``.

    Raises:
        NotExpressible: the model or one of its settings has no NIR form.
    """
    if model in UNEXPRESSIBLE:
        raise NotExpressible(UNEXPRESSIBLE[model])
    if model not in EXPORTERS:
        raise NotExpressible(f"no NIR mapping for neuron model {model!r}")
    chain = EXPORTERS[model](p, ctx)
    chain[-1][1].metadata = {SPIKEEXP_KEY: {"model": model, **extra}}
    return chain


@dataclass
class ImportedNeuron:
    """A NIR neuron node read as a spikeexp model.

    Attributes:
        model: spikeexp model name.
        params: its parameters (floats where uniform, else per-neuron tensors).
        gain: factor on the node's input, of the node's shape.
    """

    model: str
    params: dict[str, Any]
    gain: np.ndarray


def _rates(node: nir.NIRNode, *fields: str) -> list[np.ndarray]:
    """``1 / tau`` of each named time constant, refused unless every element is > 0."""
    rates = []
    for name in fields:
        tau = np.asarray(getattr(node, name), dtype=np.float64)
        if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
            raise NotExpressible(f"{name} must be > 0 seconds (got min {tau.min():g})")
        rates.append(1.0 / tau)
    return rates


def _import_cuba_lif(node: nir.CubaLIF, dt: float) -> ImportedNeuron:
    rate_syn, rate_mem = _rates(node, "tau_syn", "tau_mem")
    params = {
        "tau_syn_inv": parameter(rate_syn),
        "tau_mem_inv": parameter(rate_mem),
        "v_leak": parameter(node.v_leak),
        "v_th": parameter(node.v_threshold),
        "v_reset": parameter(node.v_reset),
    }
    return ImportedNeuron("lif", params, dt * rate_syn * node.w_in * node.r)


def _import_lif(node: nir.LIF, dt: float) -> ImportedNeuron:
    (rate,) = _rates(node, "tau")
    params = {
        "tau_mem_inv": parameter(rate),
        "v_leak": parameter(node.v_leak),
        "v_th": parameter(node.v_threshold),
        "v_reset": parameter(node.v_reset),
    }
    return ImportedNeuron("lif_box", params, np.asarray(node.r, dtype=np.float64))


def _import_if(node: nir.IF, dt: float) -> ImportedNeuron:
    params = {"v_th": parameter(node.v_threshold), "v_reset": parameter(node.v_reset)}
    return ImportedNeuron("iaf", params, dt * np.asarray(node.r, dtype=np.float64))


def _li(
    rate_syn: np.ndarray, rate_mem: np.ndarray, v_leak: np.ndarray, gain: np.ndarray
) -> ImportedNeuron:
    params = {
        "tau_syn_inv": parameter(rate_syn),
        "tau_mem_inv": parameter(rate_mem),
        "v_leak": parameter(v_leak),
    }
    return ImportedNeuron("li", params, gain)


def _import_cuba_li(node: nir.CubaLI, dt: float) -> ImportedNeuron:
    rate_syn, rate_mem = _rates(node, "tau_syn", "tau_mem")
    return _li(rate_syn, rate_mem, node.v_leak, dt * rate_syn * node.w_in * node.r)


def _import_li(node: nir.LI, dt: float) -> ImportedNeuron:
    (rate,) = _rates(node, "tau")
    params = {"tau_mem_inv": parameter(rate), "v_leak": parameter(node.v_leak)}
    return ImportedNeuron("li_box", params, np.asarray(node.r, dtype=np.float64))


IMPORTERS: dict[type, Callable[[Any, float], ImportedNeuron]] = {
    nir.CubaLIF: _import_cuba_lif,
    nir.LIF: _import_lif,
    nir.IF: _import_if,
    nir.CubaLI: _import_cuba_li,
    nir.LI: _import_li,
}
"""NIR neuron node type -> its spikeexp reading."""
ALTERNATIVES = {"lif_box": ("plif",)}
"""Models with the same equations, chosen by a node's ``spikeexp`` metadata (``LIF`` -> PLIF,
whose membrane time constant is learnt through a sigmoid)."""


def merge_li_chain(synapse: nir.LI, membrane: nir.LI, dt: float) -> ImportedNeuron:
    r"""Two ``LI`` nodes in a row, the first without leak voltage, read as one spikeexp ``li``:
    the first node's voltage is the synaptic current (times :math:`R` of the second)."""
    rate_syn, rate_mem = _rates(synapse, "tau")[0], _rates(membrane, "tau")[0]
    return _li(rate_syn, rate_mem, membrane.v_leak, dt * rate_syn * synapse.r * membrane.r)


def import_neuron(node: nir.NIRNode, dt: float) -> ImportedNeuron:
    """The spikeexp reading of a NIR neuron node (:data:`IMPORTERS`); the model may be replaced
    by an equivalent one its ``spikeexp`` metadata names (:data:`ALTERNATIVES`).

    Raises:
        NotExpressible: a field value spikeexp cannot use.
    """
    imported = IMPORTERS[type(node)](node, dt)
    named = (node.metadata or {}).get(SPIKEEXP_KEY, {}).get("model")
    if named in ALTERNATIVES.get(imported.model, ()):
        imported.model = str(named)
    return imported


def neuron_options(node: nir.NIRNode) -> dict[str, Any]:
    """Constructor options of a neuron module kept in a node's ``spikeexp`` metadata: surrogate
    ``method`` and ``alpha``, ``learnable`` parameters (training settings NIR does not hold)."""
    stored = (node.metadata or {}).get(SPIKEEXP_KEY, {})
    options: dict[str, Any] = {}
    if "method" in stored:
        options["method"] = str(stored["method"])
    if "alpha" in stored:
        options["alpha"] = float(stored["alpha"])
    learnable = str(stored.get("learnable", ""))
    if learnable:
        options["learnable"] = tuple(learnable.split(","))
    return options
