"""Image -> 4D scene, top to bottom: ``make_scene4d(FourDConfig(...))``. Every stage is resumable.

The scene folder holds one sub-folder per stage, each written atomically; a stage whose folder
exists is read back instead of run, so a crash after the grid does not regenerate the grid:

1. ``temporal/``: the T-Director video and the rows taken from it (``temporal.json``);
2. ``grid/``: the spatial video of every time (``time_MM.mp4``), the view sequences
   (``view_KK.mp4``), the unrefined rows (``raw/``), the contact sheet, ``grid.json``;
3. ``scene4d/``: cameras (SfM on the reference row, or ``--cameras``), the 4D Gaussians, ``fit.json``;
4. ``renders/``: orbit at t = 0.5, time-lapse of view 0, space-time spiral;
5. ``metrics.json``: everything measured, with the settings; ``scene4d.json`` reproduces the run.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import config_to_dict
from ..errors import DimensionXError
from ..media import (OUTPUT_MARKER, atomic_dir, check_output_dir, check_replaceable, check_video_encoder, read_frames, write_json,
                     write_video)
from .config import OFFSET_REFERENCES, FourDConfig
from .grid import Clock, Grid, consistency, contact_sheet, generate_rows, generate_temporal, refine

log = logging.getLogger(__name__)

SIDECAR = "scene4d.json"


def make_scene4d(config: FourDConfig, generator=None) -> Path:
    """Builds (or resumes) the scene folder ``config.out``; returns it. ``generator``: an already loaded
    ``DirectorVideoGenerator`` (reusable, of ``config.mode``) to use instead of loading one (the app's)."""
    check_inputs(config)
    out = prepare_folder(config)
    seconds: dict[str, float] = {}
    generator = LazyGenerator(config, generator)
    with stage(out, "temporal", seconds) as folder:
        if folder:
            clock = Clock()
            with clock("load"):
                photo = generator.photo()
            temporal = generate_temporal(generator.get(), photo, config, clock)
            write_video(temporal, folder / "temporal.mp4", config.fps)
            write_json({"seconds": clock.seconds}, folder / "temporal.json")
    temporal = read_frames(out / "temporal" / "temporal.mp4")[0]
    with stage(out, "grid", seconds) as folder:
        if folder:
            write_grid(folder, generator.get(), temporal, config)
    generator.release()
    grid = read_grid(out / "grid")
    with stage(out, "scene4d", seconds) as folder:
        if folder:
            from .scene import fit_scene

            fit_scene(grid, out / "grid", folder, config)
    with stage(out, "renders", seconds) as folder:
        if folder:
            from .render4d import SceneRenderer, write_renders

            write_renders(SceneRenderer(out / "scene4d", fit_device(config), config.background), folder,
                          config.render_frames, config.render_fps)
    write_json(metrics(out, config), out / "metrics.json")
    return out


def check_inputs(config: FourDConfig) -> None:
    from ..directors.registry import get_director
    from ..video.modes import check_mode

    if not config.out:
        raise DimensionXError("no scene folder: pass --out FOLDER")
    if config.image is None or not Path(config.image).is_file():
        raise DimensionXError(f"input image {config.image!r} is not a file: pass the photo to animate")
    check_video_encoder("each video of the grid")
    for name, value in (("--time-frames", config.time_frames), ("--times", config.times), ("--views", config.views)):
        if value < 9 or (value - 1) % 8:
            raise DimensionXError(f"{name} {value}: every row and column of the grid is a CogVideoX video of an odd number "
                                  "of latent frames (the VAE decodes 1 + 2j latents to 8j + 1 frames): use 9, 17, 25, 33, 41 or 49")
    if config.times > config.time_frames:
        raise DimensionXError(f"--times {config.times} is more than the {config.time_frames} frames of the T-Director video")
    for name, value in (("--ip-start", config.ip_start), ("--ip-strength", config.ip_strength),
                        ("--ip-until", config.ip_until), ("--refine-strength", config.refine_strength)):
        if not 0 <= value <= 1:
            raise DimensionXError(f"{name} {value}: a fraction in [0, 1]")
    if config.offset_reference not in OFFSET_REFERENCES:
        raise DimensionXError(f"offset_reference {config.offset_reference!r}: use one of {', '.join(OFFSET_REFERENCES)}")
    if config.batch < 1:
        raise DimensionXError(f"--batch {config.batch}: 1 or more videos at a time")
    if config.loops < 0:
        raise DimensionXError(f"--loops {config.loops}: 0 or more")
    if get_director(config.time_director).kind != "T" or get_director(config.space_director).kind != "S":
        raise DimensionXError(f"--time-director {config.time_director} must be a T-Director and --space-director "
                              f"{config.space_director} an S-Director (see `dimensionx motions`)")
    check_mode(config.mode)
    if config.cameras and not Path(config.cameras).is_file():
        raise DimensionXError(f"--cameras {config.cameras} is not a file: pass a transforms.json with {config.views} frames")


def prepare_folder(config: FourDConfig) -> Path:
    """Creates the scene folder, or checks an existing one was made with the same settings (then it resumes)."""
    out = Path(config.out)
    settings = {k: v for k, v in config_to_dict(config).items() if k != "overwrite"}
    if out.exists() and config.overwrite:
        check_replaceable(out)
        shutil.rmtree(out)
    if out.exists():
        try:
            previous = json.loads((out / SIDECAR).read_text())["config"]
        except (OSError, ValueError, KeyError):
            check_output_dir(out, overwrite=False)  # names the folder and the fix
            raise
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed:
            raise DimensionXError(f"{out} holds a scene made with other settings ({', '.join(changed)}): pass --overwrite "
                                  "to start over, or the same settings to resume it")
        log.info("resuming %s: stages already written are kept", out)
        return out
    check_output_dir(out, overwrite=False)
    out.mkdir(parents=True)
    (out / OUTPUT_MARKER).write_text(json.dumps({"tool": "dimensionx", "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    write_json({"config": settings}, out / SIDECAR)
    return out


@contextlib.contextmanager
def stage(out: Path, name: str, seconds: dict[str, float]):
    """Yields a temporary folder to fill (moved onto ``out/name`` at the end), or None if the stage is done."""
    if (out / name).is_dir():
        log.info("%s/ exists: kept", name)
        yield None
        return
    start = time.perf_counter()
    with atomic_dir(out / name) as folder:
        yield folder
        seconds[name] = time.perf_counter() - start
        write_json({"seconds": round(seconds[name], 3)}, folder / "stage.json")
    log.info("%s: %.1f s", name, seconds[name])


class LazyGenerator:
    """The video model, loaded at the first stage that needs it (a resumed run past the grid never loads it)."""

    def __init__(self, config: FourDConfig, generator=None):
        self.config, self.generator = config, generator

    def get(self):
        if self.generator is None:
            from ..video.config import VideoConfig
            from ..video.generator import load_generator

            video = VideoConfig(model=self.config.model, device=self.config.device, dtype=self.config.dtype, mode=self.config.mode)
            self.generator = load_generator(video, reusable=True)
        return self.generator

    def photo(self) -> Image.Image:
        from ..video.image import fit_image, load_image

        height, width = self.get().size
        return fit_image(load_image(self.config.image), width, height, "crop")

    def release(self) -> None:
        self.generator = None
        gc.collect()  # the pipeline's modules hold reference cycles (hooks)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def write_grid(folder: Path, generator, temporal: np.ndarray, config: FourDConfig) -> None:
    start, clock = time.perf_counter(), Clock()
    raw = generate_rows(generator, temporal, config, clock)
    rows_done = time.perf_counter()
    refined = refine(generator, raw, config, clock) if config.loops > 0 else raw
    seconds = {"reference_and_rows": rows_done - start, "refinement": time.perf_counter() - rows_done, **clock.seconds}
    for name, grid in (("raw", raw), ("", refined)):
        (folder / name).mkdir(exist_ok=True)
        for m, row in enumerate(grid.frames):
            write_video(row, folder / name / f"time_{m:02d}.mp4", config.fps)
    for k in range(refined.frames.shape[1]):
        write_video(refined.frames[:, k], folder / f"view_{k:02d}.mp4", config.fps)
    Image.fromarray(contact_sheet(refined.frames)).save(folder / "contact_sheet.png")
    write_json({"times": raw.times, "time_values": time_values(raw.times, config.time_frames), "key": raw.key,
                "consistency_before": consistency(raw.frames), "consistency_after": consistency(refined.frames),
                "seconds": {k: round(v, 3) for k, v in seconds.items()}},
               folder / "grid.json")


def time_values(times: list[int], time_frames: int) -> list[float]:
    """Frame indices of the T-Director video -> times in [0, 1]."""
    return [t / (time_frames - 1) for t in times]


def read_grid(folder: Path) -> Grid:
    info = json.loads((folder / "grid.json").read_text())
    rows = [read_frames(folder / f"time_{m:02d}.mp4")[0] for m in range(len(info["times"]))]
    return Grid(np.stack(rows), info["times"], info["key"])


def fit_device(config: FourDConfig) -> torch.device:
    if config.fit_device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.fit_device)


def metrics(out: Path, config: FourDConfig) -> dict:
    """metrics.json: the settings, the grid's consistency, the fit's held-out quality, seconds per stage."""
    read = lambda path: json.loads((out / path).read_text())  # noqa: E731
    grid, fit = read("grid/grid.json"), read("scene4d/fit.json")
    return {
        "config": {k: v for k, v in config_to_dict(config).items() if k != "overwrite"},
        "grid": {"times": grid["times"], "key_row": grid["key"], "consistency_before_refinement": grid["consistency_before"],
                 "consistency_after_refinement": grid["consistency_after"]},
        "fit": fit,
        "seconds": {name: read(f"{name}/stage.json")["seconds"] for name in ("temporal", "grid", "scene4d", "renders")},
        "seconds_detail": {"temporal": read("temporal/temporal.json")["seconds"], "grid": grid["seconds"], "scene4d": fit["seconds"]},
    }
