"""The deformation field reads its planes as a HexPlane does: bilinear ``grid_sample`` at (space, time) points.

The field samples its space-time planes by separable interpolation and matrix products, not by
``grid_sample``; these tests hold it to a plain ``grid_sample`` HexPlane written here from the
method's definition, in values and in gradients, for times on and between the time cells and for
Gaussians inside and outside the field's box.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from dimensionx.fourd.deform import HexPlaneField

PAIRS = list(itertools.combinations(range(4), 2))  # plane (a, b) spans coordinates a (columns) and b (rows); 3 is time
SCALES = (1, 2)


def reference_offsets(field: HexPlaneField, means: torch.Tensor, t: float) -> dict[str, torch.Tensor]:
    """HexPlane by ``grid_sample`` at every (point, time): features, MLP, heads, minus the mean over the reference times."""
    lo, hi = field.bounds
    xyz = ((means - lo) / (hi - lo) * 2 - 1).clamp(-1, 1)

    def heads_at(time: float) -> dict[str, torch.Tensor]:
        xyzt = torch.cat([xyz, torch.full_like(xyz[:, :1], 2 * time - 1)], dim=1)
        features = []
        for s in range(len(SCALES)):
            product = 1.0
            for p, (a, b) in enumerate(PAIRS):
                grid = xyzt[:, [a, b]][None, :, None]  # [1, N, 1, 2]
                product = product * F.grid_sample(field.planes[6 * s + p], grid, align_corners=True)[0, :, :, 0].T
            features.append(product)
        hidden = field.mlp(torch.cat(features, dim=1))
        return {name: head(hidden) for name, head in field.heads.items()}

    now = heads_at(t)
    if field.reference_times is None:
        return now
    references = [heads_at(r) for r in field.reference_times]
    return {name: now[name] - torch.stack([r[name] for r in references]).mean(dim=0) for name in now}


def random_field(reference_times) -> HexPlaneField:
    field = HexPlaneField(torch.tensor([[-1.0, -2.0, -0.5], [1.0, 2.0, 0.5]]), 4, 5, SCALES, 3, 16, reference_times)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in field.parameters():  # the identity initialisation would hide the planes' layout
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return field


@pytest.mark.parametrize("reference_times", [None, [0.5], [0.0, 0.25, 0.5, 0.75, 1.0]], ids=["absolute", "key", "mean"])
@pytest.mark.parametrize("t", [0.0, 0.25, 0.4, 0.5, 1.0])  # on time cells (5 cells: 0, 0.25, ...), between them, at both ends
def test_field_equals_a_grid_sample_hexplane(reference_times, t):
    field = random_field(reference_times)
    generator = torch.Generator().manual_seed(2)
    means = (torch.randn(300, 3, generator=generator) * torch.tensor([0.8, 1.6, 0.4])).requires_grad_()  # ~10% outside the box
    assert ((means.abs() > torch.tensor([1.0, 2.0, 0.5])).any(dim=1)).sum() > 10  # clamped points are covered
    weights = {name: torch.randn(300, size, generator=generator) for name, size in (("means", 3), ("quats", 4), ("scales", 3))}

    def value_and_gradients(offsets):
        loss = sum((offsets[name] * weights[name]).sum() for name in offsets)
        return offsets, torch.autograd.grad(loss, [means, *field.parameters()])

    got, got_gradients = value_and_gradients(field(means, t))
    want, want_gradients = value_and_gradients(reference_offsets(field, means, t))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4 * want[name].abs().max().item() + 1e-6)
    names = ["means"] + [name for name, _ in field.named_parameters()]
    for name, g, w in zip(names, got_gradients, want_gradients):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4 * w.abs().max().item() + 1e-5, msg=lambda m: f"{name}: {m}")

