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

With ``reference_times`` the offsets are relative, D(x, t) - mean over t_ref of D(x, t_ref), so
the field cannot hold a time-constant offset (a shift of the whole canonical copy, which a
static scene would otherwise learn as extra capacity); only what changes with time is left to
it. With every time of the grid as references the canonical Gaussians are the scene averaged
over time; with one (the key row's) they are the scene at that time. A time that is one of the
references (every step of the fit with "mean") is read once.

Sampling. The spatial planes are read by ``grid_sample`` at the N positions. A space-time plane
is read at N positions and K times (t and the R references) without ``grid_sample``: bilinear
interpolation is separable, so the plane is first interpolated along time into K rows (a [K, T]
matrix of linear weights, tiny), then along space by a matrix product of the [N, S] linear
weights of the N coordinates (the hat function max(0, 1 - |u - j|) of their cell coordinate u,
exactly the weights of ``grid_sample`` with ``align_corners=True``) with the [S, K x F] rows.
That is the same value as ``grid_sample`` at K x N points, but its backward pass is two matrix
products instead of K x N x F atomic adds into a plane of T x S cells that every Gaussian shares
(on an H200, ``grid_sample``'s backward was a third of a ``mean``-offset iteration).
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
        reference_times: list[float] | None = None,  # R times in [0, 1]: offsets relative to their mean; None: absolute
    ):
        super().__init__()
        self.register_buffer("bounds", bounds.float().clone())
        self.reference_times = None if reference_times is None else [float(t) for t in reference_times]
        self.config = {"resolution": resolution, "time_resolution": time_resolution, "scales": list(scales),
                       "features": features, "width": width, "reference_times": self.reference_times}
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
        references = torch.tensor(self.reference_times or [], dtype=torch.float32)
        self.register_buffer("reference_weights", linear_weights(references * 2 - 1, time_resolution), persistent=False)  # [R, T]

    @staticmethod
    def _head(width: int, size: int) -> torch.nn.Sequential:
        head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
                                   torch.nn.Linear(width, size))
        torch.nn.init.zeros_(head[-1].weight)
        torch.nn.init.zeros_(head[-1].bias)
        return head

    def features(self, means: torch.Tensor, time_weights: torch.Tensor) -> torch.Tensor:
        """[N, 3] world units, [K, T] linear weights of K times over the T time cells -> [N, K, F x scales] plane features."""
        lo, hi = self.bounds
        xyz = (((means - lo) / (hi - lo).clamp_min(1e-6)) * 2 - 1).clamp(-1, 1)  # [N, 3] in [-1, 1] inside the box
        n, k = len(xyz), len(time_weights)
        out = []
        for s in range(len(self.config["scales"])):
            space, space_time = 1.0, 1.0  # products over the planes without time ([N, F]) and with it ([N, K, F])
            for p, (a, b) in enumerate(SPACE_TIME_PAIRS):
                plane = self.planes[6 * s + p][0]  # [F, rows (b), columns (a)]
                if b == 3:
                    rows = torch.einsum("kt,fts->skf", time_weights, plane).flatten(1)  # [S, K x F]: the plane at the K times
                    space_time = space_time * (linear_weights(xyz[:, a], plane.shape[2]) @ rows).view(n, k, -1)
                else:
                    grid = xyz[:, a:b + 1:b - a][None, :, None]  # [1, N, 1, 2]: (column, row) sample points
                    space = space * F.grid_sample(plane[None], grid, align_corners=True).view(-1, n).T  # [N, F]
            out.append(space[:, None] * space_time)  # [N, K, F]
        return torch.cat(out, dim=2)

    def forward(self, means: torch.Tensor, t: float) -> dict[str, torch.Tensor]:
        """Offsets at time ``t`` of Gaussians at ``means`` [N, 3]: {"means": [N, 3], "quats": [N, 4], "scales": [N, 3]}."""
        references = self.reference_times or []
        weights = self.reference_weights  # [R, T]
        if t in references:  # the fit's times are the grid's, the references of "mean": that row is read once
            now, first = references.index(t), 0
        else:
            now, first = 0, 1
            weights = torch.cat([linear_weights(means.new_full((1,), 2 * t - 1), weights.shape[1]), weights])  # filled on the device
        features = self.features(means, weights)  # [N, K, C]: K = R, or 1 + R with t first
        hidden = torch.relu(self.mlp(features.flatten(0, 1)))  # [N K, width]: every head's first layer, its ReLU, once
        out = {name: head[1:](hidden).view(*features.shape[:2], -1) for name, head in self.heads.items()}  # [N, K, size] each
        if self.reference_times is None:
            return {name: o[:, 0] for name, o in out.items()}
        return {name: o[:, now] - o[:, first:].mean(dim=1) for name, o in out.items()}

    def total_variation(self) -> torch.Tensor:
        """Mean squared difference of neighbouring cells over every plane (both directions)."""
        tv = 0.0
        for plane in self.planes:
            tv = tv + (plane[..., 1:, :] - plane[..., :-1, :]).pow(2).mean() + (plane[..., 1:] - plane[..., :-1]).pow(2).mean()
        return tv / len(self.planes)


def linear_weights(coords: torch.Tensor, cells: int) -> torch.Tensor:
    """[P] coordinates in [-1, 1] -> [P, cells] weights of linear interpolation between cell centres, the corners
    at -1 and 1 (``grid_sample``'s ``align_corners=True``): the hat function max(0, 1 - |u - j|) of the cell coordinate u."""
    u = (coords + 1) * (0.5 * (cells - 1))  # [P] in [0, cells - 1]
    return torch.relu(1 - (u[:, None] - torch.arange(cells, device=coords.device, dtype=coords.dtype)).abs())
