"""Run an exported digits network (a NIR file) in spikeexp and in Norse, and compare them.

    spikeexp-train                                   # the digits experiment
    spikeexp-export run_dir=outputs/<date>/<time>    # -> <run>/model.nir
    python examples/nir_digits.py outputs/<date>/<time>/model.nir

The file is read by :func:`spikeexp.nir.from_nir` and fed as the digits experiment feeds its
network: each test image as a constant current for ``seq_length`` steps (from the graph's
metadata), logits = maximum readout voltage over time. The script prints that network's test
accuracy and, where Norse is installed (``pip install spikeexp[nir-interop]``), runs the same
file in Norse for the first test images: Norse's spikes of every hidden layer and its readout
input currents (Norse has no ``CubaLI`` node and skips the readout) are compared with spikeexp's.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import warnings

import nir
import torch

from spikeexp.module import ConstantCurrentEncoder
from spikeexp.nir import from_nir
from spikeexp.tasks.digits import DigitsDataModule


def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits experiment's test split (images [N, 1, 8, 8] in [0, 1], labels)."""
    data = DigitsDataModule()
    data.setup("test")
    images, labels = zip(*data.test_dataloader().dataset, strict=True)
    return torch.stack(images), torch.stack(labels)


def norse_comparison(graph: nir.NIRGraph, network, currents: torch.Tensor, count: int) -> str:
    """Run ``count`` samples one at a time in Norse (NIR shapes have no batch dimension, and
    Norse's Flatten would fold one into the features) and compare with spikeexp."""
    import norse.torch as norse

    logging.disable(logging.WARNING)  # Norse warns once per node about fields it ignores
    module = norse.from_nir(graph, dt=float(graph.metadata["dt"]))
    samples = currents[:, :count]
    with torch.no_grad():
        network(samples)
        ours = {name: network.records[name] for name in network.spiking_layers}
        ours["fc_out"] = network.layers.fc_out(ours[network.spiking_layers[-1]])
        identical = dict.fromkeys(ours, 0)
        for sample in range(count):
            state, caches = None, []
            for step in samples[:, sample]:
                _, state = module(step) if state is None else module(step, state)
                caches.append(state.cache)
            for name, values in ours.items():
                theirs = torch.stack([cache[name] for cache in caches])
                if name == "fc_out":  # currents: one matrix product per step in Norse
                    identical[name] += int(torch.allclose(theirs, values[:, sample], atol=1e-5))
                else:
                    identical[name] += int(torch.equal(theirs, values[:, sample]))
    return ", ".join(f"{name} identical in {identical[name]}/{count} samples" for name in ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the NIR file written by spikeexp-export")
    parser.add_argument("--norse-samples", type=int, default=20)
    arguments = parser.parse_args()
    graph = nir.read(arguments.model)
    network = from_nir(graph).eval()
    seq_length = int(graph.metadata.get("seq_length", 32))
    images, labels = test_images()
    currents = ConstantCurrentEncoder(seq_length)(images).contiguous()  # [T, N, 1, 8, 8]
    with torch.no_grad():
        voltages, _ = network(currents)
    accuracy = float((voltages.max(dim=0).values.argmax(dim=1) == labels).float().mean())
    print(f"spikeexp: test accuracy {accuracy:.4f} on {len(labels)} images")
    if importlib.util.find_spec("norse") is None:
        print("Norse: not installed (pip install spikeexp[nir-interop])")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(f"Norse: {norse_comparison(graph, network, currents, arguments.norse_samples)}")


if __name__ == "__main__":
    main()
