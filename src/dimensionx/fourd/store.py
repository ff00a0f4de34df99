"""The files of a 4D scene (``scene4d/``), which ``render4d`` reads back:

- ``canonical.ply``: the canonical Gaussians, standard 3DGS PLY (viewers show the scene at rest);
- ``deformation.safetensors``: the HexPlane planes and MLP weights; ``deformation.json``: their shapes
  and bounds, the times of the grid rows;
- ``transforms.json``: nerfstudio cameras of every (time, view) frame, each with its ``time`` in [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import DimensionXError
from ..media import write_json
from ..splats.export import read_ply, write_ply
from .deform import HexPlaneField

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # transforms.json stores OpenGL camera-to-world


def save_scene(folder: Path, splats: torch.nn.ParameterDict, field: HexPlaneField, times: list[float],
               viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int) -> None:
    """Writes the three files of a 4D scene into ``folder`` (``viewmats`` [K, 4, 4], ``Ks`` [K, 3, 3])."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    write_ply(splats, folder / "canonical.ply")
    save_file({k: v.detach().cpu().contiguous() for k, v in field.state_dict().items()}, str(folder / "deformation.safetensors"))
    write_json({"type": "hexplane", **field.config, "bounds": field.bounds.cpu().tolist(), "times": times},
               folder / "deformation.json")
    write_json(transforms_4d(viewmats, Ks, width, height, times), folder / "transforms.json")


def transforms_4d(viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int, times: list[float]) -> dict:
    """nerfstudio ``transforms.json`` with one frame per (time, view), time-major, each with its ``time``."""
    frames = []
    for m, t in enumerate(times):
        for k, (viewmat, K) in enumerate(zip(viewmats, Ks)):
            frames.append({
                "file_path": f"grid/time_{m:02d}.mp4#{k}", "time": float(t), "view": k,
                "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
                "w": width, "h": height, "transform_matrix": (np.linalg.inv(viewmat) @ OPENGL_FROM_OPENCV).tolist(),
            })
    return {"camera_model": "OPENCV", "frames": frames}


def load_scene(folder: Path) -> tuple[dict[str, torch.Tensor], HexPlaneField, dict, dict]:
    """(canonical splats, field, deformation.json, transforms.json) of a ``scene4d/`` folder."""
    from safetensors.torch import load_file

    names = ("canonical.ply", "deformation.safetensors", "deformation.json", "transforms.json")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DimensionXError(f"{folder} lacks {', '.join(missing)}: pass the folder `dimensionx scene4d` wrote "
                              "(SCENE or SCENE/scene4d), or finish that run (it resumes where it stopped)")
    info = json.loads((folder / "deformation.json").read_text())
    field = HexPlaneField(torch.tensor(info["bounds"]), info["resolution"], info["time_resolution"], tuple(info["scales"]),
                          info["features"], info["width"], info.get("reference_times"))
    field.load_state_dict(load_file(str(folder / "deformation.safetensors")))
    return read_ply(folder / "canonical.ply"), field, info, json.loads((folder / "transforms.json").read_text())


def cameras_of(transforms: dict) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The views of time 0 of a 4D ``transforms.json``: (viewmats [K, 4, 4], Ks [K, 3, 3], width, height)."""
    frames = [f for f in transforms["frames"] if f["time"] == transforms["frames"][0]["time"]]
    viewmats = np.stack([np.linalg.inv(np.asarray(f["transform_matrix"]) @ OPENGL_FROM_OPENCV) for f in frames])
    Ks = np.stack([[[f["fl_x"], 0, f["cx"]], [0, f["fl_y"], f["cy"]], [0, 0, 1.0]] for f in frames])
    return viewmats, Ks, int(frames[0]["w"]), int(frames[0]["h"])
