"""Cameras by structure from motion with pycolmap: SIFT, sequential + loop-closure matching, incremental mapping.

pycolmap's own loop detection needs a vocabulary tree downloaded from the internet; instead,
far-apart frames that look alike (cosine similarity of 32x32 thumbnails) are matched as extra
pairs, which is what closes a 360-degree orbit: its last frames see what its first frames saw.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap

from ..errors import DimensionXError
from ..interrupts import handle_signals
from .cameras import Cameras, cameras_from_reconstruction
from .config import ReconConfig
from .frames import thumbnails

log = logging.getLogger(__name__)
handle_signals()  # again: importing pycolmap installed glog's SIGTERM handler, which prints a native stack dump


@dataclass
class SfmResult:
    reconstruction: pycolmap.Reconstruction  # the largest model
    cameras: Cameras  # its registered frames, in frame order
    points: np.ndarray  # [P, 3] triangulated points, world units
    colors: np.ndarray  # [P, 3] uint8
    models_found: int
    reprojection_error_px: float


def run_sfm(images: np.ndarray, names: list[str], image_dir: Path, config: ReconConfig) -> SfmResult:
    """Recovers the cameras of ``images`` ([T, H, W, 3] uint8, saved in ``image_dir`` as ``names``)."""
    pycolmap.logging.minloglevel = 0 if log.isEnabledFor(logging.DEBUG) else 3  # our error explains failures
    pycolmap.set_random_seed(config.seed)
    with tempfile.TemporaryDirectory(prefix="dimensionx-sfm-") as work:
        database = Path(work) / "database.db"
        extract_features(database, image_dir, names, config)
        pairs = sequential_pairs(len(names), config.match_overlap) | loop_pairs(images, config)
        match_pairs(database, names, sorted(pairs), Path(work) / "pairs.txt")
        models = map_incrementally(database, image_dir, Path(work) / "sparse", config)
    rec = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    registered = rec.num_reg_images() if rec is not None else 0
    log.info("SfM registered %d of %d frames in the largest of %d model(s)", registered, len(names), len(models))
    check_registered(registered, len(names), len(models), config)
    points = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3)
    colors = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    return SfmResult(rec, cameras_from_reconstruction(rec, names), points, colors, len(models),
                     float(rec.compute_mean_reprojection_error()))


def extract_features(database: Path, image_dir: Path, names: list[str], config: ReconConfig) -> None:
    """SIFT keypoints of every frame, all frames sharing one camera (a video has one lens)."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = config.camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = config.sift_max_features
    pycolmap.extract_features(database, image_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)


def sequential_pairs(n: int, overlap: int) -> set[tuple[int, int]]:
    """Each frame with its ``overlap`` successors."""
    return {(i, j) for i in range(n) for j in range(i + 1, min(n, i + 1 + overlap))}


def loop_pairs(images: np.ndarray, config: ReconConfig) -> set[tuple[int, int]]:
    """Each frame with the ``loop_candidates`` most similar frames at least ``loop_min_gap`` frames away."""
    gap = config.loop_min_gap or 2 * config.match_overlap
    if config.loop_candidates <= 0 or len(images) <= gap:
        return set()
    x = thumbnails(images)  # [T, D]
    x = x - x.mean(dim=1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)
    similarity = (x @ x.T).numpy()  # [T, T] cosine similarity
    index = np.arange(len(images))
    similarity[np.abs(index[:, None] - index[None, :]) < gap] = -np.inf
    pairs = set()
    for i in index:
        for j in np.argsort(-similarity[i])[: config.loop_candidates]:
            if np.isfinite(similarity[i, j]):
                pairs.add((min(i, j), max(i, j)))
    return pairs


def match_pairs(database: Path, names: list[str], pairs: list[tuple[int, int]], pairs_file: Path) -> None:
    pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = str(pairs_file)
    pycolmap.match_image_pairs(database, pairing_options=pairing, device=pycolmap.Device.cpu)


def map_incrementally(
    database: Path, image_dir: Path, out: Path, config: ReconConfig
) -> dict[int, pycolmap.Reconstruction]:
    out.mkdir()
    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = 3  # a short clip is still worth a model; the fraction check judges it
    options.random_seed = config.seed
    options.ba_global_frames_ratio = options.ba_global_points_ratio = config.ba_global_ratio
    options.ba_local_max_refinements = options.ba_global_max_refinements = config.ba_refinements
    return pycolmap.incremental_mapping(database, image_dir, out, options)


def check_registered(registered: int, total: int, models: int, config: ReconConfig) -> None:
    if registered >= max(2, config.min_registered_fraction * total):
        return
    raise DimensionXError(
        f"structure from motion registered only {registered} of {total} frames of {config.video} "
        f"(largest of {models} model(s) found): the frames share too few matching SIFT features. "
        "Typical causes: noise or little texture, too little camera motion, hard cuts, or a scene that "
        "changes between frames. Options: sample more frames (--frames) or keep more pixels (--max-size), "
        "pick one continuous shot (--shot K), or give known cameras with --cameras transforms.json"
    )
