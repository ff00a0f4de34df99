"""``dimensionx scene4d`` (image -> grid -> 4D Gaussians) and ``dimensionx render4d`` (any time, any camera path)."""

from __future__ import annotations

import argparse
import dataclasses

from ..config import default_help, load_config
from .config import FourDConfig, check_render_frames

FLAGS = {  # flag -> help; every other FourDConfig field is reachable through --config
    "prompt": "caption of the photo",
    "out": "scene folder (an existing one made with the same settings is resumed)",
    "model": default_help(FourDConfig, "model", 'video model: hub id, local folder, or "tiny" (random weights, for tests)'),
    "lora_dir": "folder searched for director files by name",
    "mode": default_help(FourDConfig, "mode", "exact, fast or lowmem"),
    "device": default_help(FourDConfig, "device", "device of the video model: auto, cuda, cpu"),
    "fit_device": default_help(FourDConfig, "fit_device", "device of the 4D fit: auto, cuda, cpu"),
    "steps": default_help(FourDConfig, "steps", "denoising steps of a full video"),
    "seed": default_help(FourDConfig, "seed", "seed of every video and of the fit"),
    "space_director": default_help(FourDConfig, "space_director", "S-Director of the spatial videos"),
    "time_frames": default_help(FourDConfig, "time_frames", "frames of the T-Director video, 8k+1: 9, 17, ..., 49"),
    "times": default_help(FourDConfig, "times", "M: rows (times) of the grid, 8k+1"),
    "views": default_help(FourDConfig, "views", "K: columns (views) of the grid, 8k+1"),
    "loops": default_help(FourDConfig, "loops", "multi-loop refinement rounds"),
    "refine_strength": default_help(FourDConfig, "refine_strength", "SDEdit strength of each refinement pass, 0-1"),
    "batch": default_help(FourDConfig, "batch", "videos of one shape denoised together, rows and refinement; lowmem runs 1; "
                                                "lower it if memory is short"),
    "gpus": default_help(FourDConfig, "gpus", "N: share the grid's videos over N processes, one GPU each (torchrun underneath; "
                                              "CPU processes with --device cpu)"),
    "ip_start": default_help(FourDConfig, "ip_start", "identity-preserving: fraction of the schedule skipped"),
    "ip_strength": default_help(FourDConfig, "ip_strength", "identity-preserving: blend weight of the reference, 1 - lambda"),
    "ip_until": default_help(FourDConfig, "ip_until", "identity-preserving: fraction of the schedule blended"),
    "cameras": "transforms.json with one camera per view: skips SfM",
    "iterations": "4D fit iterations (default on CUDA: fit_iterations of the mode, exact 6000, fast 3000; 300 on CPU)",
    "max_size": default_help(FourDConfig, "max_size", "px, longest side of the frames the fit sees"),
    "init_points": default_help(FourDConfig, "init_points", "Gaussians drawn in the cameras' box when --cameras replaces SfM"),
    "render_frames": default_help(FourDConfig, "render_frames", "frames of each render video"),
}


def register(commands) -> None:
    scene4d = commands.add_parser(
        "scene4d", help="image -> ST-Director video grid -> 4D Gaussian scene (orbit it and play it in time)",
        description="Build a 4D scene from one photo: a T-Director video, an S-Director grid with identity-preserving "
                    "denoising and multi-loop refinement, then 4D Gaussians. Settings: FourDConfig defaults, then "
                    "--config (configs/fourd.yaml or a scene4d.json to reproduce), then flags.")
    scene4d.add_argument("image", help="input photo")
    for name, help_text in FLAGS.items():
        kind = next(f.type for f in dataclasses.fields(FourDConfig) if f.name == name)
        scene4d.add_argument(f"--{name.replace('_', '-')}", type=_parser_type(kind), help=help_text)
    scene4d.add_argument("--overwrite", action="store_true", default=None, help="start the scene folder over")
    scene4d.add_argument("--config", help="YAML preset or a scene4d.json sidecar")
    scene4d.set_defaults(run=run_scene4d, kept_on_interrupt=kept_for_resume)

    render4d = commands.add_parser("render4d", help="render a 4D scene at any time along its camera path, or export it",
                                   description="Render SCENE (a scene4d folder) as an orbit at --time, or as a time-lapse "
                                               "from --view, or as a space-time spiral; or --export it as one 3DGS PLY per "
                                               "time, a .splatv for the splaTV web viewer and the camera path.")
    render4d.add_argument("scene", help="scene folder written by scene4d (or its scene4d/ sub-folder)")
    output = render4d.add_mutually_exclusive_group(required=True)
    output.add_argument("--out", help="output mp4")
    output.add_argument("--export", metavar="FOLDER", help="write time_0000.ply ..., scene.splatv and transforms.json "
                                                           "into FOLDER (--frames: that many times; default the grid's)")
    group = render4d.add_mutually_exclusive_group()
    group.add_argument("--time", type=float, help="orbit along the views at this time in [0, 1] (default 0.5)")
    group.add_argument("--view", type=int, help="time-lapse from this view")
    group.add_argument("--spiral", action="store_true", help="time 0 -> 1 while the camera travels the views and back")
    render4d.add_argument("--frames", type=int, help=default_help(FourDConfig, "render_frames", "frames of the video; "
                                                                   "with --export, times exported"))
    render4d.add_argument("--fps", type=int, default=FourDConfig.render_fps, help="frames per second")
    render4d.add_argument("--device", default="auto", help="auto, cuda or cpu")
    render4d.add_argument("--overwrite", action="store_true", help="replace --out or --export")
    render4d.set_defaults(run=run_render4d)


def _parser_type(kind):
    kind = str(kind)
    return int if "int" in kind else float if "float" in kind else str


def run_scene4d(args: argparse.Namespace) -> int:
    from ..video.parallel import is_distributed, is_main_process
    from .pipeline import check_inputs, make_scene4d
    from .shard import launch

    overrides = {name: getattr(args, name) for name in FLAGS} | {"image": args.image, "overwrite": args.overwrite}
    config = load_config(FourDConfig, args.config, overrides)
    if config.gpus > 1 and not is_distributed():
        check_inputs(config)  # a typo costs no processes
        return launch(args.argv, config.gpus)
    args.scene_folder = config.out
    out = make_scene4d(config)
    if is_main_process():
        print(f"4D scene written to {out} (renders in {out / 'renders'}; `dimensionx render4d {out} --export FOLDER` for viewers)")
    return 0


def kept_for_resume(args: argparse.Namespace) -> str | None:
    """The interrupted-run message's ending once the scene folder exists: what it keeps and how to go on."""
    from pathlib import Path

    folder = getattr(args, "scene_folder", None)  # set once the pipeline module is imported
    if not folder:
        return None
    from .pipeline import SIDECAR

    if not (Path(folder) / SIDECAR).is_file():
        return None
    from ..outputs import set_aside_of

    aside = set_aside_of(folder)
    again = "run it again without --overwrite to resume" if args.overwrite else "run the same command to resume"
    return (f"the stages finished so far and the grid's refinement passes are kept in {folder}: {again}"
            + (f"; the scene it replaces stays in {aside} until this one is complete" if aside is not None else ""))


def run_render4d(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..device import resolve_device
    from ..errors import DimensionXError
    from ..outputs import check_writable
    from ..videofiles import check_fps, check_video_encoder, write_video
    from .render4d import SceneRenderer

    folder = Path(args.scene)
    folder = folder / "scene4d" if (folder / "scene4d").is_dir() else folder
    if args.export:
        from .export import export_4d

        export_4d(folder, Path(args.export), args.frames, args.overwrite)
        print(f"4D scene exported to {args.export}")
        return 0
    frames = FourDConfig.render_frames if args.frames is None else args.frames
    check_render_frames("--frames", frames)
    check_fps(args.fps, "--fps", default=FourDConfig.render_fps)
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise DimensionXError(f"--out {out}: the render is an mp4, name it *.mp4")
    check_writable(out, args.overwrite)
    check_video_encoder(f"--out {out}")
    renderer = SceneRenderer(folder, resolve_device(args.device))
    if args.view is not None:
        video = renderer.timelapse(args.view, frames)
    elif args.spiral:
        video = renderer.spiral(frames)
    else:
        video = renderer.orbit(0.5 if args.time is None else args.time, frames)
    write_video(video, out, args.fps)
    print(f"render written to {out}")
    return 0
