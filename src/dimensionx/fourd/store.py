"""The files of a 4D scene (``scene4d/``), which ``render4d`` reads back:

- ``canonical.ply``: the canonical Gaussians, standard 3DGS PLY (viewers show the scene at rest);
- ``deformation.safetensors``: the HexPlane planes and MLP weights; ``deformation.json``: their shapes
  and bounds, the times of the grid rows;
- ``transforms.json``: nerfstudio cameras of every (time, view) frame, each with its ``time`` in [0, 1].

Damage (a disk that filled, a copy cut short, an edited file) is found before it is used: each
stage's ``stage.json`` records the size and SHA-256 of every file of its folder (``file_digests``),
checked when a run resumes past the stage or ``render4d`` loads the scene (``check_stage``); every
file is also read inside ``read_checked``, so a scene from before the checksums fails on a damaged
file with one line naming it, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..atomic import write_json
from ..camerafiles import OPENGL_FROM_OPENCV
from ..errors import DimensionXError
from ..splats.export import read_ply, write_ply
from .deform import HexPlaneField

STAGE_FILE = "stage.json"
T = TypeVar("T")


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
    fix = (f"delete {folder} and run the same `dimensionx scene4d` command again to refit it (the grid is kept)"
           if (folder.parent / "grid").is_dir() else "copy the scene again or make it again with `dimensionx scene4d`")
    if (folder / STAGE_FILE).is_file():
        check_stage(folder, fix)

    def field_of(path: Path) -> tuple[dict, HexPlaneField]:
        info = json.loads(path.read_text())
        return info, HexPlaneField(torch.tensor(info["bounds"]), info["resolution"], info["time_resolution"],
                                   tuple(info["scales"]), info["features"], info["width"], info.get("reference_times"))

    info, field = read_checked(folder / "deformation.json", field_of, fix)
    read_checked(folder / "deformation.safetensors", lambda path: field.load_state_dict(load_file(str(path))), fix)
    def transforms_of(path: Path) -> dict:
        transforms = json.loads(path.read_text())
        cameras_of(transforms)  # readable as cameras
        return transforms

    transforms = read_checked(folder / "transforms.json", transforms_of, fix)
    return read_checked(folder / "canonical.ply", read_ply, fix), field, info, transforms


def read_checked(path: Path, reader: Callable[[Path], T], fix: str) -> T:
    """``reader(path)``; any failure to read it is reported as this file being damaged, with ``fix``."""
    try:
        return reader(path)
    except Exception as error:  # noqa: BLE001 - whatever the parser raises, the file cannot be used
        raise DimensionXError(f"{path} is damaged ({type(error).__name__}: {str(error)[:200]}): {fix}") from None


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_digests(folder: Path) -> dict[str, list]:
    """{path relative to ``folder``: [bytes, SHA-256 hex]} of every file under it but ``stage.json``."""
    return {str(p.relative_to(folder)): [p.stat().st_size, sha256(p)] for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != STAGE_FILE}


def check_stage(folder: Path, fix: str) -> dict:
    """A finished stage's ``stage.json``, after checking the files it records are there as written; raises a
    ``DimensionXError`` naming the first damaged file and ``fix``."""
    stage = read_checked(folder / STAGE_FILE, lambda path: json.loads(path.read_text()), fix)
    if not isinstance(stage, dict):
        raise DimensionXError(f"{folder / STAGE_FILE} is damaged (not a JSON object): {fix}")
    for name, (size, digest) in stage.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise DimensionXError(f"{path} is missing from a finished stage: {fix}")
        if path.stat().st_size != size:
            raise DimensionXError(f"{path} is damaged ({path.stat().st_size} bytes, {size} when written): {fix}")
        if sha256(path) != digest:
            raise DimensionXError(f"{path} is damaged (its SHA-256 differs from the one in {STAGE_FILE}): {fix}")
    return stage


def cameras_of(transforms: dict) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The views of time 0 of a 4D ``transforms.json``: (viewmats [K, 4, 4], Ks [K, 3, 3], width, height)."""
    frames = [f for f in transforms["frames"] if f["time"] == transforms["frames"][0]["time"]]
    viewmats = np.stack([np.linalg.inv(np.asarray(f["transform_matrix"]) @ OPENGL_FROM_OPENCV) for f in frames])
    Ks = np.stack([[[f["fl_x"], 0, f["cx"]], [0, f["fl_y"], f["cy"]], [0, 0, 1.0]] for f in frames])
    return viewmats, Ks, int(frames[0]["w"]), int(frames[0]["h"])
