"""Image -> 4D scene, top to bottom: ``make_scene4d(FourDConfig(...))``. Every stage is resumable.

The scene folder holds one sub-folder per stage, each written atomically; a stage whose folder
exists is read back instead of run, so a crash after the grid does not regenerate the grid:

1. ``temporal/``: the T-Director video and the rows taken from it (``temporal.json``);
2. ``grid/``: the spatial video of every time (``time_MM.mp4``), the view sequences
   (``view_KK.mp4``), the unrefined rows (``raw/``), the contact sheet, ``grid.json``; the longest
   stage, so it also keeps its work as it goes (``.grid-partial/``: the rows, then the grid after
   each refinement pass): a run stopped inside it resumes from the last pass done;
3. ``scene4d/``: cameras (SfM on the reference row, or ``--cameras``), the 4D Gaussians, ``fit.json``;
4. ``renders/``: orbit at t = 0.5, time-lapse of view 0, space-time spiral;
5. ``metrics.json``: everything measured, with the settings; ``scene4d.json`` reproduces the run.

Each stage's ``stage.json`` has its seconds and peak GPU memory, those of earlier runs that stopped
inside it included, and the size and SHA-256 of each of its files: a resumed run checks them before
it keeps the stage. With ``--gpus N`` (torchrun) the grid's videos are shared over N processes
(``shard.py``); the first one alone writes.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_file, remove_leftover_temps, write_json
from ..config import config_to_dict
from ..device import resolve_device
from ..errors import DimensionXError
from ..imagefiles import check_image
from ..models.hub import MAX_FRAMES
from ..outputs import atomic_dir, check_output_dir, finish_output_dir, start_output_dir
from ..splats.metrics import check_holdout
from ..video.image import check_size
from ..video.inputs import check_sampling
from ..videofiles import check_fps, check_video_encoder, read_frames, write_video
from .config import OFFSET_REFERENCES, FourDConfig, check_render_frames
from .grid import Clock, Grid, consistency, contact_sheet, generate_rows, generate_temporal, refine, time_values
from .shard import NO_SHARD, Shard
from .store import STAGE_FILE, check_stage, file_digests, read_checked

log = logging.getLogger(__name__)

SIDECAR = "scene4d.json"
STAGES = ("temporal", "grid", "scene4d", "renders")
RUN_ONLY = ("overwrite", "gpus")  # settings that do not change the scene: a run may differ in them and resume
PARTIAL_GRID = ".grid-partial"  # the grid stage's work so far (rows, then the grid after each refinement pass)


def make_scene4d(config: FourDConfig, generator=None) -> Path:
    """Builds (or resumes) the scene folder ``config.out``; returns it. ``generator``: an already loaded
    ``DirectorVideoGenerator`` (reusable, of ``config.mode``) to use instead of loading one (the app's)."""
    check_inputs(config)
    shard = Shard.join(config.device) if generator is None else NO_SHARD  # --gpus N: this process's share of the grid
    out = prepare_folder(config) if shard.main else Path(config.out)
    shard.barrier()
    seconds: dict[str, float] = {}
    gsplat_build = build_gsplat_in_background(out, config) if shard.main else None
    generator = LazyGenerator(config, generator, shard.device)
    if shard.main:
        with stage(out, "temporal", seconds) as run:
            if run:
                folder, clock = run.folder, Clock()
                with clock("load"):
                    photo = generator.photo()
                temporal = generate_temporal(generator.get(), photo, config, clock)
                write_video(temporal, folder / "temporal.mp4", config.fps)
                write_json({"seconds": clock.seconds}, folder / "temporal.json")
    shard.barrier()
    temporal = read_checked(out / "temporal" / "temporal.mp4", lambda path: read_frames(path)[0],
                            f"delete {out / 'temporal'} and run the same command, or pass --overwrite to start over")
    if not shard.main:  # the other processes make their share of the grid, then leave
        if not (out / "grid").is_dir():
            write_grid(None, generator.get(), temporal, config, out / PARTIAL_GRID, shard)
        generator.release()
        return out
    with stage(out, "grid", seconds) as run:
        if run:
            run.earlier = write_grid(run.folder, generator.get(), temporal, config, out / PARTIAL_GRID, shard)
    generator.release()
    grid = read_grid(out / "grid")
    if gsplat_build is not None:
        gsplat_build.join()
    with stage(out, "scene4d", seconds) as run:
        if run:
            from .scene import fit_scene

            fit_scene(grid, out / "grid", run.folder, config)
    with stage(out, "renders", seconds) as run:
        if run:
            from .render4d import SceneRenderer, write_renders

            write_renders(SceneRenderer(out / "scene4d", fit_device(config), config.background), run.folder,
                          config.render_frames, config.render_fps)
    write_json(metrics(out, config), out / "metrics.json")
    finish_output_dir(out)
    return out


def build_gsplat_in_background(out: Path, config: FourDConfig) -> threading.Thread | None:
    """gsplat compiles its CUDA extension at its first use (about 70 s on a fresh machine, where no wheel
    matches): where the fit will run on CUDA and has not run yet, that build starts now in a thread, its
    compiler in child processes, while the video model loads and makes the grid. Returns the thread."""
    if (out / "scene4d").is_dir() or resolve_device(config.fit_device).type != "cuda":
        return None

    def build() -> None:
        try:
            importlib.import_module("gsplat.cuda._backend")
        except Exception as error:  # noqa: BLE001 - the fit imports it again and reports what is wrong
            log.warning("gsplat's CUDA extension did not build in the background (%s): the fit builds it", error)

    thread = threading.Thread(target=build, name="gsplat-build", daemon=True)
    thread.start()
    return thread


def check_inputs(config: FourDConfig) -> None:
    from ..directors.registry import get_director
    from ..video.modes import check_mode

    if not config.out:
        raise DimensionXError("no scene folder: pass --out FOLDER")
    if config.image is None or not Path(config.image).is_file():
        raise DimensionXError(f"input image {config.image!r} is not a file: pass the photo to animate")
    check_size(config.image, *check_image(config.image))
    check_video_encoder("each video of the grid")
    check_sampling(config.steps, config.guidance, config.seed, config.fps)
    for name, value in (("--time-frames", config.time_frames), ("--times", config.times), ("--views", config.views)):
        if value < 9 or (value - 1) % 8 or value > MAX_FRAMES:
            raise DimensionXError(f"{name} {value}: every row and column of the grid is a CogVideoX video of an odd number "
                                  "of latent frames (the VAE decodes 1 + 2j latents to 8j + 1 frames): use 9, 17, 25, 33, 41 or 49 "
                                  f"(at most {MAX_FRAMES}: longer videos do not fit a GPU)")
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
    check_fit_numbers(config)
    if config.cameras:
        check_cameras(config.cameras, config.views)


def check_fit_numbers(config: FourDConfig) -> None:
    """The counts of the 4D fit and its renders, checked before the first video is made."""
    if config.gpus < 1:
        raise DimensionXError(f"--gpus {config.gpus}: 1 or more processes (one GPU each)")
    if config.iterations is not None and config.iterations < 1:
        raise DimensionXError(f"--iterations {config.iterations}: the 4D fit needs at least 1 iteration (or leave it "
                              "out for the mode's default)")
    for name, value, low in (("--max-size", config.max_size, 0), ("--init-points", config.init_points, 1)):
        if value < low:
            raise DimensionXError(f"{name} {value}: {low} or more (default {getattr(FourDConfig, name.lstrip('-').replace('-', '_'))})")
    check_holdout(config.holdout, "holdout")
    if not 0 <= config.sh_degree <= 3:
        raise DimensionXError(f"sh_degree {config.sh_degree}: gsplat renders spherical harmonics of degree 0 to 3")
    check_render_frames("--render-frames", config.render_frames)
    check_fps(config.render_fps, "render_fps", default=FourDConfig.render_fps)


def check_cameras(path: str, views: int) -> None:
    """``--cameras``: a readable transforms.json with one frame per view, checked before the first stage runs."""
    if not Path(path).is_file():
        raise DimensionXError(f"--cameras {path} is not a file: pass a transforms.json with {views} frames, one per view")
    try:
        frames = len(json.loads(Path(path).read_text())["frames"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DimensionXError(f"--cameras {path} is not a readable transforms.json ({error!r}): pass a nerfstudio-style "
                              f"file with a 'frames' list of {views} cameras, one per view") from None
    if frames != views:
        fix = f"pass --views {frames}" if frames >= 9 and (frames - 1) % 8 == 0 else "views are 9, 17, 25, 33, 41 or 49"
        raise DimensionXError(f"--cameras {path} has {frames} frames but the grid has --views {views}: give one camera "
                              f"per view ({fix})")


def prepare_folder(config: FourDConfig) -> Path:
    """Creates the scene folder, or checks an existing one was made with the same settings (then it resumes)."""
    out = Path(config.out)
    settings = {k: v for k, v in config_to_dict(config).items() if k not in RUN_ONLY}
    if out.exists() and config.overwrite:  # the old scene is kept aside until this one is complete
        start_output_dir(out, overwrite=True, stage="scene4d")
        write_json({"config": settings}, out / SIDECAR)
        return out
    if out.exists():
        if not (out / SIDECAR).is_file():
            check_output_dir(out, overwrite=False)  # not a scene folder: names the folder and the fix
        previous = read_checked(out / SIDECAR, lambda path: dict(json.loads(path.read_text())["config"]),
                                "its settings are lost: pass --overwrite to start over")
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed == ["cameras"] and not (out / "scene4d").is_dir():  # the fit has not run: the grid is the same
            log.info("resuming %s with --cameras %s: the stages before the fit are kept", out, config.cameras)
            write_json({"config": settings}, out / SIDECAR)
            changed = []
        if changed:
            raise DimensionXError(f"{out} holds a scene made with other settings ({', '.join(changed)}): pass --overwrite "
                                  "to start over, or the same settings to resume it")
        log.info("resuming %s: stages already written are kept", out)
        for name in STAGES:
            remove_leftover_temps(out / name)
        return out
    start_output_dir(out, overwrite=False, stage="scene4d")
    write_json({"config": settings}, out / SIDECAR)
    return out


@dataclass
class StageRun:
    folder: Path  # to fill; moved onto the stage's folder at the end
    earlier: dict | None = None  # {"seconds", "peak_gpu_gib"} of earlier runs stopped inside this stage


def peak_gpu_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def larger_peak(earlier: float | None) -> float | None:
    """The larger of an earlier run's peak GPU memory and this process's (None where neither is known)."""
    return max((p for p in (earlier, peak_gpu_gib()) if p is not None), default=None)


@contextlib.contextmanager
def stage(out: Path, name: str, seconds: dict[str, float]):
    """Yields a :class:`StageRun` whose folder is moved onto ``out/name`` at the end, or None if the stage is done."""
    if (out / name).is_dir():
        check_stage(out / name, f"delete {out / name} and run the same command to redo that stage (the stages before it "
                                "are kept), or pass --overwrite to start over")
        log.info("%s/ exists: kept", name)
        yield None
        return
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with atomic_dir(out / name) as folder:
        run = StageRun(folder)
        yield run
        earlier = run.earlier or {}
        seconds[name] = earlier.get("seconds", 0.0) + time.perf_counter() - start
        write_json({"seconds": round(seconds[name], 3), "peak_gpu_gib": larger_peak(earlier.get("peak_gpu_gib")),
                    **({"seconds_before_resume": round(earlier["seconds"], 3)} if earlier else {}),
                    "files": file_digests(folder)}, folder / STAGE_FILE)
    log.info("%s: %.1f s", name, seconds[name])


class LazyGenerator:
    """The video model, loaded at the first stage that needs it (a resumed run past the grid never loads it)."""

    def __init__(self, config: FourDConfig, generator=None, device: torch.device | None = None):
        self.config, self.generator, self.device = config, generator, device  # device: this process's GPU under --gpus N

    def get(self):
        if self.generator is None:
            from ..video.config import VideoConfig
            from ..video.generator import load_generator

            device = self.config.device if self.device is None else str(self.device)
            video = VideoConfig(model=self.config.model, device=device, dtype=self.config.dtype, mode=self.config.mode)
            self.generator = load_generator(video, reusable=True)
            if self.device is not None:  # --gpus N: each process makes whole videos, not one guidance branch of each
                from diffusers.hooks import HookRegistry

                from ..video.parallel import HOOK_NAME

                HookRegistry.check_if_exists_or_initialize(self.generator.pipe.transformer).remove_hook(HOOK_NAME)
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


def write_grid(folder: Path | None, generator, temporal: np.ndarray, config: FourDConfig, partial: Path,
               shard: Shard = NO_SHARD) -> dict | None:
    """Fills the grid stage's ``folder``. Keeps the work in ``partial`` as it goes (the rows, then the grid
    after each refinement pass) and resumes from what is there; deletes it at the end. Returns the kept
    seconds and peak GPU memory of the earlier runs it resumed (None if it resumed none). With ``shard``
    (--gpus N) every process runs this on its share; only the first one writes (the others pass no ``folder``)."""
    start, progress = time.perf_counter(), GridProgress.load(partial)
    shard.barrier()  # every process has read the kept work before the first one may replace it
    earlier = None if progress is None else {"seconds": progress.seconds, "peak_gpu_gib": progress.peak_gpu_gib}
    if progress is None:
        clock = Clock()
        raw = generate_rows(generator, temporal, config, clock, shard)
        clock.seconds["reference_and_rows"] = round(time.perf_counter() - start, 3)
        progress = GridProgress.start(partial, raw, clock.seconds, time.perf_counter() - start, write=shard.main)
    else:
        log.info("grid: resuming after %d of %d refinement passes (%s)", progress.passes, 2 * config.loops, partial)
    raw, clock = progress.raw(), Clock(dict(progress.clock))
    kept, refine_start, refined_before = progress.seconds, time.perf_counter(), progress.clock.get("refinement", 0.0)

    def save(n: int, frames: np.ndarray) -> None:
        now = time.perf_counter()
        clock.seconds["refinement"] = round(refined_before + now - refine_start, 3)
        progress.save_pass(n, frames, clock.seconds, kept + now - refine_start)

    refined = progress.grid()
    if progress.passes < 2 * config.loops:
        refined = refine(generator, refined, config, clock, progress.passes, save if shard.main else None, shard)
    if folder is None:
        return None
    clock.seconds.setdefault("refinement", 0.0)
    for name, grid in (("raw", raw), ("", refined)):
        (folder / name).mkdir(exist_ok=True)
        for m, row in enumerate(grid.frames):
            write_video(row, folder / name / f"time_{m:02d}.mp4", config.fps)
    for k in range(refined.frames.shape[1]):
        write_video(refined.frames[:, k], folder / f"view_{k:02d}.mp4", config.fps)
    Image.fromarray(contact_sheet(refined.frames)).save(folder / "contact_sheet.png")
    write_json({"times": raw.times, "time_values": time_values(raw.times, config.time_frames), "key": raw.key,
                "consistency_before": consistency(raw.frames), "consistency_after": consistency(refined.frames),
                "seconds": clock.seconds}, folder / "grid.json")
    shutil.rmtree(partial)
    return earlier


@dataclass
class GridProgress:
    """The grid stage's work so far, in ``path``: the unrefined rows (``raw.npy``), the grid after the last
    refinement pass done (``pass_N.npy``) and ``progress.json`` (which pass; seconds and clock kept; peak
    GPU memory). Each file is written whole before ``progress.json`` names it."""

    path: Path
    times: list[int]
    key: int
    passes: int  # refinement passes done
    clock: dict[str, float]  # the stage's Clock seconds so far
    seconds: float  # wall seconds of the work kept so far
    peak_gpu_gib: float | None
    made: np.ndarray | None = None  # [M, K, H, W, 3] uint8 rows made by a process that does not write them

    @classmethod
    def load(cls, path: Path) -> GridProgress | None:
        if not (path / "progress.json").is_file():
            return None
        return read_checked(path / "progress.json", lambda file: cls(path, **json.loads(file.read_text())), partial_fix(path))

    @classmethod
    def start(cls, path: Path, raw: Grid, clock: dict[str, float], seconds: float, write: bool = True) -> GridProgress:
        """The progress of freshly made rows, kept in ``path`` (``write``), else in memory (the other processes
        of --gpus N: read back, the rows are those a resumed run reads, to the float reductions over them)."""
        progress = cls(path, raw.times, raw.key, 0, dict(clock), seconds, peak_gpu_gib(), None if write else raw.frames)
        if write:
            shutil.rmtree(path, ignore_errors=True)  # an earlier run's, stopped before it saved its rows
            path.mkdir(parents=True)
            save_array(raw.frames, path / "raw.npy")
            progress.write()
        return progress

    def raw(self) -> Grid:
        if self.made is not None:
            return Grid(self.made, self.times, self.key)
        return Grid(read_checked(self.path / "raw.npy", np.load, partial_fix(self.path)), self.times, self.key)

    def grid(self) -> Grid:
        """The grid after the refinement passes done."""
        if not self.passes:
            return self.raw()
        return Grid(read_checked(self.path / f"pass_{self.passes}.npy", np.load, partial_fix(self.path)), self.times, self.key)

    def save_pass(self, n: int, frames: np.ndarray, clock: dict[str, float], seconds: float) -> None:
        save_array(frames, self.path / f"pass_{n}.npy")
        previous, self.passes, self.clock, self.seconds = self.passes, n, dict(clock), seconds
        self.peak_gpu_gib = larger_peak(self.peak_gpu_gib)
        self.write()
        (self.path / f"pass_{previous}.npy").unlink(missing_ok=True)

    def write(self) -> None:
        write_json({"times": self.times, "key": self.key, "passes": self.passes, "clock": self.clock,
                    "seconds": round(self.seconds, 3), "peak_gpu_gib": self.peak_gpu_gib}, self.path / "progress.json")


def partial_fix(path: Path) -> str:
    return f"delete {path} and run the same command: the grid is made again from its first video (finished stages are kept)"


def save_array(array: np.ndarray, path: Path) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def read_grid(folder: Path) -> Grid:
    fix = f"delete {folder} and run the same command to make the grid again, or pass --overwrite to start over"
    info = read_checked(folder / "grid.json", lambda path: json.loads(path.read_text()), fix)
    rows = [read_checked(folder / f"time_{m:02d}.mp4", lambda path: read_frames(path)[0], fix) for m in range(len(info["times"]))]
    return Grid(np.stack(rows), info["times"], info["key"])


def fit_device(config: FourDConfig) -> torch.device:
    return resolve_device(config.fit_device)


def metrics(out: Path, config: FourDConfig) -> dict:
    """metrics.json: the settings, the grid's consistency, the fit's held-out quality, seconds and peak GPU memory per stage."""
    read = lambda path: json.loads((out / path).read_text())  # noqa: E731
    grid, fit = read("grid/grid.json"), read("scene4d/fit.json")
    stages = {name: read(f"{name}/stage.json") for name in STAGES}
    return {
        "config": {k: v for k, v in config_to_dict(config).items() if k != "overwrite"},
        "grid": {"times": grid["times"], "key_row": grid["key"], "consistency_before_refinement": grid["consistency_before"],
                 "consistency_after_refinement": grid["consistency_after"]},
        "fit": fit,
        "seconds": {name: stages[name]["seconds"] for name in STAGES},
        "peak_gpu_gib": {name: stages[name].get("peak_gpu_gib") for name in STAGES},
        "seconds_detail": {"temporal": read("temporal/temporal.json")["seconds"], "grid": grid["seconds"], "scene4d": fit["seconds"]},
    }
