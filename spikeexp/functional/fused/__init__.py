"""Fused whole-sequence neuron kernels: the ``fused`` backend of the sequence modules.

* :func:`~spikeexp.functional.fused.lif.lif_fused_sequence`: feed-forward LIF over ``[T, ...]``.
* :func:`~spikeexp.functional.fused.lsnn.lsnn_fused_sequence`: feed-forward LSNN.
* :func:`~spikeexp.functional.fused.li.li_fused_sequence`: the leaky-integrator readout.
* :func:`~spikeexp.functional.fused.lif.lif_fused_recurrent_sequence` and
  :func:`~spikeexp.functional.fused.lsnn.lsnn_fused_recurrent_sequence`: recurrent layers.
* :func:`~spikeexp.functional.fused.pool.max_pool2d`: non-overlapping max pooling that saves the
  window position of each maximum as one byte (``torch.nn.functional.max_pool2d`` saves int64
  indices), with the same values and gradients.

Each is a drop-in for the reference unroll of :mod:`spikeexp.functional.unroll` (same signature and
results), running custom operators (:mod:`spikeexp.functional.fused.ops`) whose CPU
implementation is C++ kernels compiled at first use (:mod:`spikeexp.functional.fused.build`),
with the pure-PyTorch step loop as fallback. Design: docs/guide/performance.md; measurements:
docs/results.md.
"""
