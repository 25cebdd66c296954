"""NIR interchange: export spikeexp networks as NIR graphs and build networks from NIR graphs.

NIR (the Neuromorphic Intermediate Representation, https://neuroir.org) describes spiking
networks as graphs of continuous-time nodes; Norse, snnTorch, SpikingJelly, Sinabs, Rockpool,
Lava and SpiNNaker2 read it. ::

    from spikeexp.nir import export_nir, from_nir

    graph = export_nir(network.eval(), "model.nir")      # spikeexp -> file
    network = from_nir("model.nir")                      # file -> spikeexp

* :mod:`spikeexp.nir.conventions`: the discrete-time reading of NIR's equations (dt, spike size,
  update order) that makes both directions exact, recorded in every exported graph.
* :mod:`spikeexp.nir.neurons`: each neuron model's node, both ways, and what has none.
* :mod:`spikeexp.nir.export`: :func:`to_nir`, :func:`write_nir`, :func:`export_nir`.
* :mod:`spikeexp.nir.load`: :func:`from_nir`, :func:`read_nir`.
"""

from spikeexp.nir.conventions import NIRExportError, NIRImportError
from spikeexp.nir.export import export_nir, to_nir, write_nir
from spikeexp.nir.load import from_nir, read_nir

__all__ = [
    "NIRExportError",
    "NIRImportError",
    "export_nir",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]
