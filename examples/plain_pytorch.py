"""A spiking network from spikeexp's modules, trained in a plain PyTorch loop (no Lightning,
no Hydra) on scikit-learn's 8x8 digits.

    python examples/plain_pytorch.py --epochs 10

The 64 pixel values are fed as a constant current for ``--steps`` steps of 1 ms into 128 LIF
neurons; a leaky-integrator readout is decoded by its maximum voltage over time. The time loop
and the neuron-state resets are the modules' business: ``network(x)`` takes the whole time-first
sequence ``[T, batch, features]`` and starts from rest.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import spikeexp as snn


def digits(seed: int) -> tuple[torch.Tensor, ...]:
    """Train and test splits of the digits, pixels scaled to [0, 1]."""
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32) / 16.0
    y = torch.tensor(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


def build(hidden: int, steps: int) -> nn.Module:
    """Encoder -> Linear -> LIF -> Linear -> LI, max over time."""
    network = snn.SequentialState(
        snn.Lift(nn.Linear(64, hidden)),
        snn.LIF(),
        snn.Lift(nn.Linear(hidden, 10)),
        snn.LI(),
    )
    encoder = snn.ConstantCurrentEncoder(seq_length=steps)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.network, self.decoder = encoder, network, snn.MaxOverTime()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            readout, _ = self.network(self.encoder(x))
            return self.decoder(readout)

    return Classifier()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    torch.manual_seed(arguments.seed)
    x_train, y_train, x_test, y_test = digits(arguments.seed)
    model = build(arguments.hidden, arguments.steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(arguments.epochs):
        model.train()
        for batch in torch.randperm(len(x_train)).split(32):
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
