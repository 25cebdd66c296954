"""The generic modules for every neuron model in MODELS: cells, sequences, recurrence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import spikeexp as snn
import spikeexp.conf
from spikeexp.functional.neurons import MODELS, NeuronModel
from spikeexp.module import NEURON_MODULES, RecurrentState

CONF = Path(spikeexp.conf.__file__).parent
ALL = sorted(MODELS)
SPIKING = sorted(name for name, model in MODELS.items() if model.spiking)
# Input scale that makes each model fire within a few steps (Izhikevich works in mV).
DRIVE = {"izhikevich": 15.0, "iaf": 0.6}
LEARNING_RATE = {"izhikevich": 0.01}


def _module(name: str, suffix: str, *args: Any, **kwargs: Any) -> nn.Module:
    model = MODELS[name]
    return NEURON_MODULES[f"{model.prefix}{suffix}"](*args, **kwargs)


def _drive(name: str, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(*shape, dtype=dtype) * DRIVE.get(name, 3.0)


def _assert_states_equal(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for field_a, field_b in zip(a, b, strict=True):
        if isinstance(field_a, tuple):
            _assert_states_equal(field_a, field_b)
        else:
            torch.testing.assert_close(field_a, field_b)


def test_every_model_gets_its_modules_at_the_top_level() -> None:
    for model in MODELS.values():
        suffixes = ("Cell", "", "RecurrentCell", "Recurrent") if model.spiking else ("Cell", "")
        for suffix in suffixes:
            assert getattr(snn, f"{model.prefix}{suffix}") is NEURON_MODULES[model.prefix + suffix]
        assert getattr(snn, model.parameters.__name__) is model.parameters
    assert {"lif", "li", "lsnn", "iaf", "lif_box", "izhikevich", "lif_adex", "plif"} <= set(MODELS)


@pytest.mark.parametrize("name", ALL)
def test_cell_and_sequence_agree(name: str) -> None:
    x = _drive(name, 12, 3, 5)
    cell = _module(name, "Cell")
    outputs, state = [], None
    for x_t in x:
        out, state = cell(x_t, state)
        outputs.append(out)
    sequence_out, sequence_state = _module(name, "")(x)
    torch.testing.assert_close(sequence_out, torch.stack(outputs))
    _assert_states_equal(sequence_state, state)
    if MODELS[name].spiking:
        assert 0 < float(sequence_out.sum()) < sequence_out.numel()


@pytest.mark.parametrize("name", ALL)
def test_state_carries_over_between_calls(name: str) -> None:
    x = _drive(name, 16, 2, 4)
    layer = _module(name, "")
    whole, whole_state = layer(x)
    first, state = layer(x[:8])
    second, state = layer(x[8:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    _assert_states_equal(state, whole_state)


@pytest.mark.parametrize("name", SPIKING)
def test_recurrent_state_carries_over_between_calls(name: str) -> None:
    x = _drive(name, 16, 2, 3)
    layer = _module(name, "Recurrent", 3, 6)
    whole, whole_state = layer(x)
    first, state = layer(x[:8])
    second, state = layer(x[8:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    _assert_states_equal(state.neuron, whole_state.neuron)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_dtypes_propagate(name: str, dtype: torch.dtype) -> None:
    x = _drive(name, 6, 2, 3, dtype=dtype)
    layer = _module(name, "").to(dtype)
    out, state = layer(x)
    assert out.dtype == dtype
    assert all(field.dtype == dtype for field in state)
    cell_out, cell_state = _module(name, "Cell").to(dtype)(x[0])
    assert cell_out.dtype == dtype and all(field.dtype == dtype for field in cell_state)


@pytest.mark.parametrize("name", ALL)
def test_float32_and_float64_agree(name: str) -> None:
    x = _drive(name, 6, 2, 3, dtype=torch.float64)
    out64, state64 = _module(name, "").double()(x)
    out32, state32 = _module(name, "")(x.float())
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(state32[0].double(), state64[0], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ALL)
def test_record_states_returns_the_trajectory(name: str) -> None:
    x = _drive(name, 7, 2, 3)
    out, trajectory = _module(name, "", record_states=True)(x)
    _, final = _module(name, "")(x)
    assert isinstance(trajectory, MODELS[name].state)
    for recorded, last in zip(trajectory, final, strict=True):
        assert recorded.shape == (7, 2, 3)
        torch.testing.assert_close(recorded[-1], last)
    assert out.shape == (7, 2, 3)


@pytest.mark.parametrize("name", SPIKING)
def test_recurrent_record_states(name: str) -> None:
    _, trajectory = _module(name, "Recurrent", 3, 5, record_states=True)(_drive(name, 7, 2, 3))
    assert trajectory.z.shape == (7, 2, 5)
    assert all(field.shape == (7, 2, 5) for field in trajectory.neuron)


@pytest.mark.parametrize("name", ALL)
def test_state_none_builds_the_resting_state(name: str) -> None:
    model: NeuronModel = MODELS[name]
    cell = _module(name, "Cell").double()
    x = torch.zeros(2, 3, 4, dtype=torch.float64)
    rest = cell.initial_state(x)
    assert all(f.shape == (2, 3, 4) and f.dtype == torch.float64 for f in rest)
    _, state = cell(x)
    _, expected = model.step(x, rest, cell.p, cell.dt)
    _assert_states_equal(state, expected)
    if model.spiking:
        recurrent_rest = _module(name, "RecurrentCell", 4, 6).initial_state(torch.zeros(5, 4))
        assert recurrent_rest.z.shape == (5, 6)
        assert all(f.shape == (5, 6) for f in recurrent_rest.neuron)


@pytest.mark.parametrize("name", ALL)
def test_conv_feature_maps(name: str) -> None:
    x = _drive(name, 5, 2, 3, 4, 4)
    out, state = _module(name, "")(x)
    assert out.shape == x.shape
    assert all(f.shape == (2, 3, 4, 4) for f in state)
    flat, _ = _module(name, "")(x.reshape(5, 2, -1))
    torch.testing.assert_close(out.reshape(5, 2, -1), flat)


@pytest.mark.parametrize("name", SPIKING)
def test_recurrent_cell_step_by_hand(name: str) -> None:
    model = MODELS[name]
    cell = _module(name, "RecurrentCell", 3, 4, autapses=True).double()
    with torch.no_grad():
        cell.input_weights.abs_()  # excitatory input: every neuron fires within a few steps
    x = _drive(name, 20, 2, 3, dtype=torch.float64)
    z, state = cell(x[0])
    steps = 1
    while z.sum().item() == 0:  # step on until fed-back spikes matter in the step checked
        z, state = cell(x[steps], state)
        steps += 1
    z_last, state_last = cell(x[steps], state)
    current = x[steps] @ cell.input_weights.t() + z @ cell.recurrent_weights.t()
    z_expected, neuron_expected = model.step(current, state.neuron, cell.p, cell.dt, True)
    torch.testing.assert_close(z_last, z_expected)
    _assert_states_equal(state_last, RecurrentState(z_expected, neuron_expected))


@pytest.mark.parametrize("name", SPIKING)
def test_recurrent_sequence_equals_recurrent_cell_loop(name: str) -> None:
    layer = _module(name, "Recurrent", 3, 4)
    cell = _module(name, "RecurrentCell", 3, 4)
    cell.load_state_dict(layer.state_dict())
    x = _drive(name, 10, 2, 3)
    outputs, state = [], None
    for x_t in x:
        out, state = cell(x_t, state)
        outputs.append(out)
    sequence_out, sequence_state = layer(x)
    torch.testing.assert_close(sequence_out, torch.stack(outputs))
    _assert_states_equal(sequence_state, state)


@pytest.mark.parametrize("name", SPIKING)
def test_no_autapses_keeps_the_diagonal_out(name: str) -> None:
    layer = _module(name, "Recurrent", 3, 5, autapses=False)
    assert torch.all(torch.diagonal(layer.effective_recurrent_weights()) == 0)
    x = _drive(name, 10, 2, 3)
    before, _ = layer(x)
    with torch.no_grad():
        layer.recurrent_weights.diagonal().add_(5.0)
    after, _ = layer(x)
    torch.testing.assert_close(before, after)
    after.sum().backward()
    assert torch.all(torch.diagonal(layer.recurrent_weights.grad) == 0)
    with_autapses = _module(name, "Recurrent", 3, 5, autapses=True)
    assert torch.equal(with_autapses.effective_recurrent_weights(), with_autapses.recurrent_weights)


def _numeric_fields(name: str) -> list[str]:
    p = _module(name, "Cell").p
    return [field for field, value in zip(p._fields, p, strict=True) if not isinstance(value, str)]


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_is_learnable(name: str) -> None:
    model = MODELS[name]
    x = _drive(name, 8, 2, 3)
    for field in _numeric_fields(name):
        if field == "alpha":
            continue  # surrogate sharpness shapes the backward pass only
        layer = _module(name, "", learnable=(field,))
        parameters = dict(layer.named_parameters())
        assert len(parameters) == 1, field
        out, state = layer(x)
        (out.sum() + sum(f.sum() for f in state)).backward()
        (parameter,) = parameters.values()
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), field
        if field in model.rate_constants:
            with torch.no_grad():
                parameter.fill_(1e6)
            assert 0 < getattr(layer.p, field).item() < 1.0 / layer.dt
            with torch.no_grad():
                parameter.fill_(-1e6)
            assert 0 < getattr(layer.p, field).item() < 1.0 / layer.dt


@pytest.mark.parametrize("name", ALL)
def test_per_neuron_tensors_match_floats(name: str) -> None:
    x = _drive(name, 8, 2, 3)
    reference, _ = _module(name, "")(x)
    p = _module(name, "").p
    tensors = {
        field: torch.full((3,), float(value))
        for field, value in zip(p._fields, p, strict=True)
        if not isinstance(value, str) and field != "alpha"
    }
    layer = _module(name, "", **tensors)
    assert set(dict(layer.named_buffers())) >= set(tensors)
    out, _ = layer(x)
    torch.testing.assert_close(out, reference)


def test_per_neuron_threshold_differs_per_neuron() -> None:
    x = torch.full((50, 1, 2), 1.5)
    spikes, _ = snn.LIF(v_th=torch.tensor([0.5, 1.2]))(x)
    counts = spikes.sum(dim=(0, 1))
    assert counts[0] > counts[1] > 0


@pytest.mark.parametrize("name", ALL)
def test_trains_a_tiny_problem_through_its_surrogate(name: str) -> None:
    # Only the weights *before* the neurons learn, so every gradient passes the spike function.
    torch.manual_seed(1)
    x = torch.rand(10, 32, 4)
    target = (x[..., 0].mean(0) > x[..., 1].mean(0)).long()
    weights = nn.Linear(4, 16)
    neurons = _module(name, "")
    readout = torch.randn(2, 16) * 4
    scale = DRIVE.get(name, 3.0)
    optimiser = torch.optim.Adam(weights.parameters(), lr=LEARNING_RATE.get(name, 0.05))
    losses = []
    for _ in range(60):
        out, _ = neurons(weights(x) * scale)
        loss = nn.functional.cross_entropy(out.mean(0) @ readout.t(), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.75 * losses[0], losses


@pytest.mark.parametrize("name", ALL)
def test_wrong_parameter_tuple_is_rejected(name: str) -> None:
    other = next(model for key, model in MODELS.items() if key != name)
    model = MODELS[name]
    with pytest.raises(
        ValueError, match=f"{model.prefix} neurons need {model.parameters.__name__}"
    ):
        _module(name, "Cell", p=other.parameters())


@pytest.mark.parametrize("name", ALL)
def test_invalid_values_fail_at_construction(name: str) -> None:
    with pytest.raises(ValueError, match=r"dt must be > 0 \(got 0\)"):
        _module(name, "", dt=0.0)
    with pytest.raises(ValueError, match=r"unknown .* parameter 'tau'; valid: "):
        _module(name, "Cell", tau=1.0)
    with pytest.raises(ValueError, match="learnable parameter 'nope' is not a numeric"):
        _module(name, "", learnable=("nope",))
    model = MODELS[name]
    for rate in model.rate_constants:
        with pytest.raises(ValueError, match=f"{rate} must be > 0"):
            _module(name, "", **{rate: -1.0})
        with pytest.raises(ValueError, match=rf"dt \* {rate} must be < 1"):
            _module(name, "", dt=1e-3, **{rate: 1000.0})
    if model.spiking:
        with pytest.raises(ValueError, match="method must be one of super, sigmoid"):
            _module(name, "", method="bogus")
    if "v_th" in model.parameters._fields:
        with pytest.raises(ValueError, match="v_th must be > v_reset"):
            _module(name, "", v_th=-1.0)


@pytest.mark.parametrize(
    ("module", "field", "value", "message"),
    [
        ("LSNN", "adaptation", "maass", "adaptation must be one of norse, bellec"),
        ("LIFBox", "reset", "zero", "reset must be one of value, subtract"),
        ("Izhikevich", "preset", "bursty", "preset must be one of tonic_spiking"),
    ],
)
def test_invalid_choices_fail_at_construction(
    module: str, field: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        NEURON_MODULES[module](**{field: value})


def test_izhikevich_preset_from_keyword() -> None:
    cell = snn.IzhikevichCell(preset="fast_spiking", dt=0.5e-3)
    assert (cell.p.a, cell.p.b, cell.p.c, cell.p.d) == (100.0, 0.2, -65.0, 2.0)
    assert snn.IzhikevichCell(preset="fast_spiking", d=4.0).p.d == 4.0


@pytest.mark.parametrize("name", ALL)
def test_wrong_input_shapes_name_the_layout(name: str) -> None:
    with pytest.raises(ValueError, match=r"time-first input \[T, batch, \.\.\.\]"):
        _module(name, "")(torch.ones(5))
    if MODELS[name].spiking:
        with pytest.raises(ValueError, match=r"expects input \[batch, input_size\] with input_si"):
            _module(name, "RecurrentCell", 3, 4)(torch.ones(2, 5))
        with pytest.raises(ValueError, match=r"expects input \[T, batch, input_size\]"):
            _module(name, "Recurrent", 3, 4)(torch.ones(2, 3))


@pytest.mark.parametrize("name", ALL)
def test_config_file_lists_every_parameter_and_builds_the_modules(name: str) -> None:
    model = MODELS[name]
    config = OmegaConf.load(CONF / "neuron" / f"{name}.yaml")
    assert config.model == name
    params = {key: config[key] for key in config if key not in ("model", "dt", "learnable")}
    assert list(params) == list(model.parameters._fields)
    params = OmegaConf.to_container(OmegaConf.create(params))
    learnable = list(config.learnable)
    defaults = model.parameters()._asdict()
    assert params == defaults
    suffixes = ("Cell", "", "RecurrentCell", "Recurrent") if model.spiking else ("Cell", "")
    for suffix in suffixes:
        sizes = (3, 4) if "Recurrent" in suffix else ()
        NEURON_MODULES[f"{model.prefix}{suffix}"](*sizes, dt=1e-3, learnable=learnable, **params)
