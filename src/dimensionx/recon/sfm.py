"""Cameras by structure from motion with pycolmap: SIFT, sequential + loop-closure matching, incremental mapping.

pycolmap's own loop detection needs a vocabulary tree downloaded from the internet; instead,
far-apart frames that look alike (cosine similarity of 32x32 thumbnails) are matched as extra
pairs, which is what closes a 360-degree orbit: its last frames see what its first frames saw.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DimensionXError
from .colmap import pycolmap
from .cameras import (
    Cameras,
    PathSteps,
    cameras_from_reconstruction,
    orbit_span_degrees,
    path_steps,
    scale_intrinsics,
    scene_depth,
    still_step,
)
from .config import ReconConfig
from .diskspace import check_free_space, sfm_bytes
from .frames import Footage, downscale, frame_names, save_pngs, thumbnails
from .pathprior import smooth_jumps

ORBIT_MIN_DEGREES = 180.0  # a path sweeping this much goes round a centre: its radius should stay put
CLOSED_LOOP_DEGREES = 300.0  # an orbit sweeping this much or more ends where it began: match across the seam

log = logging.getLogger(__name__)


@dataclass
class SfmResult:
    reconstruction: pycolmap.Reconstruction  # the largest model
    cameras: Cameras  # its registered frames, in frame order
    points: np.ndarray  # [P, 3] triangulated points, world units
    colors: np.ndarray  # [P, 3] uint8
    models_found: int
    reprojection_error_px: float
    path: dict = field(default_factory=dict)  # the camera path's steps and what was repaired (metrics.json)


@dataclass
class CameraPrior:
    """What the video's sidecar says of the camera motion."""

    motion: str | None = None  # director(s), e.g. "orbit_left"
    orbit_degrees: float | None = None  # expected sweep of an orbit (360: the path closes on itself)

    @property
    def closed_loop(self) -> bool:
        return self.orbit_degrees is not None and self.orbit_degrees >= CLOSED_LOOP_DEGREES


def camera_prior(config: ReconConfig) -> CameraPrior:
    """The flags' motion prior, else the one in the video's JSON sidecar (``VIDEO.json``), else none."""
    motion, degrees = config.camera_motion, config.orbit_degrees
    sidecar = Path(config.video).with_suffix(".json") if config.video else None
    if (motion is None or degrees is None) and sidecar is not None and Path(config.video).is_file() and sidecar.is_file():
        from ..videofiles import check_sidecar

        try:
            data = json.loads(sidecar.read_text())
        except ValueError:
            data = {}
        if isinstance(data, dict):
            check_sidecar(sidecar, data)  # the new video beside an old run's sidecar: its motion would be wrong
        settings = data.get("config", {}) if isinstance(data, dict) else {}
        motion = motion if motion is not None else settings.get("motion")
        degrees = degrees if degrees is not None else data.get("orbit_degrees", settings.get("orbit_degrees"))
    if motion is not None and degrees is None and str(motion).startswith("orbit") and "," not in str(motion):
        log.info("camera motion %s (sidecar): an orbit about the scene centre", motion)
    return CameraPrior(motion, float(degrees) if degrees is not None else None)


def recover_cameras(footage: Footage, image_dir: Path, config: ReconConfig, prior: CameraPrior) -> SfmResult:
    """SfM on the sampled frames (saved into ``image_dir``), repaired where it split.

    Each round maps every frame saved so far. When the largest model misses more than
    ``1 - target_registered_fraction`` of them (a split), or neighbouring cameras step more than
    ``long_step_ratio`` times the median step (a long step: a stretch the sampling skipped over or a
    camera registered in the wrong place; with ``repair_jumps``, also a step much further than the
    footage changes, a jump), the frames of the shot between the sampled ones around each break are
    added and matched with each other, and the model is mapped again (features and matches of earlier
    rounds are kept). After ``sfm_repairs`` rounds the best round wins (most of the sampled frames
    registered, then fewest long steps and jumps); frames it did
    not use are removed again. A shot still split then is mapped once more from the same matches with
    :data:`LOW_PARALLAX` (``low_parallax_retry``), kept if it is better. A model holding fewer than ``min_registered_fraction`` of the sampled
    frames is refused (frames added by repairs help it but do not count). Then each remaining jump is smoothed by bundle adjustment with a smooth-path
    prior (``smooth_jumps``, see ``pathprior``). With ``sfm_max_size`` below the frames' size, SfM
    sees smaller copies (in a temporary folder beside ``image_dir``) and the cameras are scaled back to the frames.
    What was done, and the path's largest step, are in ``SfmResult.path``.
    """
    pycolmap.logging.minloglevel = 0 if log.isEnabledFor(logging.DEBUG) else 3  # our error explains failures
    pycolmap.set_random_seed(config.seed)
    repairs: list[str] = []
    extra: set[tuple[int, int]] = set()  # pairs of source frame ids added by repairs
    best = None
    sampled = footage.source_ids.copy()  # [T] the shot's sampled frames, whose share in the model is judged
    height, width = footage.images.shape[1:3]
    shrink = 0 < (config.sfm_max_size or 0) < max(width, height)  # SfM on smaller copies of the frames
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    # beside the frames (in recon's temporary scene folder): a run killed outright leaves nothing elsewhere
    with tempfile.TemporaryDirectory(prefix=".sfm-", dir=image_dir.parent) as work:
        sfm_dir = Path(work) / "images" if shrink else image_dir
        database, matched, extracted = Path(work) / "database.db", set(), []
        for attempt in range(config.sfm_repairs + 1):
            names = frame_names(footage.source_ids)
            pairs = {(names[i], names[j]) for i, j in choose_pairs(footage, config, prior)
                     | index_pairs(footage.source_ids, extra)} - matched
            check_free_space(Path(work), sfm_bytes(len(set(names) - set(extracted)), len(pairs), width, height,
                                                   config.sift_max_features), config.out)
            save_images(footage.images, sfm_dir, footage.source_ids, config.sfm_max_size if shrink else 0)
            extract_features(database, sfm_dir, [n for n in names if n not in extracted], config, bool(extracted))
            extracted = names
            match_pairs(database, sorted(pairs), Path(work) / "pairs.txt")
            matched |= pairs
            models = map_incrementally(database, sfm_dir, Path(work) / f"sparse{attempt}", config, len(names),
                                       f"SfM round {attempt + 1}")
            rec = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
            registered = rec.num_reg_images() if rec is not None else 0
            log.info("SfM round %d: %d of %d frames registered in the largest of %d model(s)", attempt + 1,
                     registered, len(names), len(models))
            if registered < 3:
                break
            score, cameras, far = judge(rec, names, footage, sampled, config)
            breaks = unregistered_runs(cameras.frame_ids, len(names))
            if best is None or score > best[0]:
                best = (score, rec, len(models), footage.source_ids.copy())
            split = bool(breaks) and registered < config.target_registered_fraction * len(names)
            if (not split and not far) or attempt == config.sfm_repairs:
                break
            spans = [(cameras.frame_ids[a], cameras.frame_ids[b]) for a, b in far] + (breaks if split else [])
            frames_before = len(footage.source_ids)
            repairs.append(repair(footage, spans, extra, config, "split" if split else "long step"))
            names = frame_names(footage.source_ids)
            if len(footage.source_ids) == frames_before and {(names[i], names[j]) for i, j in index_pairs(
                    footage.source_ids, extra)} <= matched:
                repairs[-1] += " (nothing new to match: stopped)"
                break
        if config.low_parallax_retry and config.mapper == "incremental" and (
                best is None or best[0][0] < config.target_registered_fraction * len(sampled)):
            # still split however it was repaired: the frames may see the scene from nearly one point (a dolly,
            # a zoom, frames shown twice), which COLMAP's mapper defaults refuse to start from or to add
            names = frame_names(footage.source_ids)
            models = map_incrementally(database, sfm_dir, Path(work) / "sparse_low_parallax", config, len(names),
                                       "SfM, low parallax", low_parallax=True)
            rec = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
            if rec is not None and rec.num_reg_images() >= 3:
                score = judge(rec, names, footage, sampled, config)[0]
                kept = best is None or score > best[0]
                repairs.append(f"mapped again with the settings for low parallax (LOW_PARALLAX): {score[0]} of "
                               f"{len(sampled)} sampled frames in the largest of {len(models)} model(s)"
                               + ("" if kept else f"; no better than the round before ({best[0][0]}): not kept"))
                if kept:
                    best = (score, rec, len(models), footage.source_ids.copy())
    if best is None:
        check_registered(0, len(sampled), 0, footage, config)
    (sampled_registered, _, _), rec, models_found, ids = best
    footage.keep(ids)  # the frames of the best round: frames added later are dropped
    names = frame_names(ids)
    if shrink:
        save_images(footage.images, image_dir, footage.source_ids)
    for dropped in set(p.name for p in image_dir.iterdir()) - set(names):
        (image_dir / dropped).unlink()
    check_registered(sampled_registered, len(sampled), models_found, footage, config)
    cameras = cameras_from_reconstruction(rec, names)
    jump_repair = None
    if config.smooth_jumps:
        rec, cameras, jump_repair = smooth_path_jumps(rec, cameras, names, footage, config, prior)
        repairs += [describe_jump_repair(jump_repair, config)] if jump_repair else []
    if shrink:  # the cameras of the full-size frames
        for camera in rec.cameras.values():
            camera.rescale(width, height)
        cameras = scale_intrinsics(cameras, width, height)
    points = points_of(rec)
    colors = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    path = describe_path(cameras, footage, points, config, prior)
    path["repairs"] = repairs
    path["jump_repair"] = jump_repair  # [before, after] figures of the smooth-path adjustment, or None
    return SfmResult(rec, cameras, points, colors, models_found, float(rec.compute_mean_reprojection_error()), path)


def judge(rec: pycolmap.Reconstruction, names: list[str], footage: Footage, sampled: np.ndarray, config: ReconConfig):
    """A mapping's score (the shot's sampled frames it holds, then fewest long steps and jumps, then frames), its
    cameras and its far steps: the best round of :func:`recover_cameras` is the one of the highest score."""
    cameras = cameras_from_reconstruction(rec, names)
    far = far_steps(cameras, footage, points_of(rec), config)
    score = (int(np.isin(footage.source_ids[cameras.frame_ids], sampled).sum()), -len(far), rec.num_reg_images())
    return score, cameras, far


def run_sfm(images: np.ndarray, names: list[str], image_dir: Path, config: ReconConfig) -> SfmResult:
    """SfM on ``images`` ([T, H, W, 3] uint8, saved in ``image_dir`` as ``names``), without repairs."""
    ids = np.array([int(name.removeprefix("frame_").removesuffix(".png")) for name in names])
    footage = Footage(images, ids, len(images), [range(len(images))], 0, reader=None)
    return recover_cameras(footage, image_dir, replace(config, sfm_repairs=0), CameraPrior())


def save_images(images: np.ndarray, folder: Path, source_ids: np.ndarray | None = None, max_size: int = 0) -> list[str]:
    """Writes [T, H, W, 3] uint8 frames as ``frame_<source id>.png`` (those not written yet), downscaled to
    at most ``max_size`` px (0: as they are); returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = frame_names(np.arange(len(images)) if source_ids is None else source_ids)
    new = [k for k, name in enumerate(names) if not (folder / name).exists()]
    save_pngs([folder / names[k] for k in new], list(downscale(images[new], max_size)) if new else [])
    return names


def choose_pairs(footage: Footage, config: ReconConfig, prior: CameraPrior) -> set[tuple[int, int]]:
    """Frame index pairs to match: neighbours, look-alikes far apart, and across the seam of a closed orbit."""
    n = len(footage.source_ids)
    if n <= config.exhaustive_frames:
        return {(i, j) for i in range(n) for j in range(i + 1, n)}
    pairs = sequential_pairs(n, config.match_overlap) | loop_pairs(footage.images, config)
    if prior.closed_loop:  # the last frames continue into the first ones
        pairs |= {(i, j) for i in range(config.match_overlap) for j in range(n - config.match_overlap + i, n)}
    return pairs


def index_pairs(source_ids: np.ndarray, pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Pairs of source frame ids -> pairs of indices into ``source_ids``."""
    index = {int(s): k for k, s in enumerate(source_ids)}
    return {(index[a], index[b]) for a, b in pairs if a in index and b in index}


def unregistered_runs(frame_ids: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Runs of frames missing from the model, each as (last registered frame before, first after), clipped."""
    registered = np.zeros(n, dtype=bool)
    registered[frame_ids] = True
    runs, k = [], 0
    while k < n:
        if registered[k]:
            k += 1
            continue
        end = k
        while end < n and not registered[end]:
            end += 1
        runs.append((max(0, k - 1), min(n - 1, end)))
        k = end
    return runs


def points_of(rec: pycolmap.Reconstruction) -> np.ndarray:
    """[P, 3] the model's triangulated points, world units."""
    return np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3)


def footage_steps(cameras: Cameras, footage: Footage, points: np.ndarray | None, config: ReconConfig) -> PathSteps:
    """The steps of ``cameras`` (at least 2) against their frames' change, with the still floor of
    ``jump_min_shift`` at the depth of ``points`` [P, 3] (no floor without points)."""
    depth = scene_depth(cameras, points) if points is not None and len(points) else 0.0
    still = still_step(cameras, depth, config.jump_min_shift) if depth > 0 else (0.0, 0.0)
    return path_steps(cameras, thumbnails(footage.images[cameras.frame_ids]).numpy(), still)


def long_steps(steps: PathSteps, config: ReconConfig) -> list[tuple[int, int]]:
    """Neighbouring cameras (indices) stepping ``long_step_ratio`` times further than the median step, beyond
    the still floor, however much the image changes; none under 4 cameras."""
    if len(steps.radius) < 4:
        return []
    return [(int(k), int(k) + 1) for k in np.flatnonzero(steps.motion_ratios() > config.long_step_ratio)]


def far_steps(cameras: Cameras, footage: Footage, points: np.ndarray, config: ReconConfig) -> list[tuple[int, int]]:
    """The steps a repair round re-samples: long steps (``densify_long_steps``) and jumps (``repair_jumps``)."""
    if len(cameras) < 4:
        return []
    steps = footage_steps(cameras, footage, points, config)
    far = set(long_steps(steps, config)) if config.densify_long_steps else set()
    far |= set(step_jumps(steps, orbit_span_degrees(cameras), config)) if config.repair_jumps else set()
    return sorted(far)


def find_jumps(cameras: Cameras, footage: Footage, config: ReconConfig,
               points: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Neighbouring cameras (indices into ``cameras``) that step ``jump_ratio`` times further than the
    median step while the image changes no more than usual (see :meth:`PathSteps.ratios`); on an
    orbit, also those stepping ``jump_ratio_radial`` times further while the radius changes by more
    than ``jump_radius_change`` and the image by no more than ``jump_ordinary_change`` times its
    median (an orbit keeps its radius; a line or an arc of a few degrees has none to keep). With
    ``points`` [P, 3], steps under the still floor (``jump_min_shift``) are none."""
    if len(cameras) < 4:  # step_jumps finds none: no thumbnails to make
        return []
    return step_jumps(footage_steps(cameras, footage, points, config), orbit_span_degrees(cameras), config)


def step_jumps(steps: PathSteps, span_degrees: float, config: ReconConfig) -> list[tuple[int, int]]:
    """:func:`find_jumps` of a path's ``steps``, whose cameras sweep ``span_degrees``; none under 4 cameras."""
    if len(steps.radius) < 4:
        return []
    ratios = steps.ratios()
    jumps = ratios > config.jump_ratio
    if span_degrees >= ORBIT_MIN_DEGREES:
        radial = np.abs(np.log(np.maximum(steps.radius_ratios(), 1e-12))) > np.log1p(config.jump_radius_change)
        ordinary = steps.change_ratios() <= config.jump_ordinary_change
        jumps |= radial & ordinary & (ratios > config.jump_ratio_radial)
    return [(int(k), int(k) + 1) for k in np.flatnonzero(jumps)]


def smooth_path_jumps(rec: pycolmap.Reconstruction, cameras: Cameras, names: list[str], footage: Footage,
                      config: ReconConfig, prior: CameraPrior) -> tuple[pycolmap.Reconstruction, Cameras, dict | None]:
    """Bundle adjustment with a smooth-path prior around each jump (``pathprior.smooth_jumps``), on a copy
    of ``rec``; the copy is kept only if the largest step ratio at the jumps shrinks and the mean reprojection
    error grows by less than ``jump_loss_px``. Returns the model, its
    cameras and the figures before and after (None when there was no jump), for metrics.json."""
    jumps = find_jumps(cameras, footage, config, points_of(rec))
    if not jumps:
        return rec, cameras, None
    closed = prior.closed_loop or orbit_span_degrees(cameras) >= CLOSED_LOOP_DEGREES
    trial = pycolmap.Reconstruction(rec)
    smoothed = smooth_jumps(trial, cameras, names, jumps, closed, config)
    before, after = footage_steps(cameras, footage, None, config), footage_steps(smoothed, footage, None, config)
    at = [k for k, _ in jumps]
    errors = [rec.compute_mean_reprojection_error(), trial.compute_mean_reprojection_error()]  # px
    kept = bool(after.ratios()[at].max() < before.ratios()[at].max() and errors[1] < errors[0] + config.jump_loss_px)
    figures = {
        "frames": [[int(footage.source_ids[cameras.frame_ids[i]]) for i in pair] for pair in jumps],
        "step_degrees": [round(float(x.rotation_degrees[at].max()), 2) for x in (before, after)],
        "step_ratio": [round(float(x.ratios()[at].max()), 2) for x in (before, after)],
        "largest_step_degrees": [round(float(x.rotation_degrees.max()), 2) for x in (before, after)],
        "reprojection_error_px": [round(e, 3) for e in errors],
        "points": [rec.num_points3D(), trial.num_points3D()],
        "kept": kept,
    }
    log.info("SfM repair: %s", describe_jump_repair(figures, config))
    return (trial, smoothed, figures) if kept else (rec, cameras, figures)


def describe_jump_repair(figures: dict, config: ReconConfig) -> str:
    """One line of ``smooth_path_jumps``'s figures (before -> after) for the log and ``camera_path.repairs``."""
    (s0, s1), (r0, r1), (l0, l1), (e0, e1) = (figures[k] for k in (
        "step_degrees", "step_ratio", "largest_step_degrees", "reprojection_error_px"))
    frames = ", ".join(f"{a}-{b}" for a, b in figures["frames"])
    return (f"jump at frames {frames}: bundle adjustment with a smooth-path prior around it ({config.jump_window} "
            f"cameras each side): step there {s0:.1f} -> {s1:.1f} degrees, ratio to the median {r0:.2f} -> {r1:.2f}, "
            f"largest step {l0:.1f} -> {l1:.1f} degrees, reprojection error {e0:.2f} -> {e1:.2f} px: "
            f"{'kept' if figures['kept'] else 'not kept (no better)'}")


def repair(footage: Footage, spans: list[tuple[int, int]], extra: set[tuple[int, int]], config: ReconConfig,
           problem: str) -> str:
    """Samples the shot densely around each span (frame indices a < b): every input frame of the window,
    or ``repair_max_frames`` of them spread evenly over a longer one (a sparse sample of a long shot), and
    matches each window's frames with each other; returns what was done, for the log and metrics.json."""
    added, windows = 0, []
    for a, b in spans:
        lo = footage.source_ids[max(0, a - config.repair_margin)]
        hi = footage.source_ids[min(len(footage.source_ids) - 1, b + config.repair_margin)]
        window = np.unique(np.linspace(lo, hi, min(hi - lo + 1, config.repair_max_frames)).round().astype(np.int64))
        if footage.reader is not None:
            before = len(footage.source_ids)
            footage.add(window)
            added += len(footage.source_ids) - before
        inside = [int(s) for s in footage.source_ids if lo <= s <= hi]
        extra |= {(p, q) for i, p in enumerate(inside) for q in inside[i + 1 :]}
        windows.append(f"{lo}-{hi}")
    action = (f"{problem} around frames {', '.join(windows)}: added {added} frame(s) of the shot there and "
              "matched each window's frames with each other")
    log.info("SfM repair: %s", action)
    return action


def describe_path(cameras: Cameras, footage: Footage, points: np.ndarray, config: ReconConfig,
                  prior: CameraPrior) -> dict:
    """The path's largest step (degrees, against the median), its radius there, its sweep, its long steps and
    its jumps (both above the still floor at the depth of ``points`` [P, 3])."""
    if len(cameras) < 3:
        return {}
    steps = footage_steps(cameras, footage, points, config)
    k = int(np.argmax(steps.rotation_degrees))
    a, b = (int(footage.source_ids[cameras.frame_ids[i]]) for i in (k, k + 1))
    span = orbit_span_degrees(cameras)
    path = {
        "largest_step_degrees": round(float(steps.rotation_degrees[k]), 2),
        "median_step_degrees": round(float(np.median(steps.rotation_degrees)), 2),
        "largest_step_frames": [a, b],
        "largest_step_ratio": round(float(steps.ratios().max()), 2),
        "radius_ratio_at_largest_step": round(float(steps.radius_ratios()[k]), 3),
        "largest_motion_ratio": round(float(steps.motion_ratios().max()), 2),
        "still_step_degrees": round(steps.still_degrees, 3),
        "long_steps": [[int(footage.source_ids[cameras.frame_ids[i]]), int(footage.source_ids[cameras.frame_ids[j]])]
                       for i, j in long_steps(steps, config)],
        "jumps": [[int(footage.source_ids[cameras.frame_ids[i]]), int(footage.source_ids[cameras.frame_ids[j]])]
                  for i, j in step_jumps(steps, span, config)],
        "orbit_span_degrees": round(span, 1),
        "motion_prior": prior.motion,
        "expected_orbit_degrees": prior.orbit_degrees,
    }
    if path["jumps"]:
        log.warning("the camera path still jumps between frames %s (largest step %.1f degrees, median %.1f): "
                    "try more --frames", path["jumps"], path["largest_step_degrees"], path["median_step_degrees"])
    elif path["long_steps"]:
        log.warning("the camera path still steps over %.1f times its median step between frames %s: the footage "
                    "moves that fast there, or SfM could not place the frames between (densify_long_steps decodes "
                    "them)", config.long_step_ratio, path["long_steps"])
    if prior.orbit_degrees is not None and span < config.orbit_span_tolerance * prior.orbit_degrees:
        path["warning"] = (f"the cameras sweep {span:.0f} degrees where the video is a {prior.orbit_degrees:.0f} "
                           "degree orbit: part of the path is missing or folded")
        log.warning("%s", path["warning"])
    return path


def extract_features(database: Path, image_dir: Path, names: list[str], config: ReconConfig,
                     add: bool = False) -> None:
    """SIFT keypoints of the frames ``names``, all frames sharing one camera (a video has one lens);
    ``add``: the database already holds that camera (id 1) and other frames."""
    if not names:
        return
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = config.camera_model
    if add:
        reader.existing_camera_id = 1
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


def match_pairs(database: Path, pairs: list[tuple[str, str]], pairs_file: Path) -> None:
    """Matches the image pairs (file names) given, through a pairs file."""
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = str(pairs_file)
    pycolmap.match_image_pairs(database, pairing_options=pairing, device=pycolmap.Device.cpu)


LOW_PARALLAX = {  # COLMAP mapper settings for frames that see the scene from nearly one point (its defaults in brackets)
    "init_max_forward_motion": 0.9999,  # a first pair moving straight ahead is taken (0.95: a dolly or zoom is refused)
    "abs_pose_min_num_inliers": 15,  # a frame registers from 15 matches to the model (30)
    "abs_pose_min_inlier_ratio": 0.1,  # ... that are 10% of its matches (25%)
    "filter_min_tri_angle": 0.5,  # degrees: points seen under smaller angles are kept (1.5)
}
LOW_PARALLAX_TRIANGULATION_DEGREES = 0.5  # the triangulator's smallest angle (1.5), as filter_min_tri_angle


def map_incrementally(
    database: Path, image_dir: Path, out: Path, config: ReconConfig, frames: int = 0, desc: str = "SfM",
    low_parallax: bool = False,
) -> dict[int, pycolmap.Reconstruction]:
    """COLMAP's mapper over the matched ``frames``; the incremental one shows a bar of the frames it has
    registered (the app shows it too, with an ETA). ``low_parallax``: with :data:`LOW_PARALLAX`."""
    out.mkdir()
    if config.mapper == "global":  # GLOMAP: rotation averaging, global positioning, one bundle adjustment
        options = pycolmap.GlobalPipelineOptions()
        options.min_model_size = 3
        options.random_seed = config.seed
        return pycolmap.global_mapping(database, image_dir, out, options)
    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = 3  # a short clip is still worth a model; the fraction check judges it
    options.random_seed = config.seed
    options.ba_global_frames_ratio = options.ba_global_points_ratio = config.ba_global_ratio
    options.ba_local_max_refinements = options.ba_global_max_refinements = config.ba_refinements
    options.mapper.init_min_tri_angle = config.init_min_tri_angle
    if low_parallax:
        for name, value in LOW_PARALLAX.items():
            setattr(options.mapper, name, value)
        options.triangulation.min_angle = LOW_PARALLAX_TRIANGULATION_DEGREES
    with tqdm(total=frames, desc=desc, unit="frame", disable=not config.progress or not frames) as bar:
        return pycolmap.incremental_mapping(database, image_dir, out, options,
                                            initial_image_pair_callback=lambda: bar.update(2),
                                            next_image_callback=lambda: bar.update(1))


def check_registered(registered: int, total: int, models: int, footage: Footage, config: ReconConfig) -> None:
    """Refuses a model holding fewer than ``min_registered_fraction`` of the shot's ``total`` sampled frames."""
    if registered >= max(2, config.min_registered_fraction * total):
        return
    shot = footage.shots[footage.shot]
    raise DimensionXError(
        f"structure from motion registered only {registered} of {total} frames of {config.video}, shot "
        f"{footage.shot} (frames {shot.start}-{shot.stop - 1}), in the largest of {models} model(s) found, after "
        f"repairs; a scene is written from at least {config.min_registered_fraction:.0%} of a shot's frames "
        "(min_registered_fraction): the frames share too few matching SIFT features. "
        "Typical causes: noise or little texture, too little camera motion, hard cuts, or a scene that "
        "changes between frames. Options: sample more frames (--frames) or keep more pixels (--max-size), "
        "pick one continuous shot (--shot K), or give known cameras with --cameras transforms.json"
    )
