"""Files other tools open: the 3DGS PLY, .splat, transforms.json and the COLMAP text model."""

from __future__ import annotations

import json

import numpy as np
import pycolmap
import torch
from plyfile import PlyData

from dimensionx.recon.cameras import (
    Cameras,
    cameras_from_reconstruction,
    cameras_from_transforms,
    reconstruction_from_cameras,
    smooth_path,
    transforms_from_cameras,
)
from dimensionx.splats.export import write_ply, write_splat
from dimensionx.splats.gaussians import init_splats
from recon_synthetic import arc_cameras, intrinsics

STANDARD_3DGS_PROPERTIES = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def trained_looking_splats(n: int = 5) -> torch.nn.ParameterDict:
    rng = np.random.default_rng(0)
    splats = init_splats(rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8), 3, 0.1, 1.0)
    with torch.no_grad():
        splats["shN"].copy_(torch.randn(n, 15, 3))
        splats["quats"].copy_(torch.randn(n, 4))
        splats["scales"].copy_(torch.randn(n, 3) - 3)
        splats["opacities"].copy_(torch.randn(n))
    return splats


def test_ply_has_the_standard_3dgs_layout_and_round_trips(tmp_path):
    splats = trained_looking_splats()
    write_ply(splats, tmp_path / "point_cloud.ply")

    ply = PlyData.read(str(tmp_path / "point_cloud.ply"))
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == STANDARD_3DGS_PROPERTIES
    assert all(p.val_dtype in ("float32", "f4") for p in vertex.properties) and vertex.count == 5
    assert ply.text is False and ply.byte_order == "<"  # binary little-endian, as 3DGS writes it
    column = lambda *names: np.stack([vertex[n] for n in names], axis=1)  # noqa: E731
    np.testing.assert_allclose(column("x", "y", "z"), splats["means"].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["opacity"], splats["opacities"].detach().numpy(), rtol=1e-6)  # logit
    np.testing.assert_allclose(column("scale_0", "scale_1", "scale_2"), splats["scales"].detach().numpy(), rtol=1e-6)
    quats = column("rot_0", "rot_1", "rot_2", "rot_3")
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(column("f_dc_0", "f_dc_1", "f_dc_2"), splats["sh0"][:, 0].detach().numpy(), rtol=1e-6)
    # f_rest is channel-major: the 15 red coefficients first, then green, then blue.
    rest = column(*[f"f_rest_{i}" for i in range(45)]).reshape(5, 3, 15)
    np.testing.assert_allclose(rest.transpose(0, 2, 1), splats["shN"].detach().numpy(), rtol=1e-6)


def test_splat_file_is_32_bytes_a_splat_largest_first(tmp_path):
    splats = trained_looking_splats(6)
    write_splat(splats, tmp_path / "scene.splat")
    data = (tmp_path / "scene.splat").read_bytes()
    assert len(data) == 6 * 32
    records = np.frombuffer(data, dtype=[("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                                         ("rotation", "u1", 4)])
    importance = records["scale"].prod(axis=1) * records["rgba"][:, 3]
    assert (np.diff(importance) <= 1.0).all()  # descending, up to the alpha byte's rounding
    first = int(torch.argmax(torch.exp(splats["scales"]).prod(1) * torch.sigmoid(splats["opacities"])))
    np.testing.assert_allclose(records["position"][0], splats["means"][first].detach().numpy(), rtol=1e-6)
    quat = (records["rotation"][0].astype(float) - 128) / 128
    np.testing.assert_allclose(np.linalg.norm(quat), 1.0, atol=0.02)


def known_cameras() -> Cameras:
    viewmats = arc_cameras(5, 40.0)
    return Cameras([f"frame_{i:05d}.png" for i in range(5)], np.arange(5), viewmats,
                   np.repeat(intrinsics(64, 48)[None], 5, axis=0), 64, 48)


def test_transforms_json_is_opengl_camera_to_world_and_round_trips(tmp_path):
    cameras = known_cameras()
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(transforms_from_cameras(cameras)))

    frame = json.loads(path.read_text())["frames"][0]
    c2w = np.array(frame["transform_matrix"])
    center = cameras.centers()[0]
    np.testing.assert_allclose(c2w[:3, 3], center)
    # OpenGL: the camera looks down its -z axis, here towards the origin.
    np.testing.assert_allclose(-c2w[:3, 2], -center / np.linalg.norm(center), atol=1e-9)
    assert frame["file_path"] == "images/frame_00000.png" and frame["w"] == 64

    back = cameras_from_transforms(path, cameras.names)
    np.testing.assert_allclose(back.viewmats, cameras.viewmats, atol=1e-9)
    np.testing.assert_allclose(back.Ks, cameras.Ks)


def test_colmap_text_model_round_trips_through_pycolmap(tmp_path):
    cameras = known_cameras()
    points = np.random.default_rng(0).normal(size=(7, 3))
    colors = np.full((7, 3), 200, np.uint8)
    reconstruction_from_cameras(cameras, points, colors).write_text(str(tmp_path))
    assert {"cameras.txt", "images.txt", "points3D.txt"} <= {p.name for p in tmp_path.iterdir()}

    back = cameras_from_reconstruction(pycolmap.Reconstruction(str(tmp_path)), cameras.names)
    np.testing.assert_allclose(back.viewmats, cameras.viewmats, atol=1e-9)
    np.testing.assert_allclose(back.Ks, cameras.Ks)


def test_orbit_path_is_smooth_and_follows_the_cameras():
    cameras = known_cameras()
    path = smooth_path(cameras, n_frames=41, sigma=0.0)
    path_centers = -np.einsum("tji,tj->ti", path[:, :3, :3], path[:, :3, 3])
    np.testing.assert_allclose(path_centers[::10], cameras.centers(), atol=1e-9)  # through every camera
    np.testing.assert_allclose(path[::10, :3, :3], cameras.viewmats[:, :3, :3], atol=1e-9)
    steps = np.linalg.norm(np.diff(path_centers, axis=0), axis=1)
    assert steps.max() < 1.5 * steps.mean()  # no jumps
