"""The web viewers' files read back as their viewers read them: ``.splat`` against antimatter15's own
PLY -> .splat conversion, ``.splatv`` colours, scales and cameras against splaTV's reading of them.

The references are written here from the viewers' sources (antimatter15/splat ``convert.py``, splaTV's
``getViewMatrix`` and shader), not from the exporter: SH_C0 is spelled out, activations applied here.
"""

from __future__ import annotations

import numpy as np
import torch
from plyfile import PlyData

from dimensionx.fourd.export import read_splatv, write_splatv
from dimensionx.splats.export import write_ply, write_splat
from recon_synthetic import arc_cameras, intrinsics

SH_C0 = 0.28209479177387814  # the degree-0 spherical harmonic, 1 / (2 sqrt(pi))


def splats(n: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussians with colours inside [0, 1], opacities away from 0 and 1, random rotations and sizes."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(n, 3, generator=g) * 0.8 + 0.1
    return {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g) * 0.5 - 2.5,  # log
        "quats": torch.randn(n, 4, generator=g),  # w, x, y, z, unnormalised
        "opacities": torch.randn(n, generator=g),  # logit
        "sh0": ((rgb - 0.5) / SH_C0)[:, None],
        "shN": torch.zeros(n, 3, 3),
    }


def antimatter15_convert(ply_path) -> np.ndarray:
    """antimatter15/splat's convert.py on a 3DGS PLY: [N, 32] bytes, largest and most opaque first."""
    v = PlyData.read(str(ply_path))["vertex"]
    scale = np.exp(np.stack([v["scale_0"], v["scale_1"], v["scale_2"]], 1).astype(np.float64))
    opacity = 1 / (1 + np.exp(-np.asarray(v["opacity"], np.float64)))
    order = np.argsort(-scale.prod(1) * opacity)
    colour = np.stack([0.5 + SH_C0 * v["f_dc_0"], 0.5 + SH_C0 * v["f_dc_1"], 0.5 + SH_C0 * v["f_dc_2"], opacity], 1)
    rot = np.stack([v["rot_0"], v["rot_1"], v["rot_2"], v["rot_3"]], 1).astype(np.float64)
    rot = rot / np.linalg.norm(rot, axis=1, keepdims=True)
    position = np.stack([v["x"], v["y"], v["z"]], 1)
    return np.concatenate([
        position.astype("<f4").view(np.uint8).reshape(-1, 12), scale.astype("<f4").view(np.uint8).reshape(-1, 12),
        (colour * 255).clip(0, 255).round().astype(np.uint8), (rot * 128 + 128).clip(0, 255).round().astype(np.uint8),
    ], axis=1)[order]


def test_splat_file_is_antimatter15s_conversion_of_the_ply(tmp_path):
    gaussians = splats()
    write_ply(gaussians, tmp_path / "scene.ply")
    write_splat(gaussians, tmp_path / "scene.splat")
    ours = np.frombuffer((tmp_path / "scene.splat").read_bytes(), np.uint8).reshape(-1, 32)
    theirs = antimatter15_convert(tmp_path / "scene.ply")
    floats = lambda rows: rows[:, :24].copy().view("<f4")  # noqa: E731  position, scale
    np.testing.assert_allclose(floats(ours), floats(theirs), rtol=1e-6)
    # colour RGBA and the quaternion (w, x, y, z), a byte each: equal up to rounding
    assert np.abs(ours[:, 24:].astype(int) - theirs[:, 24:].astype(int)).max() <= 1


def test_splatv_colours_scales_and_cameras_are_what_splatv_reads(tmp_path):
    gaussians = splats()
    velocity = torch.randn(len(gaussians["means"]), 3, generator=torch.Generator().manual_seed(1))
    field = lambda means, t: {"means": velocity * t}  # noqa: E731  moves, keeps size and rotation
    viewmats, K = arc_cameras(3, 40.0), intrinsics(96, 64)
    write_splatv(gaussians, field, viewmats, np.repeat(K[None], 3, 0), 96, 64, tmp_path / "scene.splatv")
    (chunk,), records = read_splatv(tmp_path / "scene.splatv")
    n = len(velocity)

    # the shader's colour: RGBA bytes, colour from the degree-0 SH, alpha the opacity (sigmoid of the logit)
    rgb = 0.5 + SH_C0 * gaussians["sh0"][:, 0].numpy()
    alpha = 1 / (1 + np.exp(-gaussians["opacities"].numpy()))
    expected = np.round(np.concatenate([rgb, alpha[:, None]], 1) * 255)
    assert np.abs(records["rgba"][:n].astype(float) - expected).max() <= 1
    # scales are standard deviations (the shader squares them into the covariance), not their logs
    np.testing.assert_allclose(records["scale"][:n, :3].astype(np.float64), np.exp(gaussians["scales"].numpy()),
                               rtol=2e-3)

    # splaTV's getViewMatrix: rotation rows R and position t give the world-to-camera [R^T, -R^T t]
    for camera, viewmat in zip(chunk["cameras"], viewmats):
        R, t = np.array(camera["rotation"]), np.array(camera["position"])
        view = np.eye(4)
        view[:3, :3], view[:3, 3] = R.T, -R.T @ t
        np.testing.assert_allclose(view, viewmat, atol=1e-9)
        assert (camera["fx"], camera["fy"], camera["width"], camera["height"]) == (K[0, 0], K[1, 1], 96, 64)
