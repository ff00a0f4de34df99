"""Splat files that viewers open: the standard 3DGS PLY and antimatter15's ``.splat``.

PLY layout (binary little-endian, one float32 property each, the order graphdeco's 3DGS
writes and SuperSplat / gsplat viewers read): ``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1)
opacity scale_0..2 rot_0..3``. ``f_rest`` is channel-major (all red coefficients, then green,
then blue), ``opacity`` is a logit, ``scale_*`` are logs of standard deviations, ``rot_*`` a
unit quaternion (w, x, y, z). The ``.splat`` format is 32 bytes a splat, largest and most
opaque first: position float32 x3, scale float32 x3 (linear), RGBA uint8, quaternion uint8 x4
(w, x, y, z mapped from [-1, 1] to [0, 255]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from .gaussians import sh_to_rgb


def ply_properties(sh_degree: int) -> list[str]:
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


@torch.no_grad()
def write_ply(splats: torch.nn.ParameterDict, path: Path) -> None:
    n = len(splats["means"])
    sh_degree = int(round((splats["shN"].shape[1] + 1) ** 0.5)) - 1
    columns = torch.cat([
        splats["means"],  # [N, 3]
        torch.zeros(n, 3, device=splats["means"].device),  # normals, unused
        splats["sh0"][:, 0],  # [N, 3]
        splats["shN"].transpose(1, 2).reshape(n, -1),  # [N, 3 (K - 1)], channel-major
        splats["opacities"][:, None],  # [N, 1] logit
        splats["scales"],  # [N, 3] log
        torch.nn.functional.normalize(splats["quats"], dim=-1),  # [N, 4]
    ], dim=1).float().cpu().numpy()  # [N, P], one row per splat in the order of ply_properties
    vertex = columns.view([(name, "f4") for name in ply_properties(sh_degree)]).reshape(n)  # same bytes, named
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


@torch.no_grad()
def write_splat(splats: torch.nn.ParameterDict, path: Path) -> None:
    scales = torch.exp(splats["scales"]).float()  # [N, 3]
    alpha = torch.sigmoid(splats["opacities"]).float()  # [N]
    order = torch.argsort(scales.prod(dim=1) * alpha, descending=True)
    rgba = torch.cat([sh_to_rgb(splats["sh0"][:, 0]).float(), alpha[:, None]], dim=1)  # [N, 4]
    quats = torch.nn.functional.normalize(splats["quats"], dim=-1).float()  # [N, 4]
    record = np.empty(len(order), dtype=[("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                                         ("rotation", "u1", 4)])
    record["position"] = splats["means"][order].float().cpu().numpy()
    record["scale"] = scales[order].cpu().numpy()
    record["rgba"] = (rgba[order] * 255).round().clamp(0, 255).byte().cpu().numpy()
    record["rotation"] = (quats[order] * 128 + 128).round().clamp(0, 255).byte().cpu().numpy()
    path.write_bytes(record.tobytes())


def read_ply(path: Path) -> dict[str, torch.Tensor]:
    """The splats of a standard 3DGS PLY (as :func:`write_ply` writes it), as gsplat's trainer stores them:
    means [N, 3], scales [N, 3] log, quats [N, 4], opacities [N] logit, sh0 [N, 1, 3], shN [N, K-1, 3]."""
    vertex = PlyData.read(str(path))["vertex"]
    names = [p.name for p in vertex.properties]
    n_rest = sum(name.startswith("f_rest_") for name in names)
    column = lambda *keys: np.stack([np.asarray(vertex[k], dtype=np.float32) for k in keys], axis=1)  # noqa: E731
    n = len(vertex.data)
    rest = column(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else np.zeros((n, 0), np.float32)
    return {
        "means": torch.from_numpy(column("x", "y", "z")),
        "scales": torch.from_numpy(column("scale_0", "scale_1", "scale_2")),
        "quats": torch.from_numpy(column("rot_0", "rot_1", "rot_2", "rot_3")),
        "opacities": torch.from_numpy(column("opacity")[:, 0]),
        "sh0": torch.from_numpy(column("f_dc_0", "f_dc_1", "f_dc_2"))[:, None],
        "shN": torch.from_numpy(rest.reshape(n, 3, n_rest // 3)).transpose(1, 2).contiguous(),  # channel-major in the file
    }
