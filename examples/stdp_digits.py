"""Unsupervised STDP learning of the 8x8 digits with spikeexp's modules in a plain PyTorch loop
(no Lightning, no Hydra), in the style of Diehl & Cook (2015).

    python examples/stdp_digits.py --neurons 400 --epochs 6 --png fields.png

Poisson spikes (200 Hz x pixel) drive a plastic connection (pair STDP, weight normalisation)
into a competitive layer (lateral inhibition, adaptive thresholds). No labels are used for
learning: afterwards every neuron is labelled with the class it responds to most on the training
set, and a test image is classified by the vote of the labelled neurons.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits

import spikeexp as snn
from spikeexp.viz import receptive_field_figure


def digits(seed: int) -> tuple[torch.Tensor, ...]:
    """Train and test splits of the digits, pixels scaled to [0, 1]."""
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32) / 16.0
    y = torch.tensor(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


def spike_counts(encoder, connection, layer, x: torch.Tensor) -> torch.Tensor:
    """Spikes per neuron ``[samples, neurons]``, learning off (evaluation mode)."""
    connection.eval()
    layer.eval()
    with torch.no_grad():
        counts = [layer(connection(encoder(batch)))[0].sum(0) for batch in x.split(64)]
    return torch.cat(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default=None, help="save the receptive fields to this file")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = digits(args.seed)

    encoder = snn.PoissonEncoder(seq_length=args.steps, f_max=200.0, seed=args.seed)
    connection = snn.PlasticLinear(
        64,
        args.neurons,
        "stdp",
        a_plus=1e-2,  # potentiation at postsynaptic spikes
        a_minus=1e-4,  # depression at presynaptic spikes
        init_range=[0.0, 0.3],
        normalize=6.4,  # each neuron's incoming weights sum to 0.1 per input
    )
    layer = snn.CompetitiveLIF(args.neurons, inhibition=20.0, theta_plus=0.05)

    for epoch in range(args.epochs):
        connection.train()
        layer.train()
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(epoch))
        with torch.no_grad():
            for batch in x_train[order].split(8):
                spikes, _ = layer(connection(encoder(batch)))
                connection.observe(spikes)  # the STDP update of this batch
        counts = spike_counts(encoder, connection, layer, x_train)
        means = torch.stack([counts[y_train == k].mean(0) for k in range(10)])
        labels = means.argmax(0)
        test_counts = spike_counts(encoder, connection, layer, x_test)
        votes = torch.stack(
            [
                test_counts[:, labels == k].mean(1)
                if (labels == k).any()
                else torch.zeros(len(x_test))
                for k in range(10)
            ],
            dim=1,
        )
        accuracy = (votes.argmax(1) == y_test).float().mean()
        print(f"epoch {epoch}: test accuracy {accuracy:.4f}", flush=True)
    if args.png:
        figure = receptive_field_figure(connection.weight, (1, 8, 8), title="receptive fields")
        figure.savefig(args.png)
        print(f"receptive fields: {args.png}")


if __name__ == "__main__":
    main()
