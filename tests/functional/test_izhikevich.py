"""Izhikevich model in seconds: steps by hand, presets, firing patterns."""

from __future__ import annotations

import itertools

import pytest
import torch

from spikeexp.functional.neurons.izhikevich import (
    PRESETS,
    IzhikevichParameters,
    IzhikevichState,
    izhikevich_initial_state,
    izhikevich_preset,
    izhikevich_step,
    resolve_izhikevich,
    validate_izhikevich,
)


def _state(v: float, u: float) -> IzhikevichState:
    return IzhikevichState(
        torch.tensor([v], dtype=torch.float64), torch.tensor([u], dtype=torch.float64)
    )


def _spike_times_ms(preset: str, current: float, dt: float, duration: float = 0.2) -> list[float]:
    p = izhikevich_preset(preset)
    x = torch.full((1,), current, dtype=torch.float64)
    state = izhikevich_initial_state(p, x)
    times = []
    for step in range(round(duration / dt)):
        z, state = izhikevich_step(x, state, p, dt)
        if float(z):
            times.append(step * dt * 1e3)
    return times


def test_sub_threshold_step_by_hand() -> None:
    # tonic spiking: a = 0.02 / ms = 20 1/s, b = 0.2; dt = 0.5 ms
    z, state = izhikevich_step(
        torch.tensor([10.0], dtype=torch.float64), _state(-65.0, -13.0), dt=0.5e-3
    )
    assert float(z) == 0.0
    assert float(state.v) == pytest.approx(-65.0 + 0.5 * (0.04 * 65**2 - 5 * 65 + 140 + 13 + 10))
    assert float(state.u) == pytest.approx(-13.0 + 0.5e-3 * 20.0 * (0.2 * -65.0 + 13.0))


def test_spike_resets_v_to_c_and_adds_d_to_u() -> None:
    z, state = izhikevich_step(
        torch.tensor([10.0], dtype=torch.float64), _state(29.0, -13.0), dt=0.5e-3
    )
    assert float(z) == 1.0
    assert float(state.v) == -65.0
    assert float(state.u) == pytest.approx(-13.0 + 0.5e-3 * 20.0 * (0.2 * 29.0 + 13.0) + 6.0)


def test_presets_are_in_seconds() -> None:
    assert izhikevich_preset("fast_spiking").a == pytest.approx(100.0)  # 0.1 / ms
    assert izhikevich_preset("tonic_bursting")._replace(preset="x")[1:5] == (20.0, 0.2, -50.0, 2.0)
    assert {"tonic_spiking", "phasic_spiking", "tonic_bursting", "regular_spiking"} <= set(PRESETS)


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"preset must be one of tonic_spiking, .* \(got 'x'\)"):
        izhikevich_preset("x")
    with pytest.raises(ValueError, match=r"preset must be one of .*custom"):
        validate_izhikevich(IzhikevichParameters(preset="x"), 1e-3)


def test_explicit_values_override_the_preset() -> None:
    p = resolve_izhikevich(IzhikevichParameters(preset="tonic_bursting", d=3.0))
    assert (p.a, p.b, p.c, p.d) == (20.0, 0.2, -50.0, 3.0)


def test_custom_needs_all_four_coefficients() -> None:
    with pytest.raises(ValueError, match="b must be set when preset is 'custom'"):
        resolve_izhikevich(IzhikevichParameters(preset="custom", a=20.0))
    custom = IzhikevichParameters(preset="custom", a=20.0, b=0.2, c=-60.0, d=5.0)
    assert resolve_izhikevich(custom) == custom


def test_initial_state_at_c() -> None:
    state = izhikevich_initial_state(izhikevich_preset("tonic_bursting"), torch.zeros(2, 3))
    assert torch.all(state.v == -50.0) and torch.all(state.u == -10.0)
    assert state.v.shape == (2, 3)


def test_phasic_spiking_fires_once() -> None:
    assert len(_spike_times_ms("phasic_spiking", 0.5, 0.25e-3)) == 1


def test_tonic_spiking_settles_to_a_regular_rhythm() -> None:
    times = _spike_times_ms("tonic_spiking", 14.0, 0.25e-3)
    intervals = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 6
    assert max(intervals[-3:]) - min(intervals[-3:]) <= 0.5


def test_tonic_bursting_alternates_bursts_and_pauses() -> None:
    times = _spike_times_ms("tonic_bursting", 15.0, 0.25e-3)
    intervals = [b - a for a, b in itertools.pairwise(times)]
    assert sum(interval < 5.0 for interval in intervals) >= 8  # within bursts
    assert sum(interval > 20.0 for interval in intervals) >= 2  # between bursts


def test_rate_does_not_depend_on_dt() -> None:
    # dt is in seconds: halving it must not change the firing rate (only discretisation error).
    coarse = len(_spike_times_ms("regular_spiking", 10.0, 0.5e-3, 0.5))
    fine = len(_spike_times_ms("regular_spiking", 10.0, 0.25e-3, 0.5))
    assert fine >= 5 and abs(coarse - fine) <= 1


@pytest.mark.parametrize(
    ("p", "dt", "message"),
    [
        (IzhikevichParameters(), 2e-3, r"dt must be <= 0.001 s for the Izhikevich model"),
        (IzhikevichParameters(a=-1.0), 1e-3, r"a must be > 0 \(got -1\)"),
        (IzhikevichParameters(a=2000.0), 1e-3, r"dt \* a must be < 1"),
        (IzhikevichParameters(c=40.0), 1e-3, "v_peak must be > c"),
        (IzhikevichParameters(method="x"), 1e-3, "method must be one of"),
    ],
)
def test_invalid_parameters(p: IzhikevichParameters, dt: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_izhikevich(p, dt)
