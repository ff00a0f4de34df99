"""The 4D field's total-variation regulariser against its definition, cell by cell."""

from __future__ import annotations

import pytest
import torch

from dimensionx.fourd.deform import HexPlaneField


def test_total_variation_is_the_mean_squared_neighbour_difference_over_planes_and_directions():
    field = HexPlaneField(torch.tensor([[-1.0, -2.0, -0.5], [1.0, 2.0, 0.5]]), 4, 5, (1, 2), 3, 16, None)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for plane in field.planes:
            plane.copy_(torch.randn(plane.shape, generator=g))
    per_plane = []
    for plane in field.planes:
        grid = plane[0].detach().double()  # [F, rows, columns]
        f, rows, columns = grid.shape
        down = sum(float(grid[:, i + 1, j].sub(grid[:, i, j]).pow(2).sum()) for i in range(rows - 1) for j in range(columns))
        right = sum(float(grid[:, i, j + 1].sub(grid[:, i, j]).pow(2).sum()) for i in range(rows) for j in range(columns - 1))
        per_plane.append(down / (f * (rows - 1) * columns) + right / (f * rows * (columns - 1)))
    assert field.total_variation().item() == pytest.approx(sum(per_plane) / len(per_plane), rel=1e-6)
