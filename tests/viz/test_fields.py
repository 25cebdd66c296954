"""Receptive-field images: dense weights reshaped to the input image, kernels, the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeexp.viz import field_grid, field_images, receptive_field_figure


def test_dense_weights_become_input_images() -> None:
    weights = torch.arange(3 * 12, dtype=torch.float32).reshape(3, 12)
    images = field_images(weights, (1, 3, 4))
    assert images.shape == (3, 3, 4)
    assert images[1, 2, 3] == 12 + 11
    with pytest.raises(ValueError, match=r"input_shape must be \[C, H, W\] with C\*H\*W = 12"):
        field_images(weights, (1, 5, 5))
    with pytest.raises(ValueError, match="input_shape is needed"):
        field_images(weights)


def test_kernels_are_averaged_over_channels_unless_rgb() -> None:
    kernels = torch.rand(4, 2, 3, 3)
    np.testing.assert_allclose(field_images(kernels), kernels.mean(1).numpy(), rtol=1e-6)
    assert field_images(torch.rand(4, 3, 3, 3)).shape == (4, 3, 3, 3)


def test_grid_layout_scale_and_fill() -> None:
    images = np.stack([np.full((2, 2), value) for value in (1.0, 2.0, 3.0, 4.0, 5.0)])
    grid = field_grid(images, gap=1, fill=-1.0)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)  # 3 columns, 2 rows of 2x2 cells
    assert grid[0, 0] == 0.0 and grid[3, 3] == 1.0  # first and fifth image, scaled together
    assert grid[0, 2] == -1.0 and grid[3, 6] == -1.0  # a gap and the empty sixth cell


def test_figure_of_receptive_fields() -> None:
    figure = receptive_field_figure(torch.rand(10, 64), (1, 8, 8), title="fields")
    assert figure.axes[0].get_title() == "fields"
