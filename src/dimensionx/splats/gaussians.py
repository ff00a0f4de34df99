"""The splat model: 3D Gaussians with spherical-harmonics colours, stored as gsplat's trainer stores them.

Parameters (a ``torch.nn.ParameterDict``, one optimiser each, as gsplat's strategies expect):

- ``means``     [N, 3]      centres, world units
- ``scales``    [N, 3]      log of the standard deviations along the Gaussian's axes
- ``quats``     [N, 4]      rotation as an unnormalised quaternion (w, x, y, z)
- ``opacities`` [N]         logit of the opacity
- ``sh0``       [N, 1, 3]   degree-0 SH coefficient (the diffuse colour)
- ``shN``       [N, K-1, 3] higher SH coefficients, K = (sh_degree + 1) ** 2
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from .render import SH_C0



def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    """Colour in [0, 1] -> the degree-0 coefficient that renders it (gsplat adds 0.5 after SH)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    return sh0 * SH_C0 + 0.5


def nearest_neighbour_scales(points: np.ndarray, k: int = 3) -> np.ndarray:
    """[P, 3] -> [P] root mean square distance of each point to its ``k`` nearest neighbours."""
    k = min(k, len(points) - 1)
    if k < 1:
        return np.ones(len(points))
    distances, _ = cKDTree(points).query(points, k=k + 1)  # [P, k + 1], the first is the point itself
    return np.sqrt((distances[:, 1:] ** 2).mean(axis=1)).clip(min=1e-7)


def init_splats(
    points: np.ndarray,  # [P, 3] world units
    colors: np.ndarray,  # [P, 3] uint8
    sh_degree: int,
    init_opacity: float,
    init_scale: float,
) -> torch.nn.ParameterDict:
    """One isotropic Gaussian per point, as large as its neighbourhood, coloured by the point."""
    n = len(points)
    means = torch.as_tensor(points, dtype=torch.float32)
    scales = torch.log(torch.as_tensor(nearest_neighbour_scales(points) * init_scale, dtype=torch.float32))
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)  # [N, K, 3]
    sh[:, 0] = rgb_to_sh(torch.as_tensor(colors, dtype=torch.float32) / 255.0)
    return torch.nn.ParameterDict({
        "means": torch.nn.Parameter(means),
        "scales": torch.nn.Parameter(scales[:, None].repeat(1, 3)),
        "quats": torch.nn.Parameter(quats),
        "opacities": torch.nn.Parameter(torch.logit(torch.full((n,), init_opacity))),
        "sh0": torch.nn.Parameter(sh[:, :1].contiguous()),
        "shN": torch.nn.Parameter(sh[:, 1:].contiguous()),
    })


def random_points(lo: np.ndarray, hi: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in the box [lo, hi] ([3] each) with random colours: ([n, 3], [n, 3] uint8)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=(n, 3)), rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
