"""Every knob of the video -> 3D Gaussian scene stage, in one dataclass (``configs/recon.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import DimensionXError

# Settings left at None take the value of the chosen preset on the device that trains. On CUDA
# gsplat renders a 480x320 view in well under a millisecond; on CPU the pure-torch reference
# renderer takes some 0.1-1 s a view, so a CPU run keeps frames small, Gaussians few and the
# schedule short enough that `dimensionx recon` of a 145-frame orbit ends within 5 minutes on 2
# cores. On CUDA the default is a 3000-iteration schedule (densification compressed into it, SfM
# on 480 px copies): on one H200 it rebuilt the shared orbit at 720x480 in 16.0 s, 30.4 dB held
# out, where "quality" (7000 iterations, SfM on the frames' own size) took 33.6 s for 30.6 dB
# (benchmarks/results/recon_sweep_nvidia-h200.json). "fast" is the default's earlier name.
_QUALITY = {"iterations": 7000, "max_size": 720, "max_gaussians": 0, "orbit_frames": 120, "sfm_max_size": 0,
            "strategy": "default", "refine_start_iter": 500, "refine_stop_iter": 5000, "refine_every": 100,
            "sh_degree_interval": 1000, "init_opacity": 0.1, "init_scale": 1.0}
_CUDA = {**_QUALITY, "iterations": 3000, "sfm_max_size": 480, "refine_start_iter": 300, "refine_stop_iter": 2400,
         "sh_degree_interval": 500}
_CPU = {**_QUALITY, "iterations": 300, "max_size": 240, "max_gaussians": 6000, "orbit_frames": 24}
PRESETS = {
    "default": {"cuda": _CUDA, "cpu": _CPU},
    "fast": {"cuda": _CUDA, "cpu": _CPU},
    "quality": {"cuda": _QUALITY, "cpu": _CPU},
    "mcmc": {"cuda": {**_CUDA, "strategy": "mcmc", "refine_every": 50, "init_opacity": 0.5, "init_scale": 0.1},
             "cpu": _CPU},
}


@dataclass
class ReconConfig:
    # ---- input and output
    video: str = ""  # a video file or a folder of frames
    out: str = ""  # output folder, written atomically
    overwrite: bool = False  # replace an existing output folder
    cameras: str | None = None  # transforms.json (nerfstudio) with known cameras: skips SfM
    device: str = "auto"  # "auto" (cuda if available), "cuda" or "cpu"
    seed: int = 0
    progress: bool = True  # tqdm progress bar while training

    # ---- frames
    frames: int = 64  # frames sampled uniformly from the shot (all of them if fewer)
    preset: str = "default"  # named defaults of the None settings below (PRESETS): default (= fast), quality, mcmc
    max_size: int | None = None  # px, longest image side after downscaling (0 keeps it); None: 720 CUDA, 240 CPU
    shot: int | None = None  # which shot of a montage to reconstruct (0-based); None: the longest
    cut_ratio: float = 1.6  # a hard cut: a frame change this many times its neighbours' ...
    cut_min_change: float = 0.05  # ... and at least this mean abs change (0-1 colour, 32x32 thumbnails)
    cut_window: int = 2  # distinct frames on each side that make the neighbourhood
    cut_memory: int = 12  # distinct frames before a jump that a cut's new frame must all differ from ...
    cut_novelty: float = 0.5  # ... by at least this times the jump (else it returns to a view just shown)
    cut_restart: float = 0.15  # a jump back to within this times the jump of the shot's first view: a new clip
    # from the same photo (generated clips open on the photo itself; a pop lands only near a view shown before)

    # ---- cameras (pycolmap structure from motion)
    camera_model: str = "SIMPLE_PINHOLE"  # one shared pinhole camera: generated videos have no distortion
    sift_max_features: int = 4096  # SIFT keypoints per frame
    sfm_max_size: int | None = None  # px, longest side of the frames SfM sees (0: the frames' own); None: preset
    match_overlap: int = 6  # each frame is matched with this many following frames
    loop_candidates: int = 3  # far-apart frames matched per frame by thumbnail similarity (loop closure)
    loop_min_gap: int = 0  # frames; 0 means 2 * match_overlap. Loop pairs are at least this far apart
    min_registered_fraction: float = 0.9  # fewer registered frames of the shot than this, after repairs: an error
    exhaustive_frames: int = 40  # a shot of at most this many sampled frames matches every pair
    camera_motion: str | None = None  # the video's director, e.g. orbit_left; None: its sidecar's (VIDEO.json)
    orbit_degrees: float | None = None  # the orbit's sweep, e.g. 360; None: the sidecar's, else unknown
    orbit_span_tolerance: float = 0.8  # cameras sweeping less than this times orbit_degrees are reported
    target_registered_fraction: float = 0.95  # fewer registered frames than this: repair the split
    jump_ratio: float = 3.0  # a camera step this many times the median step, image change alike, is a jump
    # On an orbit (cameras sweeping >= 180 degrees round a centre) the radius stays put: where the
    # image changes as usual, a shorter step that also moves the camera nearer or farther is a jump too.
    jump_ratio_radial: float = 2.0  # times the median step, with ...
    jump_radius_change: float = 0.15  # ... the radius growing or shrinking by a factor beyond 1 + this, and ...
    jump_ordinary_change: float = 1.5  # ... the image changing at most this times its median change
    jump_min_shift: float = 0.01  # a step shifting the image by less than this times its width (a turn, or a move
    # at the points' median depth) is no jump nor long step: a near-static shot's median step is near 0
    long_step_ratio: float = 2.5  # a step this many times the median step (image change or not) is a long step ...
    densify_long_steps: bool = True  # ... whose stretch of the shot is decoded densely and mapped again
    repair_jumps: bool = False  # also re-sample around jumps (jumps are always measured and reported)
    smooth_jumps: bool = True  # bundle-adjust with a smooth-path prior around jumps (kept if the jump shrinks)
    jump_window: int = 4  # cameras on each side of a jump whose centres get the smooth-path prior
    jump_context: int = 6  # cameras beyond the window on each side that the smooth path passes through
    jump_prior_sigma: float = 0.02  # prior std of a centre in a window, times the median centre step
    path_prior_sigma: float = 2.0  # prior std of every other centre (at itself), times the median centre step
    jump_loss_px: float = 2.0  # px, Cauchy loss scale of the reprojection errors in that adjustment (and the most
    # the mean error may grow for the adjustment to be kept)
    jump_max_error_px: float = 4.0  # px, points left with a larger reprojection error are deleted (COLMAP: 4)
    sfm_repairs: int = 2  # rounds of repair (denser frames + pairs around splits and jumps), 0: none
    repair_margin: int = 2  # sampled frames on each side of a break whose window is sampled densely
    repair_max_frames: int = 24  # at most this many input frames sampled in a window (all of a shorter one)
    ba_global_ratio: float = 1.4  # global bundle adjustment when the model grew by this factor (COLMAP: 1.1)
    init_min_tri_angle: float = 4.0  # degrees; the first pair's triangulation angle (COLMAP: 16, too wide
    # for a zoom or a slow dolly, whose frames see the scene from nearly one point)
    low_parallax_retry: bool = True  # a shot still split after the repairs is mapped once more with the
    # incremental mapper's settings for low parallax (sfm.LOW_PARALLAX: a dolly or a zoom, frames shown twice)
    mapper: str = "incremental"  # "incremental" (COLMAP's mapper) or "global" (GLOMAP, pycolmap.global_mapping)
    ba_refinements: int = 1  # bundle-adjustment rounds after filtering / re-triangulating (COLMAP: 2 local, 5 global)

    # ---- 3D Gaussians (gsplat)
    iterations: int | None = None  # None: 3000 on CUDA (quality: 7000), 300 on CPU
    max_gaussians: int | None = None  # SfM points kept to start from (0: all); None: all on CUDA, 6000 on CPU
    sh_degree: int = 3  # spherical harmonics degree of the splat colours
    sh_degree_interval: int | None = None  # iterations between SH degree increments; None: preset (500; quality: 1000)
    ssim_lambda: float = 0.2  # loss = (1 - l) * L1 + l * (1 - SSIM)
    holdout: int = 8  # every K-th registered frame is held out for evaluation (0: none)
    init_opacity: float | None = None  # None: preset (0.1; 0.5 with MCMC)
    init_scale: float | None = None  # initial scale = this * RMS distance to the 3 nearest SfM points; None: preset
    random_init_points: int = 20000  # points drawn in the cameras' bounding box when --cameras is given
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB in [0, 1] behind the splats
    rasterize_mode: str = "classic"  # gsplat's: "classic", or "antialiased" (opacity compensated for the 0.3 px^2
    # blur, Mip-Splatting's 2D filter; the CPU reference renderer does the same); default until a GPU run measures it
    lr_means: float = 1.6e-4  # times the scene scale; decays to 1% over the run
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    loss_cuda_graph: bool = True  # on CUDA, replay the loss and its gradient as one captured CUDA graph
    max_nan_steps: int = 10  # NaN or infinite losses within 50 iterations that stop the run with an error

    # ---- densification (gsplat DefaultStrategy or MCMCStrategy; DefaultStrategy also on CPU)
    densify: bool = True
    strategy: str | None = None  # "default" (clone / split / prune) or "mcmc" (relocate, capped); None: preset
    refine_start_iter: int | None = None  # None: preset (300; quality: 500)
    refine_stop_iter: int | None = None  # None: preset (2400; quality: 5000)
    refine_every: int | None = None  # None: preset (100)
    reset_every: int = 3000  # opacity reset period (iterations)
    grow_grad2d: float = 2e-4  # image-plane gradient above which splats are split / duplicated
    grow_scale3d: float = 0.01  # times the scene scale: smaller splats are duplicated, larger split
    prune_opa: float = 0.005  # splats less opaque than this are removed (MCMC: relocated)
    mcmc_cap: int = 300_000  # MCMC: at most this many Gaussians
    mcmc_noise_lr: float = 5e5  # MCMC: position noise, times the means' learning rate (gsplat's default)
    opacity_reg: float = 0.01  # MCMC: loss weight of the mean opacity (gsplat's trainer)
    scale_reg: float = 0.01  # MCMC: loss weight of the mean scale, world units

    # ---- camera refinement
    refine_cameras: bool = False  # optimise a pose correction per training frame
    pose_lr: float = 1e-5
    pose_reg: float = 1e-6  # weight decay of the pose corrections

    # ---- appearance
    appearance: bool = False  # learn an affine colour change per training frame (exposure / colour drift)
    appearance_lr: float = 1e-3
    appearance_reg: float = 1e-4  # weight decay of the colour changes (towards none)

    # ---- renders
    orbit_frames: int | None = None  # frames of renders/orbit.mp4 (0: none); None: 120 on CUDA, 24 on CPU
    orbit_fps: float = 30.0
    orbit_smoothing: float = 2.0  # frames; Gaussian sigma applied to camera centres along the path


def for_device(config: ReconConfig, device_type: str) -> ReconConfig:
    """``config`` with every setting left at None set to its preset's value on ``device_type`` ("cuda" or "cpu")."""
    if config.preset not in PRESETS:
        raise DimensionXError(f"--preset {config.preset} does not exist: choose one of {', '.join(PRESETS)}")
    defaults = PRESETS[config.preset]["cuda" if device_type == "cuda" else "cpu"]
    return replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
