"""Every knob of the video -> 3D Gaussian scene stage, in one dataclass (``configs/recon.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

GPU_ITERATIONS = 7000  # gsplat on CUDA: the 3DGS "7k" schedule
CPU_ITERATIONS = 300  # the pure-torch reference renderer is ~1000x slower: tiny scenes only


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
    max_size: int = 720  # px; longest image side after downscaling (0 keeps the size)
    shot: int | None = None  # which shot of a montage to reconstruct (0-based); None: the longest
    cut_ratio: float = 1.6  # a hard cut: a frame change this many times its neighbours' ...
    cut_min_change: float = 0.05  # ... and at least this mean abs change (0-1 colour, 32x32 thumbnails)
    cut_window: int = 2  # distinct frames on each side that make the neighbourhood
    cut_memory: int = 12  # distinct frames before a jump that a cut's new frame must all differ from ...
    cut_novelty: float = 0.5  # ... by at least this times the jump (else it returns to a view just shown)

    # ---- cameras (pycolmap structure from motion)
    camera_model: str = "SIMPLE_PINHOLE"  # one shared pinhole camera: generated videos have no distortion
    sift_max_features: int = 4096  # SIFT keypoints per frame
    match_overlap: int = 6  # each frame is matched with this many following frames
    loop_candidates: int = 3  # far-apart frames matched per frame by thumbnail similarity (loop closure)
    loop_min_gap: int = 0  # frames; 0 means 2 * match_overlap. Loop pairs are at least this far apart
    min_registered_fraction: float = 0.5  # fewer registered frames than this fraction is an error
    ba_global_ratio: float = 1.4  # global bundle adjustment when the model grew by this factor (COLMAP: 1.1)
    ba_refinements: int = 1  # bundle-adjustment rounds after filtering / re-triangulating (COLMAP: 2 local, 5 global)

    # ---- 3D Gaussians (gsplat)
    iterations: int | None = None  # None: 7000 on CUDA, 300 on CPU
    sh_degree: int = 3  # spherical harmonics degree of the splat colours
    sh_degree_interval: int = 1000  # iterations between SH degree increments
    ssim_lambda: float = 0.2  # loss = (1 - l) * L1 + l * (1 - SSIM)
    holdout: int = 8  # every K-th registered frame is held out for evaluation (0: none)
    init_opacity: float = 0.1
    init_scale: float = 1.0  # initial scale = this * mean distance to the 3 nearest SfM points
    random_init_points: int = 20000  # points drawn in the cameras' bounding box when --cameras is given
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB in [0, 1] behind the splats
    lr_means: float = 1.6e-4  # times the scene scale; decays to 1% over the run
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    loss_cuda_graph: bool = True  # on CUDA, replay the loss and its gradient as one captured CUDA graph
    max_nan_steps: int = 10  # NaN or infinite losses within 50 iterations that stop the run with an error

    # ---- densification (gsplat DefaultStrategy, also with the CPU reference renderer)
    densify: bool = True
    refine_start_iter: int = 500
    refine_stop_iter: int = 5000
    refine_every: int = 100
    reset_every: int = 3000  # opacity reset period (iterations)
    grow_grad2d: float = 2e-4  # image-plane gradient above which splats are split / duplicated
    grow_scale3d: float = 0.01  # times the scene scale: smaller splats are duplicated, larger split
    prune_opa: float = 0.005  # splats less opaque than this are removed

    # ---- camera refinement
    refine_cameras: bool = False  # optimise a pose correction per training frame
    pose_lr: float = 1e-5
    pose_reg: float = 1e-6  # weight decay of the pose corrections

    # ---- renders
    orbit_frames: int = 120  # frames of renders/orbit.mp4
    orbit_fps: float = 30.0
    orbit_smoothing: float = 2.0  # frames; Gaussian sigma applied to camera centres along the path


def resolve_iterations(config: ReconConfig, device_type: str) -> int:
    """The training length: the configured one, else the default of the device that trains."""
    if config.iterations is not None:
        return config.iterations
    return GPU_ITERATIONS if device_type == "cuda" else CPU_ITERATIONS
