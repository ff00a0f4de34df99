"""``FourDConfig``: every knob of ``dimensionx scene4d`` / ``render4d``, importable without torch.

Grid defaults (9 times x 25 views, one refinement loop) are chosen for a whole scene in about
5 minutes in ``fast`` mode on one H200: see docs/fourd.md for the count of videos behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DimensionXError
from ..models.hub import DEFAULT_MODEL
from ..videofiles import MAX_RENDER_FRAMES

OFFSET_REFERENCES = ("mean", "key", "none")  # offset_reference: the grid's times, the key row's time, absolute offsets


@dataclass
class FourDConfig:
    # ---- input and output
    image: str | None = None  # input photo
    prompt: str = ""  # caption of the photo
    out: str = ""  # scene folder; an existing one from the same settings is resumed
    overwrite: bool = False  # start over in an existing scene folder
    cameras: str | None = None  # transforms.json with one camera per view: skips SfM (tests, known paths)
    seed: int = 42

    # ---- video model (shared by every video of the grid)
    model: str = DEFAULT_MODEL  # hub id, local diffusers folder, or "tiny"
    lora_dir: str | None = None  # folder searched for director files by name
    mode: str = "exact"  # "exact", "fast" or "lowmem" (see video/modes.py)
    device: str = "auto"
    dtype: str = "auto"
    steps: int = 50  # denoising steps of a full video
    guidance: float = 6.0
    fps: int = 8  # of the grid's mp4s

    # ---- the grid (paper: T-Director video, key frame, reference, identity-preserving rows)
    time_director: str = "time"  # T-Director: the scene moves, the camera stays
    space_director: str = "orbit_left"  # S-Director of every spatial video
    time_frames: int = 49  # frames of the T-Director video (8k + 1: the VAE decodes 1 + 2j latent frames)
    times: int = 9  # M: time frames taken from it, evenly spaced (8k + 1: a view's sequence is a video)
    views: int = 25  # K: views per time, frames of each spatial video (8k + 1)
    ip_start: float = 0.2  # identity-preserving: fraction of the schedule skipped; rows start from the reference noised to that step
    ip_strength: float = 0.5  # 1 - lambda: weight of the noised reference blended into a row after each early step
    ip_until: float = 0.5  # fraction of the schedule (from the start) during which the blend applies
    loops: int = 1  # L: multi-loop refinement rounds (T-Director over each view, then S-Director over each time)
    refine_strength: float = 0.3  # SDEdit strength of a refinement pass: fraction of the schedule re-run (0: identity)
    batch: int = 8  # videos of one shape denoised together (rows, refinement passes); lowmem mode runs 1 at a time
    gpus: int = 1  # processes (one GPU each, torchrun) the grid's groups of videos are shared over

    # ---- 4D Gaussians
    fit_device: str = "auto"  # device of the 4D fit; "auto": cuda if available
    iterations: int | None = None  # None: fit_iterations[mode] on CUDA, 300 on CPU
    fit_iterations: dict[str, int] = field(default_factory=lambda: {"exact": 6000, "fast": 3000, "lowmem": 6000})  # by video mode
    coarse_iterations: int | None = None  # canonical-only warm-up; None: 1/6 of the iterations
    holdout: int = 8  # every K-th view is held out of training, evaluated at every time (0: none)
    max_size: int = 480  # px, longest side of the frames the fit sees (0 keeps the size)
    init_points: int = 20000  # points drawn in the cameras' box when SfM gives none (--cameras)
    init_opacity: float = 0.1
    sh_degree: int = 3  # spherical harmonics degree of the splat colours
    ssim_lambda: float = 0.2  # loss = (1 - l) L1 + l (1 - SSIM) + tv_weight TV(planes)
    tv_weight: float = 1e-4
    offset_reference: str = "mean"  # offsets D(x, t) - D(x, t_ref): "mean" over the grid's times, "key" row's time, "none" (absolute)
    offset_weight: float = 0.01  # + this x mean |position offset| / scene extent (L1: what does not move stays put)
    plane_resolution: int = 32  # cells per side of the coarsest spatial plane
    plane_scales: tuple[int, ...] = (1, 2)  # multipliers of the spatial resolution (multi-resolution HexPlane)
    time_resolution: int | None = None  # cells along time; None: the number of times
    plane_features: int = 16  # channels per plane
    mlp_width: int = 64  # hidden width of the feature MLP and of each head
    densify: bool = True  # gsplat's DefaultStrategy on the canonical Gaussians (clone / split / prune)
    densify_from: float = 0.1  # fraction of the iterations before the first densification
    densify_until: float = 0.7  # fraction of the iterations after which the count is frozen
    densify_every: int = 100  # iterations between densifications
    grow_grad2d: float = 2e-4  # image-plane gradient (screen units) above which a Gaussian is cloned or split
    grow_scale3d: float = 0.01  # times the scene extent: smaller Gaussians are cloned, larger ones split
    prune_opa: float = 0.005  # Gaussians less opaque than this are removed
    prune_large: bool = False  # also remove Gaussians larger than prune_scale3d at every densification (gsplat: only after an opacity reset)
    prune_scale3d: float = 0.1  # times the scene extent: the largest axis of a Gaussian prune_large removes
    max_gaussians: int = 300_000  # densification grows no further (the largest gradients grow first); 0: no limit
    lr_means: float = 1.6e-4  # times the scene scale
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_colors: float = 2.5e-3
    lr_planes: float = 1.6e-3
    lr_mlp: float = 1.6e-4
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    # ---- renders
    render_frames: int = 49  # frames of each render video
    render_fps: int = 12


def check_render_frames(flag: str, frames: int) -> None:
    """Refuses, before a scene loads, a render video of fewer than 1 or more than ``MAX_RENDER_FRAMES`` frames."""
    if not 1 <= frames <= MAX_RENDER_FRAMES:
        raise DimensionXError(f"{flag} {frames}: a video of 1 to {MAX_RENDER_FRAMES} frames (each is held in memory "
                              "until the mp4 is written)")
