"""``dimensionx render4d SCENE --export OUT``: one 3DGS PLY per time, a .splatv, the camera path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData

from dimensionx.fourd.deform import HexPlaneField
from dimensionx.fourd.export import SPLATV_MAGIC, read_splatv
from dimensionx.fourd.store import save_scene
from dimensionx.splats.gaussians import init_splats
from recon_synthetic import arc_cameras, intrinsics

ROOT = Path(__file__).resolve().parents[1]
TIMES = [0.0, 0.25, 0.5, 0.75, 1.0]


def dimensionx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *args], capture_output=True, text=True, cwd=ROOT)


def cubic_field(bounds: torch.Tensor) -> HexPlaneField:
    """A field whose position offsets are a cubic polynomial of time: positive planes varying linearly along
    two time cells, positive weights (every ReLU passes), so each offset is a product of three linear
    functions of t fed through linear layers."""
    torch.manual_seed(0)
    field = HexPlaneField(bounds, 4, 2, (1,), 4, 8)
    with torch.no_grad():
        for plane in field.planes:
            plane.uniform_(0.2, 1.0)
        for module in [*field.mlp, *[layer for head in field.heads.values() for layer in head]]:
            if isinstance(module, torch.nn.Linear):
                module.weight.uniform_(0.0, 0.3)
                module.bias.uniform_(0.0, 0.1)
        field.heads["scales"][-1].weight.mul_(0.01)
    return field


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, dict, HexPlaneField]:
    folder = tmp_path_factory.mktemp("scene4d") / "scene4d"
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (300, 3))
    splats = init_splats(points, rng.integers(0, 256, (300, 3), dtype=np.uint8), 1, 0.5, 1.0)
    field = cubic_field(torch.tensor([[-1.0] * 3, [1.0] * 3]))
    viewmats = arc_cameras(5, 40.0)
    save_scene(folder, splats, field, TIMES, viewmats, np.repeat(intrinsics(96, 64)[None], 5, 0), 96, 64)
    return folder, {k: v.detach() for k, v in splats.items()}, field


@pytest.fixture(scope="module")
def exported(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "flag4d"
    result = dimensionx("render4d", str(scene[0].parent), "--export", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"exported to {out}" in result.stdout
    return out


def positions_at(splats: dict, field: HexPlaneField, t: float) -> np.ndarray:
    with torch.no_grad():
        return (splats["means"] + field(splats["means"], t)["means"]).numpy()


def test_one_ply_per_time_holds_the_field_at_that_time(scene, exported):
    _, splats, field = scene
    names = sorted(p.name for p in exported.glob("time_*.ply"))
    assert names == [f"time_{m:04d}.ply" for m in range(len(TIMES))]
    first = None
    for name, t in zip(names, TIMES):
        vertex = PlyData.read(str(exported / name))["vertex"]
        xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
        np.testing.assert_allclose(xyz, positions_at(splats, field, t), atol=1e-5)  # same order as the canonical file
        first = xyz if first is None else first
        assert [p.name for p in vertex.properties][:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert np.abs(xyz - first).max() > 0.05  # the scene moves between the first and last files


def test_times_flag_exports_evenly_spaced_times(scene, tmp_path):
    _, splats, field = scene
    result = dimensionx("render4d", str(scene[0]), "--export", str(tmp_path / "three"), "--frames", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    vertex = PlyData.read(str(tmp_path / "three" / "time_0001.ply"))["vertex"]
    np.testing.assert_allclose(np.stack([vertex["x"], vertex["y"], vertex["z"]], 1), positions_at(splats, field, 0.5), atol=1e-5)
    transforms = json.loads((tmp_path / "three" / "transforms.json").read_text())
    assert sorted({f["time"] for f in transforms["frames"]}) == [0.0, 0.5, 1.0]


def test_splatv_plays_the_field(scene, exported):
    _, splats, field = scene
    raw = (exported / "scene.splatv").read_bytes()
    magic, size = np.frombuffer(raw[:8], "<u4")
    assert magic == SPLATV_MAGIC == 0x674B
    (chunk,) = json.loads(raw[8:8 + size])
    assert chunk["type"] == "splat" and chunk["texwidth"] == 4096
    assert chunk["size"] == chunk["texwidth"] * chunk["texheight"] * 16 == len(raw) - 8 - size  # RGBA32UI texels
    assert len(chunk["cameras"]) == 5 and chunk["cameras"][0]["width"] == 96
    _, records = read_splatv(exported / "scene.splatv")
    n = len(splats["means"])
    assert records.itemsize == 64 and np.all(records["rgba"][n:] == 0)
    center, scale = records["trbf"][0].astype(np.float64)
    m = records["motion"][:n, :9].astype(np.float64).reshape(n, 3, 3)  # [N, power, xyz]
    for t in (0.0, 0.3, 0.5, 0.9, 1.0):  # the viewer's formula, also between the grid's times
        dt = t - center
        assert np.exp(-(dt / scale) ** 2) > 0.99  # shown at every time
        played = records["position"][:n] + m[:, 0] * dt + m[:, 1] * dt ** 2 + m[:, 2] * dt ** 3
        np.testing.assert_allclose(played, positions_at(splats, field, t), atol=2e-3)


def test_camera_path_has_a_time_per_frame(exported):
    transforms = json.loads((exported / "transforms.json").read_text())
    assert len(transforms["frames"]) == 5 * len(TIMES)
    by_time = {f["time"]: f["splats"] for f in transforms["frames"]}
    assert by_time == {t: f"time_{m:04d}.ply" for m, t in enumerate(TIMES)}
    assert (exported / by_time[1.0]).is_file()


def test_export_refuses_an_existing_folder_and_a_missing_scene(scene, exported, tmp_path):
    result = dimensionx("render4d", str(scene[0]), "--export", str(exported))
    assert result.returncode == 2 and "already exists: pass --overwrite" in result.stderr
    result = dimensionx("render4d", str(tmp_path), "--export", str(tmp_path / "out"))
    assert result.returncode == 2 and "lacks canonical.ply" in result.stderr and not (tmp_path / "out").exists()
