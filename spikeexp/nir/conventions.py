r"""How spikeexp reads NIR's continuous-time equations in discrete time, and shared helpers.

NIR describes neurons by differential equations, e.g. the current-based LIF (``CubaLIF``)

.. math::
    \tau_{syn} \dot I = -I + w_{in} S, \qquad \tau_{mem} \dot v = (v_{leak} - v) + R I,

spikes when :math:`v > v_{threshold}`, then :math:`v \leftarrow v_{reset}`. spikeexp exports and
imports graphs for this discrete-time reading of them (written into every exported graph's
metadata, :func:`graph_metadata`):

* **time**: seconds; forward Euler with the step ``dt`` of the metadata.
* **spikes**: a spike is the value 1 during the one step it is emitted (amplitude 1, not a Dirac
  delta of area 1); every signal between nodes, the graph's input included, is a value per step.
* **update order**: inside a node the equations are applied in the order of its composition:
  first the synaptic current from this step's input, then the voltage from the *new* current,
  then the threshold (strictly greater) and the reset to :math:`v_{reset}`.
* **initial state**: rest: :math:`v = v_{leak}` (``IF``: :math:`v = v_{reset}`), currents 0.
* **recurrence**: an edge that closes a cycle delivers the source's output of the previous step.

So one Euler step of ``CubaLIF`` reads
:math:`I \leftarrow I + \frac{\Delta t}{\tau_{syn}}(w_{in} S - I)`, then
:math:`v \leftarrow v + \frac{\Delta t}{\tau_{mem}}(v_{leak} - v + R I)`. spikeexp's LIF adds its
input to the current before the voltage update (:mod:`spikeexp.functional.neurons.lif`); both
agree exactly with :math:`\tau = 1/\tau^{-1}` and :math:`w_{in} = \tau_{syn} / \Delta t`
(:mod:`spikeexp.nir.neurons` has every model's mapping).

Voltages are defined up to a factor: multiplying :math:`R`, :math:`v_{leak}`,
:math:`v_{threshold}` and :math:`v_{reset}` by the same :math:`c` scales :math:`v` by :math:`c`
and leaves every spike where it was. ``resistance="unit"`` (default) exports :math:`c = 1`, the
graph's voltages are spikeexp's; ``resistance="tau_over_dt"`` exports
:math:`R = \tau_{mem} / \Delta t` (:math:`c = \tau_{mem}/\Delta t`), the discrete form
:math:`v \leftarrow (1 - \Delta t / \tau_{mem}) v + I` that snnTorch's importer requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spikeexp import __version__

SPIKEEXP_KEY = "spikeexp"
"""Node metadata entry with what NIR does not describe (surrogate gradient, class, learnable)."""
RESISTANCES = ("unit", "tau_over_dt")
"""Voltage scales of exported leaky neurons: ``R = 1`` or ``R = tau_mem / dt``."""
READOUTS = ("cuba_li", "li_li")
"""How a spikeexp LI layer is exported: one ``CubaLI`` node, or an ``LI`` for the synaptic
current followed by an ``LI`` for the membrane (for readers without ``CubaLI``)."""
SPIKE_CONVENTION = (
    "a spike is the value 1 during the step it is emitted (amplitude 1, duration dt; not a "
    "Dirac delta of area 1); every signal between nodes, the graph input included, is a value "
    "per step"
)
INTEGRATION = (
    "forward Euler with step dt; inside a node the equations are applied in the order of its "
    "composition: synaptic current from this step's input, then voltage from the new current, "
    "then z = 1 where v > v_threshold (strictly) and v = v_reset where z = 1"
)
INITIAL_STATE = "rest: v = v_leak (IF: v = v_reset), synaptic currents 0"
RECURRENCE = "an edge that closes a cycle delivers its source's output of the previous step"


class NIRExportError(ValueError):
    """A network cannot be written as a NIR graph (one line naming the layer and the reason)."""


class NIRImportError(ValueError):
    """A NIR graph cannot be built as a spikeexp network (one line naming the node)."""


def graph_metadata(dt: float, resistance: str, extra: dict[str, Any] | None = None) -> dict:
    """The metadata of an exported graph: ``dt`` (s) and the conventions of this module."""
    return {
        "source": f"spikeexp {__version__}",
        "dt": float(dt),
        "time_unit": "s",
        "spike": SPIKE_CONVENTION,
        "integration": INTEGRATION,
        "initial_state": INITIAL_STATE,
        "recurrence": RECURRENCE,
        "resistance": resistance,
        **(extra or {}),
    }


def full(value: float | torch.Tensor | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` (a number, or a tensor that broadcasts to ``shape``) as a float64 array of
    ``shape``: NIR infers each node's type from its parameter shapes, so none may be a scalar."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()


def weights(tensor: torch.Tensor) -> np.ndarray:
    """A weight or bias tensor as a float32 array (the exact values the network uses)."""
    return tensor.detach().to("cpu", torch.float32).numpy().copy()


def uniform(array: np.ndarray) -> float | None:
    """The value of every element of ``array`` if they are all equal, else ``None``."""
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    return float(flat[0]) if flat.size and np.all(flat == flat[0]) else None


def is_one(array: np.ndarray | float) -> bool:
    """Every element is 1 up to float64 rounding (a gain that needs no layer)."""
    return bool(np.allclose(np.asarray(array, dtype=np.float64), 1.0, rtol=1e-12, atol=0.0))


def parameter(array: np.ndarray) -> float | torch.Tensor:
    """An imported parameter: a float if uniform (a layer-wide value), else a float32 tensor of
    the node's shape (one value per neuron)."""
    value = uniform(array)
    if value is not None:
        return value
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=torch.float32)
