r"""Connection geometry: how a weight rule turns per-neuron activity into a weight change.

Every weight rule here is a sum of products of a postsynaptic quantity :math:`a^{post}` and a
presynaptic one :math:`b^{pre}` (a spike and a trace). For a dense connection
(``w [out, in]``) the change of :math:`w_{ij}` is

.. math::
    C(a, b)_{ij} = \sum_{n} a_{n i}\, b_{n j}

summed over the batch :math:`n`. For a 2-d convolution (``w [out, in, kh, kw]``) the same weight
is shared by every output position :math:`l`, so its change is summed over positions as well:

.. math::
    C(a, b)_{o,(c,u,v)} = \sum_{n,l} a_{n o l}\, \mathrm{unfold}(b)_{n (c,u,v) l}

with :math:`\mathrm{unfold}` the patches the convolution sees (``torch.nn.functional.unfold``
with its kernel size, stride, padding and dilation). A convolution is thus the dense rule
applied to every patch: the traces of a patch are the patch of the traces.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IntPair = int | tuple[int, int]


class Dense(NamedTuple):
    """A dense connection ``w [out, in]``; activities ``[batch, in]`` and ``[batch, out]``."""


class Conv2d(NamedTuple):
    """A 2-d convolution ``w [out, in, kh, kw]``; activities ``[batch, C, H, W]``.

    Attributes:
        stride, padding, dilation: as in ``torch.nn.functional.conv2d``.
    """

    stride: IntPair = 1
    padding: IntPair = 0
    dilation: IntPair = 1


Connection = Dense | Conv2d

DENSE = Dense()


def _patches(pre: torch.Tensor, kernel: tuple[int, ...], connection: Conv2d) -> torch.Tensor:
    """The convolution's input patches ``[batch, in * kh * kw, positions]``."""
    return F.unfold(
        pre,
        kernel,
        dilation=connection.dilation,
        padding=connection.padding,
        stride=connection.stride,
    )


def correlate(
    post: torch.Tensor,
    pre: torch.Tensor,
    weight_shape: torch.Size | tuple[int, ...],
    connection: Connection = DENSE,
    per_sample: bool = False,
) -> torch.Tensor:
    """:math:`C(post, pre)` (module docstring), shaped like the weights.

    Args:
        post: postsynaptic activity ``[batch, out]`` or ``[batch, out, H', W']``.
        pre: presynaptic activity ``[batch, in]`` or ``[batch, in, H, W]``.
        weight_shape: shape of the connection's weights.
        connection: :class:`Dense` or :class:`Conv2d` geometry.
        per_sample: keep the batch axis: ``[batch, *weight_shape]`` instead of the batch sum.
    """
    return correlate_sequence(
        post.unsqueeze(0), pre.unsqueeze(0), weight_shape, connection, per_sample
    )


def correlate_sequence(
    post: torch.Tensor,
    pre: torch.Tensor,
    weight_shape: torch.Size | tuple[int, ...],
    connection: Connection = DENSE,
    per_sample: bool = False,
) -> torch.Tensor:
    """:math:`\\sum_t C(post_t, pre_t)` for time-first ``post [T, batch, ...]`` and
    ``pre [T, batch, ...]``, in one contraction; ``[batch, *weight_shape]`` with
    ``per_sample``."""
    steps, batch = post.shape[:2]
    if isinstance(connection, Conv2d):
        patches = _patches(
            pre.reshape(steps * batch, *pre.shape[2:]), tuple(weight_shape[2:]), connection
        )
        patches = patches.reshape(steps, batch, *patches.shape[1:])
        post = post.reshape(steps, batch, post.shape[2], -1)
        equation = "tnol,tnkl->nok" if per_sample else "tnol,tnkl->ok"
        result = torch.einsum(equation, post, patches)
    else:
        result = torch.einsum("tno,tni->noi" if per_sample else "tno,tni->oi", post, pre)
    return result.reshape(batch, *weight_shape) if per_sample else result.reshape(weight_shape)
