"""``dimensionx recon VIDEO``: flags override ``ReconConfig`` (and ``--config``)."""

from __future__ import annotations

import argparse
import dataclasses

from ..config import default_help, load_config
from .config import ReconConfig


def register(commands) -> None:
    recon = commands.add_parser(
        "recon", help="video or frame folder -> cameras (SfM) -> 3D Gaussian scene",
        description="Reconstruct a 3D Gaussian scene from a video: pycolmap cameras, gsplat splats, "
                    "files for SuperSplat / nerfstudio / COLMAP. Settings: configs/recon.yaml.")
    recon.add_argument("video", help="a video file (mp4, ...) or a folder of frames")
    add_recon_flags(recon)
    recon.set_defaults(run=run_recon)


def add_recon_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output scene folder (written atomically)")
    parser.add_argument("--config", help="YAML/JSON ReconConfig (e.g. configs/recon.yaml); flags override it")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out folder")
    parser.add_argument("--preset", help="named defaults of the settings left unset: default (= fast: 3000 iterations, "
                        "SfM at 480 px), quality (7000 iterations, SfM at full size), mcmc (gsplat's MCMC strategy); "
                        "CPU runs keep their small defaults")
    parser.add_argument("--frames", type=int, help=default_help(ReconConfig, "frames", "frames sampled uniformly from the shot"))
    parser.add_argument("--max-size", dest="max_size", type=int, help="px, longest image side (default 720 on CUDA, 240 on CPU; 0 keeps)")
    parser.add_argument("--shot", type=int, help="shot of a montage to reconstruct, 0-based (default: the longest)")
    parser.add_argument("--orbit-degrees", dest="orbit_degrees", type=float,
                        help="the video's orbit sweep, e.g. 360: matches across the seam and checks the path "
                             "(default: from the video's JSON sidecar)")
    parser.add_argument("--cameras", help="transforms.json with one camera per sampled frame: skips SfM")
    parser.add_argument("--iterations", type=int, help="training iterations (default 3000 on CUDA, 300 on CPU)")
    parser.add_argument("--max-gaussians", dest="max_gaussians", type=int,
                        help="SfM points the splats start from, at most (default all on CUDA, 6000 on CPU; 0: all)")
    parser.add_argument("--sh-degree", dest="sh_degree", type=int, help=default_help(ReconConfig, "sh_degree", "spherical harmonics degree, 0-3"))
    parser.add_argument("--holdout", type=int, help=default_help(ReconConfig, "holdout", "hold out every K-th frame for evaluation; 0: none"))
    parser.add_argument("--refine-cameras", dest="refine_cameras", action="store_true", default=None,
                        help="optimise the training cameras' poses with the splats")
    parser.add_argument("--appearance", action="store_true", default=None,
                        help="learn an affine colour change per training frame (exposure / colour drift)")
    parser.add_argument("--rasterize-mode", dest="rasterize_mode",
                        help="gsplat's rasterize_mode: classic (default) or antialiased (each splat's opacity "
                             "compensated for the 2D blur; the CPU renderer does the same)")
    parser.add_argument("--strategy", help="densification: default (clone / split / prune) or mcmc (CUDA only, capped "
                        "at mcmc_cap Gaussians); default: the preset's")
    parser.add_argument("--densify", action=argparse.BooleanOptionalAction, default=None,
                        help=default_help(ReconConfig, "densify", "gsplat DefaultStrategy densification"))
    parser.add_argument("--orbit-frames", dest="orbit_frames", type=int, help="frames of renders/orbit.mp4 (default 120 on CUDA, 24 on CPU; 0: none)")
    parser.add_argument("--device", help=default_help(ReconConfig, "device", "auto, cuda or cpu"))
    parser.add_argument("--seed", type=int, help=default_help(ReconConfig, "seed", "random seed"))
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help=default_help(ReconConfig, "progress", "progress bar while training"))


RECON_FIELDS = {f.name for f in dataclasses.fields(ReconConfig)}


def recon_config(args: argparse.Namespace, video: str) -> ReconConfig:
    overrides = {k: v for k, v in vars(args).items() if k in RECON_FIELDS}
    return load_config(ReconConfig, args.config, {**overrides, "video": video})


def run_recon(args: argparse.Namespace) -> int:
    from .pipeline import reconstruct  # pycolmap, scipy, torch: only when the command runs

    reconstruct(recon_config(args, args.video))
    return 0
