"""Generic neuron modules: one implementation each of "one step", "recurrence" and "sequence".

For every neuron model ``X`` in :data:`spikeexp.functional.neurons.MODELS`,
:mod:`spikeexp.module.neurons` declares four classes on the generic bases here:

==================  =====================================================  ==================
class               input                                                  state
==================  =====================================================  ==================
``XCell``           one step, any shape ``[batch, ...]``                   ``XState``
``XRecurrentCell``  one step ``[batch, input_size]``                       ``RecurrentState``
``X``               time-first ``[T, batch, ...]`` (also ``[T,B,C,H,W]``)  ``XState``
``XRecurrent``      time-first ``[T, batch, input_size]``                  ``RecurrentState``
==================  =====================================================  ==================

Non-spiking models (LI) get only ``XCell`` and ``X``. Calling convention as in Norse:
``out, state = module(x)`` starts from rest, ``module(x, state)`` continues.

A class binds its model with a class keyword, ``class LIFCell(NeuronCell, model=lif.MODEL)``;
:meth:`NeuronModule.__init_subclass__` attaches the model, appends the model's documentation to
the class docstring and registers the class in :data:`NEURON_MODULES` (the lookup the engine's
topology builders use).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import nn

from spikeexp.functional.compiled import compiled_recurrent_sequence, compiled_sequence
from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.unroll import (
    RecurrentState,
    reference_recurrent_sequence,
    reference_sequence,
)

BACKENDS = ("auto", "reference", "fused", "compiled")
NEURON_MODULES: dict[str, type[NeuronModule]] = {}
"""Every neuron class declared with a model, by name (``"LIFCell"``, ``"LIF"``, ...)."""
_SUFFIXES = {
    "NeuronCell": "Cell",
    "NeuronSequence": "",
    "NeuronRecurrentCell": "RecurrentCell",
    "NeuronRecurrent": "Recurrent",
}
"""Class-name suffix of each generic base (``LIF`` + ``Cell`` ...)."""
FUSING = ("auto", "fused")  # backends that use a model's fused kernel where it applies
_RATE_MARGIN = 1e-6


class NeuronModule(nn.Module):
    """Holds a model's parameters; tensors become buffers, learnable ones ``nn.Parameter``.

    Args:
        p: the model's parameters tuple (default: its defaults).
        dt: integration step (s).
        learnable: names of parameters to train. Rate constants (``*_inv``) stay inside
            ``(0, 1/dt)`` during training: clamped when used, or for the model's
            ``sigmoid_rates`` (PLIF) stored as ``<name>_logit`` ``w`` and used as
            ``(m + (1 - 2 m) sigmoid(w)) / dt`` with margin ``m = 1e-6``.
        **overrides: single parameter values replacing those of ``p`` (``tau_mem_inv=80.0``).
    """

    model: ClassVar[NeuronModel]
    stateful: ClassVar[bool] = True

    def __init_subclass__(cls, model: NeuronModel | None = None, **kwargs: Any) -> None:
        """Bind ``model`` to a concrete neuron class (see the module docstring)."""
        super().__init_subclass__(**kwargs)
        if model is None:
            return
        base = next(b for b in cls.__mro__[1:] if b.__name__ in _SUFFIXES)
        expected = f"{model.prefix}{_SUFFIXES[base.__name__]}"
        if cls.__name__ != expected:
            raise TypeError(f"the {base.__name__} class of {model.prefix} must be named {expected}")
        cls.model = model
        cls.__doc__ = f"{cls.__doc__}\n\n{base.__doc__}\n\n{_model_doc(model)}"
        NEURON_MODULES[cls.__name__] = cls

    def __init__(
        self,
        p: Any = None,
        dt: float = 1e-3,
        learnable: Iterable[str] = (),
        **overrides: Any,
    ) -> None:
        super().__init__()
        p = self.model.parameters() if p is None else p
        self.model.check_type(p)
        fields = p._fields if isinstance(p, tuple) and hasattr(p, "_fields") else ()
        unknown = sorted(set(overrides) - set(fields)) if fields else []
        if unknown:
            raise ValueError(
                f"unknown {self.model.prefix} parameter {unknown[0]!r}; valid: {', '.join(fields)}"
            )
        if overrides:
            p = p._replace(**overrides)
        p = self.model.prepare(p, dt)
        learnable = tuple(learnable)
        for name in learnable:
            if name not in p._fields or isinstance(getattr(p, name), str):
                numeric = [f for f in p._fields if not isinstance(getattr(p, f), str)]
                raise ValueError(
                    f"learnable parameter {name!r} is not a numeric {self.model.prefix} "
                    f"parameter; valid: {', '.join(numeric)}"
                )
        self.dt = float(dt)
        self._constants = {}
        self._tensor_fields = []
        for name, value in zip(p._fields, p, strict=True):
            if name in learnable and name in self.model.sigmoid_rates:
                fraction = torch.as_tensor(value, dtype=torch.get_default_dtype()) * dt
                logit = torch.logit((fraction - _RATE_MARGIN) / (1.0 - 2.0 * _RATE_MARGIN))
                self.register_parameter(f"{name}_logit", nn.Parameter(logit))
                self._tensor_fields.append(name)
            elif name in learnable:
                self.register_parameter(
                    name, nn.Parameter(torch.as_tensor(value, dtype=torch.get_default_dtype()))
                )
                self._tensor_fields.append(name)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value.clone())
                self._tensor_fields.append(name)
            else:
                self._constants[name] = value
        self.learnable = learnable

    @property
    def p(self) -> Any:
        """The parameters tuple as used now (learnable rate constants kept in ``(0, 1/dt)``)."""
        values = dict(self._constants)
        for name in self._tensor_fields:
            if name in self.learnable and name in self.model.sigmoid_rates:
                fraction = torch.sigmoid(getattr(self, f"{name}_logit"))
                value = (_RATE_MARGIN + (1.0 - 2.0 * _RATE_MARGIN) * fraction) / self.dt
            elif name in self.learnable and name in self.model.rate_constants:
                value = getattr(self, name).clamp(_RATE_MARGIN, (1.0 - _RATE_MARGIN) / self.dt)
            else:
                value = getattr(self, name)
            values[name] = value
        return self.model.parameters(**values)

    def initial_state(self, like: torch.Tensor) -> Any:
        """The resting state shaped, typed and placed like ``like``."""
        return self.model.initial_state(self.p, like)

    def extra_repr(self) -> str:
        return f"p={self.p}, dt={self.dt:g}"


class NeuronCell(NeuronModule):
    """One step of the model, no recurrence, any input shape: ``out, state = cell(x, state)``."""

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        p = self.p
        if state is None:
            state = self.model.initial_state(p, x)
        return self.model.step(x, state, p, self.dt)


def check_layer_sizes(input_size: int, hidden_size: int) -> None:
    """Both sizes of a layer with its own weights are positive integers."""
    for name, size in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer (got {size!r})")


def check_features(module: nn.Module, x: torch.Tensor, layout: str) -> None:
    """``x`` has the dimensions of ``layout`` (e.g. ``[T, batch, input_size]``) and
    ``module.input_size`` features in its last one."""
    if x.dim() != layout.count(",") + 1 or x.shape[-1] != module.input_size:
        raise ValueError(
            f"{type(module).__name__} expects input {layout} with input_size="
            f"{module.input_size} (got shape {tuple(x.shape)})"
        )


def _check_time_first(x: torch.Tensor, owner: str, min_dims: int = 2) -> None:
    if x.dim() < min_dims:
        raise ValueError(
            f"{owner} expects time-first input [T, batch, ...] with at least {min_dims} dims "
            f"(got shape {tuple(x.shape)})"
        )


class NeuronSequence(NeuronModule):
    """The model over a time-first sequence ``[T, batch, ...]``.

    Returns ``(outputs [T, batch, ...], final state)``; with ``record_states=True`` the state
    returned is the whole trajectory (a state tuple of ``[T, batch, ...]`` tensors).

    Args:
        backend: ``auto`` (the fused fast path where the model has one and no states are
            recorded, else the reference loop), ``reference`` (step-by-step loop, the definition),
            ``fused`` (the model's whole-sequence kernel; an error if it has none), ``compiled``
            (the reference loop with the step compiled by ``torch.compile``; any model).
    """

    def __init__(
        self,
        p: Any = None,
        dt: float = 1e-3,
        learnable: Iterable[str] = (),
        record_states: bool = False,
        backend: str = "auto",
        **overrides: Any,
    ) -> None:
        super().__init__(p, dt, learnable, **overrides)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
        if backend == "fused" and self.model.fused_sequence is None:
            raise ValueError(f"backend 'fused' is not available for {self.model.prefix} neurons")
        self.record_states = record_states
        self.backend = backend

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        _check_time_first(x, type(self).__name__)
        p = self.p
        if state is None:
            state = self.model.initial_state(p, x[0])
        fused = self.model.fused_sequence
        use_fused = fused is not None and not self.record_states and self.backend in FUSING
        loop = compiled_sequence if self.backend == "compiled" else reference_sequence
        run = fused if use_fused else loop
        return run(self.model, x, state, p, self.dt, self.record_states)


class _RecurrentWeights(NeuronModule):
    """Input weights ``[hidden, input]`` and recurrent weights ``[hidden, hidden]``.

    Both start as :math:`\\mathcal{N}(0, 2 / \\text{hidden})` (Norse's choice); with
    ``autapses=False`` the recurrent diagonal (self-connections) is held at zero.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: Any = None,
        dt: float = 1e-3,
        autapses: bool = False,
        learnable: Iterable[str] = (),
        **overrides: Any,
    ) -> None:
        super().__init__(p, dt, learnable, **overrides)
        check_layer_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.autapses = autapses
        scale = math.sqrt(2.0 / hidden_size)
        self.input_weights = nn.Parameter(torch.randn(hidden_size, input_size) * scale)
        self.recurrent_weights = nn.Parameter(torch.randn(hidden_size, hidden_size) * scale)
        if not autapses:
            self.register_buffer("_autapse_mask", 1.0 - torch.eye(hidden_size))

    def effective_recurrent_weights(self) -> torch.Tensor:
        """Recurrent weights with self-connections zeroed unless ``autapses``."""
        if self.autapses:
            return self.recurrent_weights
        return self.recurrent_weights * self._autapse_mask

    def initial_state(self, like: torch.Tensor) -> RecurrentState:
        """No spikes and the resting neuron state, for a ``[batch, hidden]`` layer."""
        zeros = like.new_zeros(like.shape[0], self.hidden_size)
        return RecurrentState(zeros, self.model.initial_state(self.p, zeros))

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"autapses={self.autapses}, {super().extra_repr()}"
        )


class NeuronRecurrentCell(_RecurrentWeights):
    """One recurrent step: input current ``W_in x + W_rec z_prev``; input ``[batch, input]``."""

    def forward(
        self, x: torch.Tensor, state: RecurrentState | None = None
    ) -> tuple[torch.Tensor, RecurrentState]:
        check_features(self, x, "[batch, input_size]")
        if state is None:
            state = self.initial_state(x)
        p = self.p
        current = x @ self.input_weights.t() + state.z @ self.effective_recurrent_weights().t()
        z, neuron = self.model.step(current, state.neuron, p, self.dt, True)
        return z, RecurrentState(z, neuron)


class NeuronRecurrent(_RecurrentWeights):
    """A recurrent layer over a time-first sequence ``[T, batch, input_size]``.

    Returns ``(spikes [T, batch, hidden], RecurrentState)`` (the trajectory with
    ``record_states=True``). ``backend`` as in :class:`NeuronSequence`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: Any = None,
        dt: float = 1e-3,
        autapses: bool = False,
        learnable: Iterable[str] = (),
        record_states: bool = False,
        backend: str = "auto",
        **overrides: Any,
    ) -> None:
        super().__init__(input_size, hidden_size, p, dt, autapses, learnable, **overrides)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
        if backend == "fused" and self.model.fused_recurrent_sequence is None:
            raise ValueError(
                f"backend 'fused' is not available for recurrent {self.model.prefix} neurons"
            )
        self.record_states = record_states
        self.backend = backend

    def forward(
        self, x: torch.Tensor, state: RecurrentState | None = None
    ) -> tuple[torch.Tensor, Any]:
        check_features(self, x, "[T, batch, input_size]")
        if state is None:
            state = self.initial_state(x[0])
        fused = self.model.fused_recurrent_sequence
        use_fused = fused is not None and not self.record_states and self.backend in FUSING
        loop = (
            compiled_recurrent_sequence
            if self.backend == "compiled"
            else reference_recurrent_sequence
        )
        run = fused if use_fused else loop
        return run(
            self.model,
            x,
            state,
            self.input_weights,
            self.effective_recurrent_weights(),
            self.p,
            self.dt,
            self.record_states,
        )


def _model_doc(model: NeuronModel) -> str:
    module = sys.modules.get(model.step.__module__)
    return (module.__doc__ or "") if module else ""
