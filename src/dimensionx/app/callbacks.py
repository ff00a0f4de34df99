"""What the page's buttons do, as plain functions on plain values (the UI wraps them; tests call them).

Generate calls ``video.generator.generate_video``; "Build 3D scene" calls
``recon.pipeline.reconstruct``; "Build 4D scene" calls ``fourd.pipeline.make_scene4d`` with the
loaded video model, and the time slider renders the scene through ``fourd.render4d``. The app
adds only sessions, upload checks and the form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..atomic import atomic_file, write_json
from ..config import load_config
from ..directors.registry import DIRECTORS
from ..directors.weights import find_director_file
from ..errors import DimensionXError
from ..recon.config import ReconConfig
from ..video.config import VideoConfig
from ..videofiles import VIDEO_SUFFIXES, check_decodes
from .config import AppConfig
from .jobs import Job, Jobs
from .sessions import PRIVATE, Sessions
from .uploads import check_image_upload, check_sidecar_upload, check_video_upload

log = logging.getLogger(__name__)

NO_DIRECTOR = "none"
DEFAULT_DIRECTOR = "orbit_left"  # picked when a preset names no motion
RESULT = "result.json"  # written by the app into a job's folder once the job has finished: what a reloaded page restores
ASKED = "asked"  # in a session folder: the photos its jobs were asked with, named by their content's hash
PATH_FIELDS = ("video", "sidecar", "folder", "viewer", "cameras", "downloads", "orbit", "timelapse")  # paths in results
GENERATE, BUILD, BUILD4D = "Generate", "Build 3D scene", "Build 4D scene"  # the job buttons: the kinds of jobs
METRICS_SHOWN = ("psnr", "ssim", "n_gaussians", "frames_registered", "frames_used", "holdout_frames",
                 "reprojection_error_px", "iterations", "seconds", "device")


@dataclasses.dataclass
class VideoForm:
    """The form's video settings."""

    prompt: str = ""
    motion: str = "orbit_left"  # director name, or "none" for the base model
    mix_with: str = NO_DIRECTOR  # a second director mixed in, or "none"
    mix_weight: float = 1.0  # weight of ``motion``; ``mix_with`` gets 1 - this
    then: str = NO_DIRECTOR  # Switch-Once (S then T): the director run from ``switch_step`` on, or "none"
    switch_step: int = 0  # first denoising step (0-based) run with ``then``
    seed: int = 42
    steps: int = 50
    guidance: float = 6.0
    frames: int = 49
    mode: str = "exact"

    def motion_spec(self) -> str:
        """``--motion`` of the form: one name, or ``a:w,b:1-w`` when a second director is mixed in."""
        if self.mix_with in (None, "", NO_DIRECTOR) or self.motion == NO_DIRECTOR:
            return self.motion
        return f"{self.motion}:{self.mix_weight:g},{self.mix_with}:{1 - self.mix_weight:g}"

    def video_overrides(self) -> dict[str, Any]:
        """VideoConfig fields the form sets."""
        switch = self.then not in (None, "", NO_DIRECTOR)
        return {"prompt": self.prompt, "motion": self.motion_spec(), "seed": int(self.seed), "steps": int(self.steps),
                "guidance": float(self.guidance), "frames": int(self.frames), "mode": self.mode,
                "then": self.then if switch else None, "switch_step": int(self.switch_step) if switch else None}


def form_from_config(config: VideoConfig) -> VideoForm:
    """The form that reproduces ``config`` (a preset or a sidecar's settings)."""
    from ..video.generator import parse_motion

    if config.lora:
        raise DimensionXError(f"these settings use the LoRA file {Path(config.lora).name}, which the form cannot pick: "
                              "the page reproduces videos of the 17 directors only")
    parts = parse_motion(config.motion) if config.motion else [(DEFAULT_DIRECTOR, 1.0)]
    if len(parts) > 2:
        raise DimensionXError(f"motion {config.motion!r} mixes {len(parts)} directors; the form mixes at most two: "
                              "pick two of them in Director and Mix with")
    (motion, weight), (mix_with, _) = parts[0], (parts[1] if len(parts) == 2 else (NO_DIRECTOR, 0.0))
    return VideoForm(prompt=config.prompt, motion=motion, mix_with=mix_with, mix_weight=weight if mix_with != NO_DIRECTOR else 1.0,
                     then=config.then or NO_DIRECTOR, switch_step=config.switch_step or 0,
                     seed=config.seed, steps=config.steps, guidance=config.guidance, frames=config.frames, mode=config.mode)


@dataclasses.dataclass
class DirectorCard:
    name: str
    kind: str  # "S" or "T"
    description: str
    weights_found: bool


@dataclasses.dataclass
class Asked:
    """What a Generate or Build 4D scene was asked with. A page shows it again in the photo box and the form: after a
    reload (also of a job that failed or was cancelled) and when a result is picked in History, to tweak and run again."""

    photo: Path  # the session's copy of the input photo
    form: VideoForm  # the settings, seed included


@dataclasses.dataclass
class VideoResult:
    video: Path  # the mp4
    sidecar: Path  # its JSON settings (no server paths)
    asked: Asked  # the photo (kept beside the video) and the form that made it
    summary: str


@dataclasses.dataclass
class SceneResult:
    folder: Path
    viewer: Path  # the .splat the page's viewer opens
    cameras: Path  # transforms.json: the viewer starts at the first camera
    downloads: list[Path]  # PLY, .splat, cameras (transforms.json), metrics.json
    orbit: Path | None  # renders/orbit.mp4 when rendered
    metrics: dict
    summary: str


@dataclasses.dataclass
class Scene4DResult:
    name: str  # the scene's folder in the session (scene4d-NNN): what the time slider renders
    orbit: Path  # renders/orbit_t0.50.mp4: the cameras' path at mid-time
    timelapse: Path  # renders/timelapse_view00.mp4: the first view over time
    downloads: list[Path]  # canonical PLY, deformation weights, transforms.json, metrics.json, the grid's contact sheet
    metrics: dict
    summary: str
    viewer: list[Path]  # one .splat per time: what the page's viewer plays
    times: list[float]  # the time of each in [0, 1]
    cameras: Path  # the scene's transforms.json: the viewer starts at the first camera
    asked: Asked | None  # the photo (kept beside the scene) and the form (its prompt, seed and speed mode made the scene)


Result = VideoResult | SceneResult | Scene4DResult
RESULT_KINDS = {cls.__name__: cls for cls in (VideoResult, SceneResult, Scene4DResult)}


def asked_of(result: Result) -> Asked | None:
    """What the job of ``result`` was asked with; None for a 3D scene (asked with a video only)."""
    return None if isinstance(result, SceneResult) else result.asked


def save_result(result: Result, session: Path, folder: Path) -> None:
    """Writes ``folder/RESULT``: the result with paths relative to the session folder (a record, not offered to the page)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value.relative_to(session))
        if isinstance(value, list):
            return [plain(v) for v in value]
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return value

    write_json({"kind": type(result).__name__, **plain(result)}, folder / RESULT)


def load_result(session: Path, folder: Path) -> Result:
    """The result a job recorded in ``folder/RESULT`` (paths back inside the session folder)."""
    record = json.loads((folder / RESULT).read_text())
    cls = RESULT_KINDS[record.pop("kind")]
    if "form" in record:  # written before 2026-12-07's Asked record: photo and form side by side (photo None in 4D)
        photo, form = record.pop("photo", None), record.pop("form")
        record["asked"] = {"photo": photo, "form": form} if photo and form else None

    def restored(name, value):
        if name in PATH_FIELDS and value is not None:
            return [session / v for v in value] if isinstance(value, list) else session / value
        if name == "asked" and value is not None:
            return Asked(session / value["photo"], VideoForm(**value["form"]))
        return value

    return cls(**{name: restored(name, value) for name, value in record.items()})


def viewer_frames(scene: Path, out: Path, times: int) -> tuple[list[Path], list[float]]:
    """The 4D scene ``scene`` at ``times`` times as .splat files in ``out`` for the page's viewer, and those times."""
    from ..fourd.export import export_4d
    from ..splats.export import read_ply, write_splat

    exported = export_4d(scene, out / "export", times)
    values = sorted({frame["time"] for frame in json.loads(exported[-1].read_text())["frames"]})
    frames = []
    for ply in exported[:len(values)]:  # time_0000.ply, ... in time order
        frames.append(out / ply.with_suffix(".splat").name)
        write_splat(read_ply(ply), frames[-1])
    shutil.rmtree(out / "export")  # the PLYs are 8x the .splat files; the downloads hold the scene itself
    return frames, values


def without_server_paths(value):
    """``value`` (a sidecar's JSON) with every absolute path replaced by its file name."""
    if isinstance(value, dict):
        return {k: without_server_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_server_paths(v) for v in value]
    return Path(value).name if isinstance(value, str) and value.startswith("/") else value


def check_scene_video(video: str | Path | None, max_mb: float) -> Path:
    """The video "Build 3D scene" reconstructs (the generated one, or an upload), checked: its type, size and first frame."""
    if not video:
        raise DimensionXError("no video to reconstruct: press Generate first, or upload a video")
    path = check_video_upload(video, max_mb)
    try:
        check_decodes(path)
    except DimensionXError:
        raise DimensionXError(f"the uploaded file {path.name} is not a video that can be played (no frame of it decodes): "
                              f"upload a video ({', '.join(VIDEO_SUFFIXES)})") from None
    return path


class App:
    """The app's state: its settings, session folders, job queue and the loaded video model."""

    def __init__(self, config: AppConfig):
        self.config = config
        root = Path(config.share_dir) if config.share_dir else Path(tempfile.gettempdir()) / "dimensionx-app"
        self.sessions = Sessions(root, config.session_ttl_minutes * 60)
        self.jobs = Jobs(config.max_queue)
        self._generator = None  # DirectorVideoGenerator, loaded on the first job, kept for the next
        self.defaults = form_from_config(load_config(VideoConfig, config.video_config))

    @property
    def tiny(self) -> bool:
        return self.config.model == "tiny"

    def directors(self) -> list[DirectorCard]:
        """The 17 directors and whether their weights are found locally (nothing is downloaded)."""
        return [DirectorCard(d.name, d.kind, d.description,
                             find_director_file(d, self.config.lora_dir, tiny=self.tiny, download=False) is not None)
                for d in DIRECTORS.values()]

    @contextlib.contextmanager
    def _job(self, session_id: str, kind: str):
        """A fresh job folder of the session; removed again if the job fails or is cancelled (no partial files)."""
        out = self.sessions.new_job(session_id, kind)
        try:
            yield out
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise

    def ask(self, session_id: str, image: str | Path | None, form: VideoForm) -> Asked:
        """The checked upload, copied into the session's ``ASKED`` folder (outside the job's folder, which a job that fails
        or is cancelled removes), and the form: what a job is asked with, and what a reloaded page shows of it."""
        photo = check_image_upload(image, self.config.max_upload_mb, self.config.max_image_megapixels)
        with photo.open("rb") as data:
            digest = hashlib.file_digest(data, "sha256").hexdigest()[:32]
        kept = self.sessions.folder(session_id) / ASKED / f"{digest}{photo.suffix.lower()}"
        if not kept.is_file():  # the same photo again (a retry): its copy is there
            kept.parent.mkdir(mode=PRIVATE, exist_ok=True)
            with atomic_file(kept) as tmp:
                shutil.copyfile(photo, tmp)
        return Asked(kept, form)

    def submit_generate(self, session_id: str, image: str | Path | None, form: VideoForm) -> Job:
        """Checks the upload, then queues ``generate`` (the page waits for the job, or finds its result later)."""
        asked = self.ask(session_id, image, form)
        return self.jobs.submit(session_id, GENERATE, lambda: self.generate(session_id, asked.photo, form), int(form.steps),
                                ("preparing the model and directors", "decoding and writing the video"), asked=asked)

    def submit_scene(self, session_id: str, video: str | Path | None, iterations: int | None = None) -> Job:
        """Checks the video, then queues ``build_scene``."""
        check_scene_video(video, self.config.max_upload_mb)
        return self.jobs.submit(session_id, BUILD, lambda: self.build_scene(session_id, video, iterations),
                                stages=("reading the video", "writing the scene"))

    def submit_scene4d(self, session_id: str, image: str | Path | None, form: VideoForm) -> Job:
        """Checks the upload, then queues ``build_scene4d``."""
        asked = self.ask(session_id, image, form)
        return self.jobs.submit(session_id, BUILD4D, lambda: self.build_scene4d(session_id, asked.photo, form),
                                stages=("preparing the model", "between stages (decoding, cameras, writing)"), asked=asked)

    def generate(self, session_id: str, image: str | Path | None, form: VideoForm) -> VideoResult:
        """Checks the upload, then renders one video into a fresh folder of the session."""
        from ..video.generator import check_inputs, generate_video

        self.sessions.sweep()
        photo = check_image_upload(image, self.config.max_upload_mb, self.config.max_image_megapixels)
        with self._job(session_id, "video") as out:
            out.mkdir(mode=PRIVATE)
            kept = out / f"photo{photo.suffix.lower()}"
            shutil.copyfile(photo, kept)
            config = load_config(VideoConfig, self.config.video_config, {
                **form.video_overrides(), "image": str(kept), "model": self.config.model, "lora_dir": self.config.lora_dir,
                "device": self.config.device, "out": str(out / "video.mp4")})
            check_inputs(config)  # before the model loads
            video = generate_video(config, self._video_generator(config))
            sidecar = video.with_suffix(".json")
            write_json(without_server_paths(json.loads(sidecar.read_text())), sidecar)
            result = VideoResult(video, sidecar, Asked(kept, form),
                                 f"{config.frames} frames of `{config.motion}`, seed {config.seed}, {config.steps} steps")
            save_result(result, self.sessions.root / session_id, out)
        return result

    def _video_generator(self, config: VideoConfig):
        """The loaded pipeline for ``config.mode``: the weights load once, again only when the mode changes."""
        from ..video.generator import load_generator

        if self._generator is None or self._generator.mode != config.mode:
            self._generator = None  # free the old pipeline before loading the new one
            self._generator = load_generator(config, reusable=True)
        return self._generator

    def build_scene(self, session_id: str, video: str | Path | None, iterations: int | None = None) -> SceneResult:
        """Reconstructs ``video`` (the generated one, or an upload) into a fresh scene folder of the session."""
        from ..recon.pipeline import reconstruct
        from ..scenes import with_known_cameras

        self.sessions.sweep()
        video = self.generated_original(session_id, check_scene_video(video, self.config.max_upload_mb))
        with self._job(session_id, "scene") as out:
            config = with_known_cameras(load_config(ReconConfig, self.config.recon_config, {  # the tiny model's noise: its path
                "video": str(video), "out": str(out), "device": self.config.device, "iterations": iterations}), video)
            folder = reconstruct(config)
            metrics = json.loads((folder / "metrics.json").read_text())
            orbit = folder / "renders" / "orbit.mp4"
            shown = {k: metrics[k] for k in METRICS_SHOWN if k in metrics}
            result = SceneResult(folder, folder / "scene.splat", folder / "transforms.json",
                                 [folder / "point_cloud.ply", folder / "scene.splat", folder / "transforms.json", folder / "metrics.json"],
                                 orbit if orbit.is_file() else None, shown,
                                 f"3D scene, {shown.get('n_gaussians', '?')} Gaussians, PSNR {shown.get('psnr') or float('nan'):.1f} dB")
            save_result(result, self.sessions.root / session_id, folder)
        return result

    def build_scene4d(self, session_id: str, image: str | Path | None, form: VideoForm) -> Scene4DResult:
        """A 4D scene of the photo (the form's prompt, seed and speed mode) in a fresh folder of the session."""
        from ..fourd.config import FourDConfig
        from ..fourd.pipeline import check_inputs, make_scene4d

        self.sessions.sweep()
        photo = check_image_upload(image, self.config.max_upload_mb, self.config.max_image_megapixels)
        with self._job(session_id, "scene4d") as out:
            config = load_config(FourDConfig, self.config.fourd_config, {
                "image": str(photo), "prompt": form.prompt, "seed": int(form.seed), "mode": form.mode, "model": self.config.model,
                "lora_dir": self.config.lora_dir, "device": self.config.device, "out": str(out)})
            check_inputs(config)
            video = VideoConfig(model=config.model, lora_dir=config.lora_dir, device=config.device, dtype=config.dtype, mode=config.mode)
            folder = make_scene4d(config, self._video_generator(video))
            kept = folder / f"photo{photo.suffix.lower()}"
            shutil.copyfile(photo, kept)
            viewer, times = viewer_frames(folder / "scene4d", folder / "viewer", self.config.viewer_times)
            metrics = json.loads((folder / "metrics.json").read_text())
            scene, renders = folder / "scene4d", folder / "renders"
            shown = {"psnr": metrics["fit"].get("psnr"), "psnr_per_time": metrics["fit"].get("psnr_per_time"),
                     "psnr_per_holdout_view": metrics["fit"].get("psnr_per_holdout_view"), "seconds": metrics["seconds"]}
            result = Scene4DResult(folder.name, next(renders.glob("orbit_t*.mp4")), next(renders.glob("timelapse_view*.mp4")),
                                   [*sorted(scene.glob("*.ply")), *sorted(scene.glob("*.safetensors")), scene / "transforms.json",
                                    folder / "metrics.json", folder / "grid" / "contact_sheet.png"],
                                   shown, f"4D scene, PSNR {shown['psnr'] or float('nan'):.1f} dB",
                                   viewer, times, scene / "transforms.json", Asked(kept, form))
            save_result(result, self.sessions.root / session_id, folder)
        return result

    def generated_original(self, session_id: str, video: Path) -> Path:
        """The session's generated video of which ``video`` is a copy (the page's video boxes hold Gradio's copies), else
        ``video``: the original has its sidecar beside it (and the tiny model's known cameras)."""
        size = video.stat().st_size
        for original in sorted(self.sessions.folder(session_id).glob("video-*/video.mp4")):
            if original.stat().st_size == size and filecmp.cmp(original, video, shallow=False):
                return original
        return video

    def history(self, session_id: str) -> list[tuple[str, str]]:
        """The session's finished results, newest first: (label, job folder name)."""
        folder = self.sessions.folder(session_id)
        done = sorted(folder.glob(f"*/{RESULT}"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [(f"{p.parent.name}: {json.loads(p.read_text())['summary']}", p.parent.name) for p in done]

    def result(self, session_id: str, name: str) -> Result:
        """The finished result in the session's job folder ``name``."""
        folder = self.sessions.resolve(session_id, name)
        if not (folder / RESULT).is_file():
            raise DimensionXError(f"{name!r} is not a finished result of this session: pick one from the History list")
        return load_result(self.sessions.root / session_id, folder)

    def latest(self, session_id: str) -> dict[type, Result]:
        """The session's newest result of each kind (what a reloaded page shows), the newest last."""
        results: dict[type, Result] = {}
        for _, name in reversed(self.history(session_id)):
            result = self.result(session_id, name)
            results.pop(type(result), None)
            results[type(result)] = result
        return results

    def restored(self, session_id: str) -> Asked | None:
        """The photo and form a reloaded page shows: those the session's newest job was asked with (also one that waits,
        failed or was cancelled), else those of its newest result that has them."""
        job = self.jobs.newest(session_id)
        if job is not None and job.asked is not None and job.asked.photo.is_file():
            return job.asked
        return next(filter(None, map(asked_of, reversed(self.latest(session_id).values()))), None)

    def load_settings(self, sidecar: str | Path | None) -> VideoForm:
        """The form that reproduces an uploaded sidecar."""
        path = check_sidecar_upload(sidecar, self.config.max_upload_mb)
        try:
            config = load_config(VideoConfig, path)
        except DimensionXError:
            raise DimensionXError(f"the uploaded file {path.name} holds settings of another kind or version: upload the .json "
                                  "written beside a video that this app or `dimensionx video` generated") from None
        return form_from_config(config)
