"""What every neuron model provides: the contract between `functional` and `module`.

A neuron model is a pair of NamedTuples (parameters with defaults, state) and one pure step
function. :class:`NeuronModel` bundles them so the generic modules in :mod:`spikeexp.module` can
build ``XCell``, ``XRecurrentCell``, ``X`` and ``XRecurrent`` for any model without per-model code.

Conventions (all models):

* ``dt`` and time constants are in seconds, ``*_inv`` fields in 1/s, voltages in arbitrary units
  (threshold 1 by default).
* ``step(input_current, state, p, dt, detach_reset)`` advances one Euler step of length ``dt`` and
  returns ``(output, new_state)``. ``output`` is the spike tensor for spiking models and the
  membrane voltage for non-spiking readouts. ``detach_reset=True`` (used by recurrent layers, as in
  Norse) stops gradients through the reset term.
* ``initial_state(p, like)`` returns the resting state shaped, typed and placed like ``like``.
* ``validate(p, dt)`` raises ``ValueError`` naming the parameter, the bad value and the valid range.
* ``resolve(p)`` (optional) fills fields derived from others, e.g. the Izhikevich ``a, b, c, d``
  of a named preset; :meth:`NeuronModel.prepare` applies it before validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

StepFunction = Callable[..., tuple[torch.Tensor, Any]]


@dataclass(frozen=True)
class NeuronModel:
    """Everything the generic modules need to know about one neuron model.

    Attributes:
        name: config name (``lif``), also the ``neuron=`` option in ``conf/neuron/``.
        prefix: class-name prefix of the generated modules (``LIF`` -> ``LIFCell`` ...).
        parameters: the parameters NamedTuple class (fields with defaults).
        state: the state NamedTuple class.
        step: the one-step function, see the module docstring.
        initial_state: ``(p, like) -> state`` at rest.
        validate: ``(p, dt) -> None``, raises ``ValueError`` on invalid values.
        spiking: ``True`` if ``step`` returns spikes (0/1), ``False`` for voltage readouts.
        rate_constants: names of inverse time constants (1/s); learnable ones are clamped to
            ``(0, 1/dt)`` so explicit Euler stays stable during training.
        sigmoid_rates: rate constants ``r`` that, when learnable, are stored as
            ``w = logit(dt * r)`` and used as ``r = sigmoid(w) / dt`` (Fang et al. 2021): always
            inside ``(0, 1/dt)``, with a gradient everywhere (a clamp has none outside).
        resolve: optional ``p -> p`` that fills derived fields (presets); ``None`` if none.
        fused_sequence: optional whole-sequence fast path with the signature of
            :func:`spikeexp.functional.unroll.reference_sequence`; ``None`` if the model has none.
        fused_recurrent_sequence: optional fast path for recurrent layers, signature of
            :func:`spikeexp.functional.unroll.reference_recurrent_sequence`.
    """

    name: str
    prefix: str
    parameters: type[NamedTuple]
    state: type[NamedTuple]
    step: StepFunction
    initial_state: Callable[[Any, torch.Tensor], Any]
    validate: Callable[[Any, float], None]
    spiking: bool = True
    rate_constants: tuple[str, ...] = field(default=())
    sigmoid_rates: tuple[str, ...] = field(default=())
    resolve: Callable[[Any], Any] | None = None
    fused_sequence: Callable[..., Any] | None = None
    fused_recurrent_sequence: Callable[..., Any] | None = None

    def check_type(self, p: Any) -> None:
        """Reject a parameter tuple of another model (Norse silently ignores those)."""
        if not isinstance(p, self.parameters):
            raise ValueError(
                f"{self.prefix} neurons need {self.parameters.__name__} "
                f"(got {type(p).__name__}); valid: {self.parameters.__name__}(...)"
            )

    def check_parameters(self, p: Any, dt: float) -> None:
        """Reject a parameter tuple of another model, then validate the values."""
        self.check_type(p)
        self.validate(p, dt)

    def prepare(self, p: Any, dt: float) -> Any:
        """Check the tuple type, fill derived fields (``resolve``), validate; return the tuple."""
        self.check_type(p)
        if self.resolve is not None:
            p = self.resolve(p)
        self.validate(p, dt)
        return p
