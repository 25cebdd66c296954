"""Step one LIF neuron with the functional API: parameters, state and the step function.

    python examples/functional_neuron.py

A constant input current of 1 drives a current-based LIF neuron (Norse's defaults: dt = 1 ms,
tau_syn_inv = 200 1/s, tau_mem_inv = 100 1/s, v_th = 1). The voltage climbs 0.1, 0.27, 0.487,
0.7335, 0.9963, crosses the threshold at the sixth step, resets to 0 and climbs again.
"""

from __future__ import annotations

import argparse

import torch

import spikeexp as snn


def simulate(steps: int, current: float) -> tuple[list[float], list[int]]:
    """The membrane voltage after each step and the steps at which the neuron spiked."""
    p = snn.LIFParameters()
    state = snn.LIFState(v=torch.zeros(1), i=torch.zeros(1))
    voltages, spikes = [], []
    for step in range(steps):
        z, state = snn.lif_step(torch.tensor([current]), state, p, dt=1e-3)
        voltages.append(float(state.v))
        if z.item() > 0:
            spikes.append(step)
    return voltages, spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--current", type=float, default=1.0)
    arguments = parser.parse_args()
    voltages, spikes = simulate(arguments.steps, arguments.current)
    for step, voltage in enumerate(voltages):
        marker = "  spike" if step in spikes else ""
        print(f"step {step:3d}  v = {voltage:.4f}{marker}")
    print(f"spikes at steps {spikes}")


if __name__ == "__main__":
    main()
