"""The time-conditioned deformation field of 4D Gaussians (4DGaussians, Wu et al. CVPR 2024, as the paper uses).

A Gaussian at canonical position (x, y, z) at time t in [0, 1] reads six feature planes, three
spatial (xy, xz, yz) and three space-time (xt, yt, zt), by bilinear interpolation; their
features multiply (K-Planes' Hadamard product), the products of the spatial resolutions in
``scales`` are concatenated, and a small MLP turns them into a feature from which three heads
give offsets of position (world units), rotation (added to the quaternion) and log-scale.

Initialisation makes the field start as the identity: the spatial planes are uniform in
[0.1, 0.5], the space-time planes are 1 (a time-independent product), and the heads' last
layers are zero, so before training every Gaussian sits where its canonical copy is. The
total-variation term on the planes smooths them in space and time.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

SPACE_TIME_PAIRS = tuple(itertools.combinations(range(4), 2))  # (x,y) (x,z) (x,t) (y,z) (y,t) (z,t); 3 is time


class HexPlaneField(torch.nn.Module):
    def __init__(
        self,
        bounds: torch.Tensor,  # [2, 3] lower and upper corner of the canonical Gaussians, world units
        resolution: int,  # cells per side of the coarsest spatial plane
        time_resolution: int,  # cells along time
        scales: tuple[int, ...],  # spatial resolution multipliers
        features: int,  # channels per plane
        width: int,  # hidden width of the MLP and heads
    ):
        super().__init__()
        self.register_buffer("bounds", bounds.float().clone())
        self.config = {"resolution": resolution, "time_resolution": time_resolution, "scales": list(scales),
                       "features": features, "width": width}
        self.planes = torch.nn.ParameterList()
        for scale in scales:
            sizes = [resolution * scale] * 3 + [time_resolution]  # cells along x, y, z, t
            for a, b in SPACE_TIME_PAIRS:
                plane = torch.empty(1, features, sizes[b], sizes[a])  # [1, F, rows (b), columns (a)]
                if b == 3:
                    torch.nn.init.ones_(plane)
                else:
                    torch.nn.init.uniform_(plane, 0.1, 0.5)
                self.planes.append(torch.nn.Parameter(plane))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(features * len(scales), width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, width))
        self.heads = torch.nn.ModuleDict({name: self._head(width, size) for name, size in
                                          (("means", 3), ("quats", 4), ("scales", 3))})

    @staticmethod
    def _head(width: int, size: int) -> torch.nn.Sequential:
        head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
                                   torch.nn.Linear(width, size))
        torch.nn.init.zeros_(head[-1].weight)
        torch.nn.init.zeros_(head[-1].bias)
        return head

    def features(self, means: torch.Tensor, t: float) -> torch.Tensor:
        """[N, 3] world units, time in [0, 1] -> [N, F x scales] plane features."""
        lo, hi = self.bounds
        xyz = ((means - lo) / (hi - lo).clamp_min(1e-6)) * 2 - 1  # [N, 3] in [-1, 1] inside the box
        coords = torch.cat([xyz.clamp(-1, 1), torch.full_like(xyz[:, :1], 2 * t - 1)], dim=1)  # [N, 4]
        out = []
        for s in range(len(self.config["scales"])):
            product = 1.0
            for p, (a, b) in enumerate(SPACE_TIME_PAIRS):
                grid = coords[None, :, None, [a, b]]  # [1, N, 1, 2]: (column, row) sample points
                product = product * F.grid_sample(self.planes[6 * s + p], grid, align_corners=True)[0, :, :, 0].T
            out.append(product)  # [N, F]
        return torch.cat(out, dim=1)

    def forward(self, means: torch.Tensor, t: float) -> dict[str, torch.Tensor]:
        """Offsets at time ``t`` of Gaussians at ``means`` [N, 3]: {"means": [N, 3], "quats": [N, 4], "scales": [N, 3]}."""
        hidden = self.mlp(self.features(means, t))
        return {name: head(hidden) for name, head in self.heads.items()}

    def total_variation(self) -> torch.Tensor:
        """Mean squared difference of neighbouring cells over every plane (both directions)."""
        tv = 0.0
        for plane in self.planes:
            tv = tv + (plane[..., 1:, :] - plane[..., :-1, :]).pow(2).mean() + (plane[..., 1:] - plane[..., :-1]).pow(2).mean()
        return tv / len(self.planes)


def deformed(splats: dict[str, torch.Tensor], field: HexPlaneField | None, t: float) -> dict[str, torch.Tensor]:
    """The Gaussians at time ``t``: canonical ``means``/``quats``/``scales`` (log) plus the field's offsets."""
    if field is None:
        return splats
    offsets = field(splats["means"], t)
    return {**splats, **{name: splats[name] + offsets[name] for name in offsets}}
