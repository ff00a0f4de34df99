"""What the page's buttons do, as plain functions on plain values (the UI wraps them; tests call them).

Generate calls ``video.generator.generate_video``; "Build 3D scene" calls
``recon.pipeline.reconstruct``; "Build 4D scene" calls ``fourd.pipeline.make_scene4d`` with the
loaded video model, and the time slider renders the scene through ``fourd.render4d``. The app
adds only sessions, upload checks and the form.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from ..config import load_config
from ..directors.registry import DIRECTORS
from ..directors.weights import find_director_file
from ..errors import DimensionXError
from ..recon.config import ReconConfig
from ..video.config import VideoConfig
from .config import AppConfig
from .jobs import Jobs
from .sessions import Sessions
from .viewer import framed_splat
from .uploads import check_image_upload, check_sidecar_upload, check_video_upload

log = logging.getLogger(__name__)

NO_DIRECTOR = "none"
DEFAULT_DIRECTOR = "orbit_left"  # picked when a preset names no motion
MODES = ("exact", "fast", "lowmem")
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
        raise DimensionXError(f"these settings use the LoRA file {config.lora}, which the form cannot pick: "
                              "run them with `dimensionx video --config SIDECAR` instead")
    parts = parse_motion(config.motion) if config.motion else [(DEFAULT_DIRECTOR, 1.0)]
    if len(parts) > 2:
        raise DimensionXError(f"motion {config.motion!r} mixes {len(parts)} directors; the form mixes two: "
                              "run it with `dimensionx video --config SIDECAR` instead")
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
class VideoResult:
    video: Path  # the mp4
    sidecar: Path  # its JSON settings
    summary: str


@dataclasses.dataclass
class SceneResult:
    folder: Path
    viewer: Path  # the .splat framed for the page's 3D viewer
    downloads: list[Path]  # PLY, .splat, cameras (transforms.json), metrics.json
    orbit: Path | None  # renders/orbit.mp4 when rendered
    metrics: dict


@dataclasses.dataclass
class Scene4DResult:
    name: str  # the scene's folder in the session (scene4d-NNN): what the time slider renders
    orbit: Path  # renders/orbit_t0.50.mp4: the cameras' path at mid-time
    timelapse: Path  # renders/timelapse_view00.mp4: the first view over time
    downloads: list[Path]  # canonical PLY, deformation weights, transforms.json, metrics.json, the grid's contact sheet
    metrics: dict


class App:
    """The app's state: its settings, session folders, job queue and the loaded video model."""

    def __init__(self, config: AppConfig):
        self.config = config
        root = Path(config.share_dir) if config.share_dir else Path(tempfile.gettempdir()) / "dimensionx-app"
        self.sessions = Sessions(root, config.session_ttl_minutes * 60)
        self.jobs = Jobs()
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

    def generate(self, session_id: str, image: str | Path | None, form: VideoForm) -> VideoResult:
        """Checks the upload, then renders one video into a fresh folder of the session."""
        self.sessions.sweep()
        photo = check_image_upload(image, self.config.max_upload_mb, self.config.max_image_megapixels)
        out = self.sessions.new_job(session_id, "video")
        config = load_config(VideoConfig, self.config.video_config, {
            **form.video_overrides(), "image": str(photo), "model": self.config.model, "lora_dir": self.config.lora_dir,
            "device": self.config.device, "out": str(out / "video.mp4")})
        from ..video.generator import check_inputs, generate_video

        check_inputs(config)  # before the model loads or the queue is joined
        with self.jobs.run(session_id):
            video = generate_video(config, self._video_generator(config))
        return VideoResult(video, video.with_suffix(".json"),
                           f"{config.frames} frames of `{config.motion}`, seed {config.seed}, {config.steps} steps")

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

        self.sessions.sweep()
        if not video:
            raise DimensionXError("no video to reconstruct: press Generate first, or upload a video")
        video = check_video_upload(video, self.config.max_upload_mb)
        out = self.sessions.new_job(session_id, "scene")
        config = load_config(ReconConfig, self.config.recon_config, {
            "video": str(video), "out": str(out), "device": self.config.device, "iterations": iterations})
        with self.jobs.run(session_id):
            folder = reconstruct(config)
        metrics = json.loads((folder / "metrics.json").read_text())
        orbit = folder / "renders" / "orbit.mp4"
        return SceneResult(folder, framed_splat(folder / "scene.splat", folder / "viewer.splat"),
                           [folder / "point_cloud.ply", folder / "scene.splat", folder / "transforms.json", folder / "metrics.json"],
                           orbit if orbit.is_file() else None, {k: metrics[k] for k in METRICS_SHOWN if k in metrics})

    def build_scene4d(self, session_id: str, image: str | Path | None, form: VideoForm) -> Scene4DResult:
        """A 4D scene of the photo (the form's prompt, seed and speed mode) in a fresh folder of the session."""
        from ..fourd.config import FourDConfig
        from ..fourd.pipeline import check_inputs, make_scene4d

        self.sessions.sweep()
        photo = check_image_upload(image, self.config.max_upload_mb, self.config.max_image_megapixels)
        out = self.sessions.new_job(session_id, "scene4d")
        config = load_config(FourDConfig, self.config.fourd_config, {
            "image": str(photo), "prompt": form.prompt, "seed": int(form.seed), "mode": form.mode, "model": self.config.model,
            "lora_dir": self.config.lora_dir, "device": self.config.device, "out": str(out)})
        check_inputs(config)
        video = VideoConfig(model=config.model, lora_dir=config.lora_dir, device=config.device, dtype=config.dtype, mode=config.mode)
        with self.jobs.run(session_id):
            folder = make_scene4d(config, self._video_generator(video))
        metrics = json.loads((folder / "metrics.json").read_text())
        scene, renders = folder / "scene4d", folder / "renders"
        return Scene4DResult(folder.name, next(renders.glob("orbit_t*.mp4")), next(renders.glob("timelapse_view*.mp4")),
                             [*sorted(scene.glob("*.ply")), *sorted(scene.glob("*.safetensors")), scene / "transforms.json",
                              folder / "metrics.json", folder / "grid" / "contact_sheet.png"],
                             {"psnr": metrics["fit"].get("psnr"), "psnr_per_time": metrics["fit"].get("psnr_per_time"),
                              "psnr_per_holdout_view": metrics["fit"].get("psnr_per_holdout_view"), "seconds": metrics["seconds"]})

    def render4d_at(self, session_id: str, name: str | None, time: float) -> Path:
        """An orbit of the session's 4D scene ``name`` frozen at ``time`` (0-1), written beside its renders."""
        from ..fourd.config import FourDConfig
        from ..fourd.pipeline import SIDECAR, fit_device
        from ..fourd.render4d import SceneRenderer
        from ..media import write_video

        if not name:
            raise DimensionXError("no 4D scene yet: press Build 4D scene first")
        folder = self.sessions.resolve(session_id, name)
        config = load_config(FourDConfig, folder / SIDECAR)
        with self.jobs.run(session_id):
            frames = SceneRenderer(folder / "scene4d", fit_device(config), config.background).orbit(time, config.render_frames)
        path = folder / "renders" / f"orbit_t{time:.2f}.mp4"
        write_video(frames, path, config.render_fps)
        return path

    def load_settings(self, sidecar: str | Path | None) -> VideoForm:
        """The form that reproduces an uploaded sidecar."""
        path = check_sidecar_upload(sidecar, self.config.max_upload_mb)
        return form_from_config(load_config(VideoConfig, path))
