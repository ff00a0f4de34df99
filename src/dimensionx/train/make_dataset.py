"""``dimensionx make-dataset``: training clips of the S-Director motions rendered from a 3D Gaussian scene.

1. check the scene folder (``point_cloud.ply`` + ``transforms.json`` from ``dimensionx recon``) and options;
2. read the splats and cameras; the scene centre is the median of the splat centres;
3. pick ``clips`` start cameras among the recon cameras (evenly spaced, swung up to ``jitter``
   degrees about the centre) and aim each at the centre;
4. per motion and start camera, the path of ``directors/camera_paths.py``, rendered with
   ``splats/render.py`` (gsplat on CUDA, the pure-torch reference on CPU);
5. write ``<motion>/videos/*.mp4``, ``<motion>/cameras/*.json``, ``<motion>/metadata.csv``,
   ``<motion>/contact_sheet.png``, and ``metadata.csv`` over all motions (the CSV form ``train`` reads).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from ..atomic import remove_leftover_temps, write_json
from ..camerafiles import OPENGL_FROM_OPENCV, focal_x
from ..config import MAX_SEED, config_to_dict
from ..directors.camera_paths import MOTIONS, camera_path, look_at, rotation
from ..errors import DimensionXError
from ..outputs import atomic_dir, check_output_dir, finish_output_dir, is_output_dir, start_output_dir
from ..videofiles import check_fps, check_video_encoder, write_video
from .config import DatasetConfig

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"  # the settings (written first) and, once finished, the motions and clip count
SHEET_COLUMNS = 5  # frames per clip on the contact sheet
SHEET_HEIGHT = 96  # px of one contact-sheet cell
MAX_SIDE = 4096  # px of a clip's width or height
MAX_CLIPS = 1000  # clips per motion
MAX_CLIP_FRAMES = 1000  # frames per clip
MAX_JITTER = 90.0  # degrees of the start cameras' swing
RENDER_BYTES_PER_PIXEL = 48  # a clip's frames rendered at once: float colours, alphas and depths, the 8-bit copy, twice


def make_dataset(config: DatasetConfig) -> Path:
    import torch
    from tqdm import tqdm

    # 1. Check inputs.
    motions, (width, height), background = check_inputs(config)
    scene = Path(config.scene)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if config.device == "auto" else config.device))
    check_memory(width, height, config.frames, device)
    # 2. Scene and cameras.
    splats = {k: v.to(device) for k, v in read_splats(scene / "point_cloud.ply").items()}
    recon_c2w, focal_x, recon_width = read_cameras(scene / "transforms.json")
    centre = np.median(splats["means"].cpu().numpy(), axis=0)
    K = intrinsics(focal_x * width / recon_width, width, height)
    # 3. Start cameras.
    starts = start_cameras(recon_c2w, centre, config.clips, config.jitter, config.seed)
    caption = config.caption or f"a 3D scene of {scene.resolve().name}"
    out = prepare_folder(config)
    rows = []
    for name in tqdm(motions, desc="motions", unit="motion"):
        if (out / name).is_dir():  # finished by an interrupted run of the same command
            rows += [(f"{name}/{clip}", text) for clip, text in read_csv(out / name / "metadata.csv")]
            continue
        with atomic_dir(out / name) as folder:  # each motion complete or absent: Ctrl-C keeps the finished ones
            sheet_rows = []
            for k, start in enumerate(starts):
                # 4. Path and frames.
                poses = camera_path(name, start, centre, config.frames)  # [T, 4, 4] camera-to-world
                frames = render(splats, poses, K, width, height, background, device)  # [T, H, W, 3] uint8
                # 5. Files.
                clip = f"videos/{name}_{k:03d}.mp4"
                write_video(frames, folder / clip, config.fps)
                write_json({"motion": name, "definition": config_to_dict(MOTIONS[name]), "centre": centre.tolist(),
                            "K": K.tolist(), "width": width, "height": height,
                            "camera_to_world_opencv": poses.tolist()}, folder / "cameras" / f"{name}_{k:03d}.json")
                rows.append((f"{name}/{clip}", caption))
                sheet_rows.append(frames[np.linspace(0, len(frames) - 1, SHEET_COLUMNS).round().astype(int)])
            write_csv(folder / "metadata.csv", [(c.removeprefix(f"{name}/"), t) for c, t in rows if c.startswith(f"{name}/")])
            contact_sheet(sheet_rows).save(folder / "contact_sheet.png")
    write_csv(out / "metadata.csv", rows)
    write_json({"config": settings(config), "motions": {m: config_to_dict(MOTIONS[m]) for m in motions},
                "centre": centre.tolist(), "clips": len(rows), "device": str(device)}, out / DATASET_FILE)
    finish_output_dir(out)
    log.info("wrote %d clips of %d motions to %s", len(rows), len(motions), config.out)
    return Path(config.out)


def settings(config: DatasetConfig) -> dict:
    """What a dataset folder's clips depend on: a resumed run must match them."""
    return {k: v for k, v in config_to_dict(config).items() if k != "overwrite"}


def check_folder(config: DatasetConfig) -> bool:
    """Whether ``--out`` is a dataset folder left by an interrupted run of the same settings (its finished motions
    are then kept); refuses one of other settings, a finished one (unless ``--overwrite``) and anyone else's."""
    out = Path(config.out)
    if config.overwrite or not (out.exists() or out.is_symlink()):
        check_output_dir(out, config.overwrite)
        return False
    try:
        previous = json.loads((out / DATASET_FILE).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = None
    if not isinstance(previous, dict) or not is_output_dir(out, "make-dataset") or (out / "metadata.csv").is_file():
        check_output_dir(out, overwrite=False)  # names the folder and the fix
    changed = sorted(k for k, v in settings(config).items() if previous.get(k) != v)
    if changed:
        raise DimensionXError(f"{out} holds an unfinished dataset made with other settings ({', '.join(changed)}): pass "
                              "--overwrite to start over, or the same settings to finish it")
    return True


def prepare_folder(config: DatasetConfig) -> Path:
    """Creates the dataset folder (its settings in dataset.json), or reopens an unfinished one (:func:`check_folder`)."""
    out = Path(config.out)
    if check_folder(config):
        log.info("finishing %s: the motions already written are kept", out)
        for name in MOTIONS:
            remove_leftover_temps(out / name)
        return out
    start_output_dir(out, overwrite=config.overwrite, stage="make-dataset")
    write_json({"config": settings(config)}, out / DATASET_FILE)
    return out


def kept_motions(args) -> str | None:
    """The interrupted-run message's ending once the dataset folder exists: what it keeps and how to go on."""
    out = Path(args.out or "")
    if not args.out or not (out / DATASET_FILE).is_file() or not is_output_dir(out, "make-dataset"):
        return None
    done = sorted(p.name for p in out.iterdir() if p.name in MOTIONS and p.is_dir())
    return (f"the {len(done)} finished motion(s) are kept in {out} ({', '.join(done) or 'none yet'}): run the same "
            "command to make the others")


def check_inputs(config: DatasetConfig) -> tuple[list[str], tuple[int, int], np.ndarray]:
    if not config.scene:
        raise DimensionXError("no scene: pass SCENE_DIR, a folder written by `dimensionx recon`")
    scene = Path(config.scene)
    for name in ("point_cloud.ply", "transforms.json"):
        if not (scene / name).is_file():
            raise DimensionXError(f"{scene} has no {name}: pass a scene folder written by `dimensionx recon`")
    if not config.out:
        raise DimensionXError("no output folder: pass --out DIR")
    check_folder(config)
    check_video_encoder("each clip")
    motions = list(MOTIONS) if config.motions == "all" else [m.strip() for m in config.motions.split(",") if m.strip()]
    unknown = [m for m in motions if m not in MOTIONS]
    if unknown or not motions:
        raise DimensionXError(f"--motions {config.motions}: unknown {', '.join(unknown) or 'empty list'}; "
                              f"use `all` or names among {', '.join(MOTIONS)}")
    try:
        width, height = (int(v) for v in config.size.lower().split("x"))
    except ValueError:
        raise DimensionXError(f"--size {config.size}: write WIDTHxHEIGHT in pixels, e.g. 720x480") from None
    if not (8 <= width <= MAX_SIDE and 8 <= height <= MAX_SIDE):
        raise DimensionXError(f"--size {config.size}: each side from 8 to {MAX_SIDE} px (training resizes clips to the "
                              "model's 720x480 anyway), e.g. 720x480")
    for flag, value, low, high in (("--clips", config.clips, 1, MAX_CLIPS), ("--frames", config.frames, 2, MAX_CLIP_FRAMES),
                                   ("--jitter", config.jitter, 0, MAX_JITTER),
                                   ("--seed", config.seed, 0, MAX_SEED)):
        if not (math.isfinite(value) and low <= value <= high):
            raise DimensionXError(f"{flag} {value}: use a number from {low} to {high} (the default is "
                                  f"{getattr(DatasetConfig, flag[2:]):g})")
    check_fps(config.fps, "--fps", default=DatasetConfig.fps)
    try:
        background = np.array([float(v) for v in config.background.split(",")], dtype=np.float32)
        assert background.shape == (3,) and ((background >= 0) & (background <= 1)).all()  # NaN fails too
    except (ValueError, AssertionError):
        raise DimensionXError(f"background {config.background!r}: write R,G,B in [0, 1], e.g. 0,0,0") from None
    if config.device not in ("auto", "cpu", "cuda"):
        raise DimensionXError(f"--device {config.device}: use auto, cuda or cpu")
    return motions, (width, height), background


def check_memory(width: int, height: int, frames: int, device) -> None:
    """Refuses, before anything is read or rendered, a clip whose frames (all rendered at once) cannot fit in
    the memory free on ``device``."""
    import psutil
    import torch

    need = frames * width * height * RENDER_BYTES_PER_PIXEL
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
    if need > free:
        raise DimensionXError(f"--size {width}x{height} with --frames {frames}: rendering a clip needs about "
                              f"{need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free on {device}: pass a "
                              "smaller --size or fewer --frames")


def read_cameras(path: Path) -> tuple[np.ndarray, float, int]:
    """transforms.json -> (camera-to-world [C, 4, 4] OpenCV axes, focal length px, image width px) of the first frame."""
    try:
        data = json.loads(path.read_text())
        frames = data["frames"]
        fields = {**data, **frames[0]}
        c2w = np.stack([np.asarray(f["transform_matrix"], dtype=np.float64).reshape(4, 4) @ OPENGL_FROM_OPENCV
                        for f in frames])
        width = int(fields["w"])
        focal = focal_x(fields, width)
        if not (np.isfinite(c2w).all() and math.isfinite(focal) and focal > 0 and width > 0):
            raise ValueError("a camera matrix, the focal length or the width is not a finite positive number")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DimensionXError(f"{path} is not a usable transforms.json ({exc!r}): re-run `dimensionx recon`") from None
    return c2w, focal, width


def read_splats(path: Path) -> dict:
    """The scene's splats (see ``splats.export.read_ply``); a damaged or foreign PLY is named in one line."""
    from plyfile import PlyParseError

    from ..splats.export import read_ply

    try:
        return read_ply(path)
    except (PlyParseError, OSError, ValueError, KeyError) as exc:
        raise DimensionXError(f"{path} is damaged or not a 3DGS PLY ({type(exc).__name__}: {exc}): re-run "
                              "`dimensionx recon` to write it again") from None


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """[3, 3] px: square pixels, principal point at the image centre."""
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)


def start_cameras(c2w: np.ndarray, centre: np.ndarray, clips: int, jitter: float, seed: int) -> list[np.ndarray]:
    """``clips`` poses [4, 4]: recon cameras evenly spaced, swung up to ``jitter`` degrees about ``centre``, aimed at it."""
    rng = np.random.default_rng(seed)
    starts = []
    for index in np.linspace(0, len(c2w) - 1, clips).round().astype(int):
        pose = c2w[index]
        up = -pose[:3, 1]
        swing = rotation(up, rng.uniform(-jitter, jitter)) @ rotation(pose[:3, 0], rng.uniform(-jitter, jitter))
        starts.append(look_at(centre + swing @ (pose[:3, 3] - centre), centre, up))
    return starts


def render(splats: dict, poses: np.ndarray, K: np.ndarray, width: int, height: int, background: np.ndarray,
           device) -> np.ndarray:
    """[T, H, W, 3] uint8 frames of ``splats`` seen from ``poses`` [T, 4, 4] (camera-to-world, OpenCV)."""
    import torch

    from ..splats.render import rasterize

    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1)  # [N, K, 3]
    sh_degree = int(round(sh.shape[1] ** 0.5)) - 1
    viewmats = torch.as_tensor(np.linalg.inv(poses), dtype=torch.float32, device=device)  # [T, 4, 4]
    Ks = torch.as_tensor(K, dtype=torch.float32, device=device).expand(len(poses), 3, 3)
    with torch.no_grad():
        colors, _, _ = rasterize(splats["means"], splats["quats"], torch.exp(splats["scales"]),
                                 torch.sigmoid(splats["opacities"]), sh, viewmats, Ks, width, height, sh_degree,
                                 background=torch.as_tensor(background, device=device))
    return (colors.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


def contact_sheet(rows: list[np.ndarray]):
    """One row per clip of [SHEET_COLUMNS, H, W, 3] frames, scaled to SHEET_HEIGHT px."""
    from PIL import Image

    grid = np.concatenate([np.concatenate(list(frames), axis=1) for frames in rows], axis=0)
    image = Image.fromarray(grid)
    scale = SHEET_HEIGHT / rows[0].shape[1]
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def read_csv(path: Path) -> list[tuple[str, str]]:
    """The (video, caption) rows :func:`write_csv` wrote."""
    with open(path, newline="") as f:
        return [(row[0], row[1]) for row in list(csv.reader(f))[1:]]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["video", "caption"])
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue())
