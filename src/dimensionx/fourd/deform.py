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
over time; with one (the key row's) they are the scene at that time. All times are read in
one pass ((1 + R) N sample points), so the relative form costs no extra kernel launches.
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

    @staticmethod
    def _head(width: int, size: int) -> torch.nn.Sequential:
        head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
                                   torch.nn.Linear(width, size))
        torch.nn.init.zeros_(head[-1].weight)
        torch.nn.init.zeros_(head[-1].bias)
        return head

    def features(self, means: torch.Tensor, times: list[float]) -> torch.Tensor:
        """[N, 3] world units, T times in [0, 1] -> [T x N, F x scales] plane features (time-major)."""
        lo, hi = self.bounds
        xyz = (((means - lo) / (hi - lo).clamp_min(1e-6)) * 2 - 1).clamp(-1, 1)  # [N, 3] in [-1, 1] inside the box
        t = torch.cat([torch.full_like(xyz[:, :1], 2 * time - 1) for time in times])  # [T x N, 1]
        xyzt = torch.cat([xyz.repeat(len(times), 1), t], dim=1)  # [T x N, 4]
        out = []
        for s in range(len(self.config["scales"])):
            space, space_time = 1.0, 1.0  # products over the planes without time ([N, F]) and with it ([T x N, F])
            for p, (a, b) in enumerate(SPACE_TIME_PAIRS):
                points = xyzt if b == 3 else xyz
                grid = points[None, :, None, [a, b]]  # [1, P, 1, 2]: (column, row) sample points
                sample = F.grid_sample(self.planes[6 * s + p], grid, align_corners=True)[0, :, :, 0].T  # [P, F]
                if b == 3:
                    space_time = space_time * sample
                else:
                    space = space * sample
            out.append(space.repeat(len(times), 1) * space_time)  # [T x N, F]
        return torch.cat(out, dim=1)

    def forward(self, means: torch.Tensor, t: float) -> dict[str, torch.Tensor]:
        """Offsets at time ``t`` of Gaussians at ``means`` [N, 3]: {"means": [N, 3], "quats": [N, 4], "scales": [N, 3]}."""
        references = self.reference_times or []
        hidden = self.mlp(self.features(means, [t, *references]))  # [(1 + R) N, width]
        n = len(means)
        out = {name: head(hidden) for name, head in self.heads.items()}  # [(1 + R) N, size] each
        if not references:
            return out
        return {name: o[:n] - o[n:].unflatten(0, (len(references), n)).mean(dim=0) for name, o in out.items()}

    def total_variation(self) -> torch.Tensor:
        """Mean squared difference of neighbouring cells over every plane (both directions)."""
        tv = 0.0
        for plane in self.planes:
            tv = tv + (plane[..., 1:, :] - plane[..., :-1, :]).pow(2).mean() + (plane[..., 1:] - plane[..., :-1]).pow(2).mean()
        return tv / len(self.planes)

