"""What every plasticity rule provides: the contract between ``functional`` and ``module``.

A rule is, like a neuron model, a pair of NamedTuples (parameters with defaults, state) and one
pure step function. :class:`PlasticityRule` bundles them so that the plastic connections of
:mod:`spikeexp.module.plastic` can run any rule without per-rule code. Two kinds exist:

* ``kind="weight"`` (STDP, triplet STDP, reward-modulated STDP): long-term plasticity of a
  connection's weights. ``step(z_pre, z_post, w, state, p, dt, connection)`` returns
  ``(dw, state)``: the weight change of this step (``w + dw`` respects the rule's hard bounds)
  and the new state. Modulated rules (``modulated=True``) take a ``reward`` argument as well.
  ``initial_state(p, pre, post, w)`` gives the state at rest for spikes shaped like ``pre``
  (``[batch, in...]``) and ``post`` (``[batch, out...]``) and weights like ``w``.
* ``kind="transmission"`` (Tsodyks-Markram short-term plasticity): a per-presynaptic-neuron
  modulation of what a spike transmits; the weights do not change.
  ``step(z_pre, state, p, dt)`` returns ``(released, state)``, ``initial_state(p, like)``.

Conventions (all rules): time in seconds, inverse time constants ``*_inv`` in 1/s, traces with
a unit jump per spike and an exact exponential decay :math:`e^{-\\Delta t/\\tau}` per step (see
:mod:`spikeexp.functional.plasticity.traces`), weights in the units of the connection.
``validate(p, dt)`` raises ``ValueError`` with one line naming the parameter, the bad value and
the valid range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

KINDS = ("weight", "transmission")


@dataclass(frozen=True)
class PlasticityRule:
    """Everything the plastic connections need to know about one rule.

    Attributes:
        name: config name (``stdp``), the ``rule:`` value in ``conf/plasticity/``.
        parameters: the parameters NamedTuple class (fields with defaults).
        state: the state NamedTuple class.
        step: the one-step function (module docstring).
        initial_state: the state at rest (signature depends on ``kind``, module docstring).
        validate: ``(p, dt) -> None``, raises ``ValueError`` on invalid values.
        kind: ``"weight"`` or ``"transmission"``.
        modulated: the step takes a ``reward`` (reward-modulated rules).
        sequence: optional whole-sequence fast path for weight rules with the signature of
            :func:`spikeexp.functional.plasticity.sequence.reference_weight_sequence` (weights
            held fixed over the sequence); exact against that reference loop.
        resolve: optional ``p -> p`` filling fields from a named preset before validation.
    """

    name: str
    parameters: type[NamedTuple]
    state: type[NamedTuple]
    step: Callable[..., tuple[Any, Any]]
    initial_state: Callable[..., Any]
    validate: Callable[[Any, float], None]
    kind: str = "weight"
    modulated: bool = False
    sequence: Callable[..., Any] | None = None
    resolve: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {self.kind!r})")

    def check_type(self, p: Any) -> None:
        """Reject a parameter tuple of another rule."""
        if not isinstance(p, self.parameters):
            raise ValueError(
                f"the {self.name} rule needs {self.parameters.__name__} "
                f"(got {type(p).__name__}); valid: {self.parameters.__name__}(...)"
            )

    def prepare(self, p: Any, dt: float) -> Any:
        """Check the tuple type, fill preset fields (``resolve``), validate; return the tuple."""
        self.check_type(p)
        if self.resolve is not None:
            p = self.resolve(p)
        self.validate(p, dt)
        return p
