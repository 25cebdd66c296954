"""Stateless maths: neuron parameters/state tuples and step functions, surrogates, encoders.

Nothing here is an ``nn.Module``; everything is a pure function of tensors and NamedTuples.
"""

from spikeexp.functional.neurons import MODELS, NeuronModel
from spikeexp.functional.surrogate import SURROGATES, spike, surrogate_derivative

_EXPORTS: dict[str, object] = {}
for _model in MODELS.values():
    _module = __import__(_model.step.__module__, fromlist=["_"])
    _EXPORTS.update({name: getattr(_module, name) for name in getattr(_module, "__all__", ())})
    _EXPORTS.update(
        {
            _model.parameters.__name__: _model.parameters,
            _model.state.__name__: _model.state,
            _model.step.__name__: _model.step,
        }
    )
globals().update(_EXPORTS)

__all__ = ["MODELS", "SURROGATES", "NeuronModel", "spike", "surrogate_derivative", *_EXPORTS]
