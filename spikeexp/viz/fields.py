"""Receptive fields: the incoming weights of each neuron of a connection shown as images.

A neuron of a dense connection fed by an image ``[C, H, W]`` (flattened) has ``C * H * W``
incoming weights: reshaped, they show what input drives it (the learnt digit prototypes of a
Diehl & Cook network). A convolution's kernels ``[out, in, k, k]`` are shown the same way, averaged
over input channels unless there are exactly 3 (then as colour).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spikeexp.viz.figures import ArrayLike, to_numpy


def field_images(weights: ArrayLike, input_shape: Sequence[int] | None = None) -> np.ndarray:
    """One image per postsynaptic neuron, ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (colour),
    from dense weights ``[N, C*H*W]`` with ``input_shape = (C, H, W)`` or conv weights
    ``[N, C, k, k]``."""
    array = to_numpy(weights)
    if array.ndim == 2:
        if input_shape is None:
            raise ValueError("input_shape is needed to show dense weights as images (got None)")
        shape = tuple(int(size) for size in input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or math.prod(shape) != array.shape[1]:
            raise ValueError(
                f"input_shape must be [C, H, W] with C*H*W = {array.shape[1]} inputs "
                f"(got {list(input_shape)})"
            )
        array = array.reshape(array.shape[0], *shape)
    if array.ndim != 4:
        raise ValueError(f"weights must be [N, inputs] or [N, C, k, k] (got shape {array.shape})")
    if array.shape[1] == 3:
        return array.transpose(0, 2, 3, 1)
    return array.mean(axis=1)


def field_grid(
    images: np.ndarray, columns: int | None = None, gap: int = 1, fill: float = 0.5
) -> np.ndarray:
    """The images ``[N, H, W(, 3)]`` tiled on a grid (``columns`` per row, default about
    ``sqrt(N)``) with ``gap`` pixels between them, scaled to [0, 1] together (one colour scale for
    all neurons); gaps and empty cells hold ``fill``."""
    count, height, width = images.shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    low, high = float(images.min()), float(images.max())
    scaled = (images - low) / (high - low) if high > low else np.zeros_like(images)
    grid = np.full(
        (rows * (height + gap) - gap, columns * (width + gap) - gap, *images.shape[3:]), fill
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top : top + height, left : left + width] = scaled[index]
    return grid


def receptive_field_figure(
    weights: ArrayLike,
    input_shape: Sequence[int] | None = None,
    columns: int | None = None,
    title: str | None = None,
) -> Figure:
    """The receptive fields of all neurons of a connection on one grid, with a colour bar of the
    weight values (grey images; colour inputs are averaged)."""
    images = field_images(weights, input_shape)
    if images.ndim == 4:
        images = images.mean(axis=3)
    grid = field_grid(images, columns, fill=np.nan)
    low, high = float(images.min()), float(images.max())
    figure = Figure(figsize=(6.4, 6.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = matplotlib.colormaps["hot_r"].with_extremes(bad="white")
    shown = axes.imshow(low + grid * (high - low), cmap=colours, vmin=low, vmax=high)
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title)
    figure.colorbar(shown, ax=axes, shrink=0.8, label="weight")
    return figure
