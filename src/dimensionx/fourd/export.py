"""A 4D scene as files other tools open (``dimensionx render4d SCENE --export OUT``):

- ``time_0000.ply``, ``time_0001.ply``, ...: the Gaussians at each time, each a standard 3DGS PLY
  (as ``splats/export.py`` writes it), the same Gaussians in the same order in every file: the
  sequence layout SuperSplat's and nerfstudio's viewers step through;
- ``scene.splatv``: the scene for the splaTV web viewer (antimatter15/splaTV, MIT), one file that
  plays in time;
- ``transforms.json``: the camera path, one frame per (time, view), each with its ``time`` in [0, 1]
  and the ``splats`` file of that time.

``.splatv`` layout (little-endian): uint32 magic ``0x674b``, uint32 byte length of a JSON list of
chunks, the JSON, then each chunk's bytes in order. One chunk here: ``{"type": "splat", "size",
"texwidth", "texheight", "cameras"}``, an RGBA32UI texture of ``texwidth`` (4096) x ``texheight``
texels holding 64 bytes a splat (4 texels, so 1024 splats a row, zero-padded to whole rows):

=========  =====================================================================================
uint32 0-2 position at ``trbf_center``, float32 x3
3-4        rotation quaternion (w, x, y, z), float16 x4
5-6        scale (linear standard deviations) float16 x3, then a float16 0
7          colour RGBA, uint8 x4
8-12       motion: position += m0-2 dt + m3-5 dt^2 + m6-8 dt^3, float16 x9, then a float16 0
13-14      rotation += omega0-3 dt (then normalised), float16 x4
15         ``trbf_center`` and ``trbf_scale``, float16 x2: opacity x exp(-((t - center) / scale)^2)
=========  =====================================================================================

with dt = t - ``trbf_center`` and t the viewer's time in [0, 1]. The viewer plays polynomials, the
scene holds a HexPlane field: each Gaussian's path is fitted by least squares over
``SPLATV_SAMPLES`` times (position cubic, rotation linear in dt, scale its mean over time), centred
at t = 0.5, and never fades (``trbf_scale`` large). Colours are the degree-0 SH (no view dependence).
Cameras: ``{"id", "img_name", "width", "height", "position" (centre), "rotation" (camera-to-world
rows, OpenCV axes), "fx", "fy"}``, the views of the scene's camera path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..errors import DimensionXError
from ..outputs import atomic_dir, check_output_dir
from ..splats.export import write_ply
from ..splats.gaussians import sh_to_rgb
from .store import cameras_of, load_scene, transforms_4d

MAX_EXPORT_TIMES = 1000  # times exported, one PLY of every Gaussian each (300 000 Gaussians: 74 MB a time)
SPLATV_MAGIC = 0x674B
SPLATV_TEXTURE_WIDTH = 4096  # texels a row; 4 texels (16 uint32) a splat
SPLATV_SAMPLES = 17  # times at which each Gaussian's path is sampled for the polynomial fit
SPLATV_CENTER = 0.5  # trbf_center: the time the polynomials are expanded around
SPLATV_NEVER_FADES = 1000.0  # trbf_scale: exp(-(0.5 / 1000)^2) = 1 - 2.5e-7, the Gaussian is always shown
SPLATV_RECORD = np.dtype([("position", "<f4", 3), ("rotation", "<f2", 4), ("scale", "<f2", 4), ("rgba", "u1", 4),
                          ("motion", "<f2", 10), ("omega", "<f2", 4), ("trbf", "<f2", 2)])  # 64 bytes


def check_export_times(times: int | None) -> None:
    if times is not None and not 1 <= times <= MAX_EXPORT_TIMES:
        raise DimensionXError(f"--frames {times}: export 1 to {MAX_EXPORT_TIMES} times, one PLY each (or leave --frames "
                              "out for the grid's times)")


def export_times(scene_times: list[float], times: int | None) -> list[float]:
    """The grid's times (``times`` None), or ``times`` evenly spaced over [0, 1]."""
    if times is None:
        return [float(t) for t in scene_times]
    return np.linspace(0.0, 1.0, times).tolist() if times > 1 else [SPLATV_CENTER]


@torch.no_grad()
def gaussians_at(splats: dict[str, torch.Tensor], field, t: float) -> dict[str, torch.Tensor]:
    """The canonical ``splats`` moved by ``field`` to time ``t`` (means, quats, scales offset; the rest as is)."""
    offsets = field(splats["means"], t)
    return {k: splats[k] + offsets[k] if k in offsets else splats[k] for k in splats}


def export_4d(scene: Path, out: Path, times: int | None = None, overwrite: bool = False) -> list[Path]:
    """Writes the 4D scene ``scene`` (a ``scene4d/`` folder) into the folder ``out``, atomically: one PLY per
    time, ``scene.splatv`` and ``transforms.json``. ``times``: how many evenly spaced times in [0, 1]
    (None: the grid's). Returns the written files."""
    check_output_dir(out, overwrite)
    check_export_times(times)  # before the scene loads
    splats, field, info, transforms = load_scene(scene)
    values = export_times(info["times"], times)
    viewmats, Ks, width, height = cameras_of(transforms)
    names = [f"time_{m:04d}.ply" for m in range(len(values))]
    with atomic_dir(out, overwrite) as folder:
        for name, t in zip(names, values):
            write_ply(gaussians_at(splats, field, t), folder / name)
        write_splatv(splats, field, viewmats, Ks, width, height, folder / "scene.splatv")
        camera_path = transforms_4d(viewmats, Ks, width, height, values)
        for frame in camera_path["frames"]:
            del frame["file_path"]  # no images here: each frame names the splats of its time instead
            frame["splats"] = names[values.index(frame["time"])]
        write_json(camera_path, folder / "transforms.json")
    return [out / name for name in (*names, "scene.splatv", "transforms.json")]


@torch.no_grad()
def splatv_motion(splats: dict[str, torch.Tensor], field) -> dict[str, np.ndarray]:
    """Least-squares polynomials in dt = t - ``SPLATV_CENTER`` of each Gaussian's path over ``SPLATV_SAMPLES``
    times: {"position" [N, 3] (constant), "motion" [N, 9] (dt, dt^2, dt^3 x xyz), "rotation" [N, 4],
    "omega" [N, 4], "scale" [N, 3] linear}."""
    dt = np.linspace(0.0, 1.0, SPLATV_SAMPLES) - SPLATV_CENTER  # [S]
    moved = [gaussians_at(splats, field, float(d + SPLATV_CENTER)) for d in dt]
    means = torch.stack([g["means"] for g in moved]).double().numpy()  # [S, N, 3]
    quats = torch.stack([g["quats"] for g in moved]).double().numpy()  # [S, N, 4]
    log_scales = torch.stack([g["scales"] for g in moved]).double().numpy()  # [S, N, 3]
    s, n = means.shape[:2]
    cubic = np.linalg.lstsq(np.vander(dt, 4, increasing=True), means.reshape(s, -1), rcond=None)[0].reshape(4, n, 3)
    linear = np.linalg.lstsq(np.vander(dt, 2, increasing=True), quats.reshape(s, -1), rcond=None)[0].reshape(2, n, 4)
    return {"position": cubic[0], "motion": cubic[1:].transpose(1, 0, 2).reshape(n, 9),
            "rotation": linear[0], "omega": linear[1], "scale": np.exp(log_scales.mean(axis=0))}


def write_splatv(splats: dict[str, torch.Tensor], field, viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int,
                 path: Path) -> None:
    """``path``: the splaTV file of the canonical ``splats`` moved by ``field``, with the cameras ``viewmats``
    [K, 4, 4] (world-to-camera, OpenCV) and ``Ks`` [K, 3, 3] px of ``width`` x ``height`` frames."""
    fitted = splatv_motion(splats, field)
    n = len(fitted["position"])
    per_row = SPLATV_TEXTURE_WIDTH // 4
    texheight = max(1, -(-n // per_row))
    record = np.zeros(texheight * per_row, dtype=SPLATV_RECORD)  # zero rows: opacity 0, drawn as nothing
    record["position"][:n] = fitted["position"]
    record["rotation"][:n] = fitted["rotation"]
    record["scale"][:n, :3] = fitted["scale"]
    rgba = torch.cat([sh_to_rgb(splats["sh0"][:, 0]), torch.sigmoid(splats["opacities"])[:, None]], dim=1)  # [N, 4]
    record["rgba"][:n] = (rgba.clamp(0, 1) * 255).round().byte().numpy()
    record["motion"][:n, :9] = fitted["motion"]
    record["omega"][:n] = fitted["omega"]
    record["trbf"][:n] = (SPLATV_CENTER, SPLATV_NEVER_FADES)
    c2w = np.linalg.inv(viewmats)  # [K, 4, 4]
    cameras = [{"id": k, "img_name": f"view_{k:02d}", "width": width, "height": height, "position": c2w[k, :3, 3].tolist(),
                "rotation": c2w[k, :3, :3].tolist(), "fx": float(Ks[k, 0, 0]), "fy": float(Ks[k, 1, 1])}
               for k in range(len(viewmats))]
    chunks = json.dumps([{"type": "splat", "size": record.nbytes, "texwidth": SPLATV_TEXTURE_WIDTH, "texheight": texheight,
                          "cameras": cameras}]).encode()
    with open(path, "wb") as f:
        f.write(np.array([SPLATV_MAGIC, len(chunks)], dtype="<u4").tobytes())
        f.write(chunks)
        f.write(record.tobytes())


def read_splatv(path: Path) -> tuple[list[dict], np.ndarray]:
    """(chunks, splat records of the first ``splat`` chunk as ``SPLATV_RECORD``) of a ``.splatv`` file."""
    data = Path(path).read_bytes()
    magic, size = np.frombuffer(data[:8], dtype="<u4")
    if magic != SPLATV_MAGIC:
        raise DimensionXError(f"{path}: not a .splatv file (magic {magic:#x}, expected {SPLATV_MAGIC:#x})")
    chunks = json.loads(data[8:8 + size])
    offset = 8 + size
    for chunk in chunks:
        if chunk["type"] == "splat":
            return chunks, np.frombuffer(data[offset:offset + chunk["size"]], dtype=SPLATV_RECORD)
        offset += chunk["size"]
    raise DimensionXError(f"{path}: a .splatv file without a splat chunk")
