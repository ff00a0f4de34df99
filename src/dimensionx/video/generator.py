"""Camera-controlled video: CogVideoX-5B-I2V with S-/T-Director LoRAs fused in (or switched per step).

``generate_video`` is the whole stage, top to bottom:

1. check every input (image, motion, files, output path) before any model loads;
2. resolve the director LoRA files, then the base model (downloaded on first use);
3. load the diffusers pipeline with the original sampler (DPM, trailing timesteps);
4. fuse the directors into the transformer and check every tensor landed (with ``--then``:
   load them as adapters that a step callback switches, see directors/switch.py);
5. fit the photo to the model's size;
6. denoise (50 steps, guidance 6, dynamic CFG by default) from a seeded CPU generator;
7. decode and write the mp4 and its JSON sidecar atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..atomic import atomic_files, file_sha256, write_json
from ..config import config_to_dict
from ..device import resolve_device
from ..directors.lora import LoraFile, director_multipliers, fuse_directors, read_lora, restore_weights, snapshot_weights
from ..directors.registry import get_director
from ..directors.switch import DirectorSwitch, Phase
from ..directors.weights import find_director_file
from ..errors import DimensionXError
from ..models import ResolvedModel, resolve_model
from ..outputs import check_writable
from ..videofiles import write_video
from .cameras import cameras_path, known_cameras
from .config import ModeConfig, VideoConfig
from .image import fit_image, load_image
from .inputs import DTYPE_NAMES, check_inputs, output_path, parse_motion
from .loop import close_loop
from .modes import apply_mode, check_mode, start_video, weights_editable
from .parallel import cfg_processes, enable_cfg_parallel, init_process, is_distributed, is_main_process

logger = logging.getLogger(__name__)

DTYPES = dict(zip(DTYPE_NAMES, (torch.bfloat16, torch.float16, torch.float32)))


@dataclasses.dataclass
class DirectorChoice:
    name: str  # registry name, or "custom:<file stem>" for an unnamed --lora
    weight: float
    lora: LoraFile


def resolve_directors(config: VideoConfig, tiny: bool) -> list[DirectorChoice]:
    """The LoRA files the config asks for, read and validated (no model needed)."""
    if config.motion in (None, "none"):
        if config.lora is None:
            return []
        return [DirectorChoice(f"custom:{Path(config.lora).stem}", 1.0, read_lora(config.lora))]
    wanted = parse_motion(config.motion)
    if config.lora is not None and len(wanted) != 1:
        raise DimensionXError("--lora replaces the file of one director: with several --motion entries, put the files in a folder and pass --lora-dir")
    choices = []
    for name, weight in wanted:
        director = get_director(name)
        path = config.lora or find_director_file(director, config.lora_dir, tiny=tiny)
        choices.append(DirectorChoice(name, weight, read_lora(path)))
    return choices


def resolve_weights(config: VideoConfig, generator: DirectorVideoGenerator | None) -> tuple[list[DirectorChoice], ResolvedModel]:
    """The directors' files, then the base model. When a director is missing, the base model is
    looked up in the local cache only (no 20 GB download), and one error names all that is missing."""
    tiny = generator.model.tiny if generator else config.model == "tiny"
    try:
        directors = resolve_directors(config, tiny=tiny)
    except DimensionXError as director_error:
        if generator is None and not tiny:
            try:
                resolve_model(config.model, download=False)
            except DimensionXError as model_error:
                raise DimensionXError(f"2 things are missing: (1) {director_error} (2) {model_error}") from None
        raise
    return directors, generator.model if generator else resolve_model(config.model)


def check_switch(config: VideoConfig) -> None:
    """``--then`` / ``--switch-step`` / ``--lora-mode``: checked before any model loads."""
    from .config import LORA_MODES

    if config.lora_mode not in LORA_MODES:
        raise DimensionXError(f"--lora-mode {config.lora_mode!r} is unknown: use one of {', '.join(LORA_MODES)}")
    if uses_adapters(config) and config.mode == "fast":
        raise DimensionXError(FAST_ADAPTERS_REFUSED)
    if config.then is None:
        if config.switch_step is not None:
            raise DimensionXError(f"--switch-step {config.switch_step} without --then: name the directors to switch to, e.g. --then time")
        return
    if config.switch_step is None:
        raise DimensionXError(f"--then {config.then} needs --switch-step K: the first denoising step (0-based) run with {config.then}")
    if not 1 <= config.switch_step < config.steps:
        raise DimensionXError(
            f"--switch-step {config.switch_step} with --steps {config.steps}: switch between steps 1 and {config.steps - 1}, "
            "so both --motion and --then direct at least one step")
    if config.lora_mode == "fused":
        raise DimensionXError("--then switches directors between steps, which fused weights cannot do: drop --lora-mode fused")


FAST_ADAPTERS_REFUSED = (
    "--mode fast cannot switch directors: its FP8 weights and TaylorSeer step cache are set up for fused directors, "
    "and switching keeps them as separate adapters. Use --mode exact (or lowmem) with --then, or drop --then "
    "(and --lora-mode adapters) to keep --mode fast"
)


def uses_adapters(config: VideoConfig) -> bool:
    return config.lora_mode == "adapters" or (config.lora_mode == "auto" and config.then is not None)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA, fp32 on a CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def load_generator(config: VideoConfig, model: ResolvedModel | None = None, reusable: bool = False) -> "DirectorVideoGenerator":
    """The one place a generator is assembled from a config: device, base model, dtype, mode."""
    device = init_process(config.device) if is_distributed() else resolve_device(config.device)
    return DirectorVideoGenerator(model or resolve_model(config.model), device, resolve_dtype(config.dtype, device), config.mode,
                                  reusable=reusable, mode_config=config.mode_settings)


class DirectorVideoGenerator:
    """A loaded pipeline that renders videos with a set of fused directors; reused across a batch."""

    def __init__(self, model: ResolvedModel, device: torch.device, dtype: torch.dtype, mode: str = "exact",
                 reusable: bool = False, mode_config: ModeConfig | None = None, pipe=None):
        """``reusable`` keeps CPU copies of the weights directors change, so a later
        ``set_directors`` can swap them exactly (batch runs); a single video skips that copy.
        ``pipe``: an already built CogVideoX I2V pipeline (the benchmarks' random 5B) instead of ``model``'s files."""
        from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline

        self.model, self.device, self.dtype = model, device, dtype
        start = time.perf_counter()
        try:
            with loading_bars_on_terminals_only():
                self.pipe = pipe if pipe is not None else CogVideoXImageToVideoPipeline.from_pretrained(
                    model.base or model.path, dtype=dtype, **_own_transformer(model, dtype))
        except (OSError, ValueError) as exc:
            raise DimensionXError(f"--model {model.id} ({model.path}) could not be loaded as CogVideoX image-to-video: {exc}") from None
        self.pipe.scheduler = CogVideoXDPMScheduler.from_config(self.pipe.scheduler.config, timestep_spacing="trailing")
        self.mode = mode
        self.mode_notes = apply_mode(self.pipe, mode, device, mode_config)
        if is_distributed():
            enable_cfg_parallel(self.pipe.transformer)
        self.load_seconds = time.perf_counter() - start
        self.directors: list[DirectorChoice] = []
        self.multipliers: list[float] = []
        self.scale: float | None = None
        self.then: list[DirectorChoice] | None = None  # directors from `switch_step` on (adapter mode)
        self.then_multipliers: list[float] = []
        self.switch_step: int | None = None
        self.switch: DirectorSwitch | None = None  # set in adapter mode: the step callback
        self.reusable = reusable
        self._original: dict[str, torch.Tensor] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels that the transformer was built for."""
        config, stride = self.pipe.transformer.config, self.pipe.vae_scale_factor_spatial
        return config.sample_height * stride, config.sample_width * stride

    def set_directors(self, directors: list[DirectorChoice], scale: float | None, then: list[DirectorChoice] | None = None,
                      switch_step: int | None = None, adapters: bool = False) -> float:
        """Sets the directors (undoing any earlier set exactly); returns seconds spent.

        Fused by default. With ``adapters`` or ``then``, the LoRAs stay peft adapters and
        ``directors`` direct the steps before ``switch_step``, ``then`` the steps from it on.
        """
        start = time.perf_counter()
        adapters = adapters or then is not None
        if (adapters, switch_step, _fusion_key(directors, scale), _fusion_key(then or [], scale)) == self._key():
            return 0.0
        if (self.directors or self.switch) and not self.reusable:
            raise RuntimeError("directors are set for good: build the generator with reusable=True to change them")
        if adapters and self.mode == "fast":
            raise DimensionXError(FAST_ADAPTERS_REFUSED)
        with weights_editable(self.pipe):  # fast mode: FP8 weights back to bf16 while fusing
            restore_weights(self.pipe.transformer, self._original)
            self._original = {}
            if self.switch is not None:
                self.pipe.unload_lora_weights()  # the adapters go; the base weights were never changed
                self.switch = None
            if adapters:
                self._load_switch(directors, scale, then, switch_step)
            else:
                if self.reusable:
                    self._original = snapshot_weights(self.pipe.transformer, [d.lora for d in directors])
                self.multipliers = fuse_directors(self.pipe, [(d.lora, d.weight) for d in directors], scale) if directors else []
        self.scale, self.directors, self.then, self.switch_step = scale, directors, then, switch_step
        return time.perf_counter() - start

    def _load_switch(self, directors: list[DirectorChoice], scale: float | None, then: list[DirectorChoice] | None,
                     switch_step: int | None) -> None:
        self.multipliers = director_multipliers([(d.lora, d.weight) for d in directors], scale)
        phases = [Phase(0, tuple((d.lora, m) for d, m in zip(directors, self.multipliers)))]
        if then is not None:
            self.then_multipliers = director_multipliers([(d.lora, d.weight) for d in then], scale)
            phases.append(Phase(switch_step, tuple((d.lora, m) for d, m in zip(then, self.then_multipliers))))
        self.switch = DirectorSwitch(phases)
        self.switch.load(self.pipe)

    def _key(self) -> tuple:
        return (self.switch is not None, self.switch_step, _fusion_key(self.directors, self.scale),
                _fusion_key(self.then or [], self.scale))

    @torch.no_grad()
    def denoise(self, image, prompt: str, config: VideoConfig) -> torch.Tensor:
        """[1, F_latent, C, H/8, W/8] latents of the video, directors switched per step in adapter mode."""
        height, width = self.size
        if self.switch is not None:
            self.switch.start(self.pipe)
        start_video(self.pipe)
        return self.pipe(
            image=image,
            **self._text_inputs(prompt, config.uncond),
            height=height,
            width=width,
            num_frames=config.frames,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            use_dynamic_cfg=config.dynamic_cfg,
            generator=torch.Generator("cpu").manual_seed(config.seed),
            output_type="latent",
            callback_on_step_end=self.switch,
        ).frames

    @torch.no_grad()
    def __call__(self, image, prompt: str, config: VideoConfig, decode: bool = True) -> tuple[np.ndarray | None, dict]:
        """Returns ([T, H, W, 3] uint8 frames, or None without ``decode``; seconds per phase)."""
        start = time.perf_counter()
        latents = self.denoise(image, prompt, config)  # [1, F_latent, C, H/8, W/8]
        denoise = time.perf_counter() - start
        if not decode:
            return None, {"denoise": denoise}
        frames = self.decode(latents)
        decode = time.perf_counter() - start - denoise
        return close_loop(frames, config.loop_frames), {"denoise": denoise, "decode": decode}

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """[1, F_latent, C, H/8, W/8] latents -> [T, H, W, 3] uint8 frames (the VAE's, rounded)."""
        video = self.pipe.decode_latents(latents)  # [1, 3, T, H, W] in [-1, 1]
        frames = self.pipe.video_processor.postprocess_video(video, output_type="np")[0]  # [T, H, W, 3] in [0, 1]
        return (np.clip(frames * 255.0, 0, 255) + 0.5).astype(np.uint8)

    def _text_inputs(self, prompt: str, uncond: str) -> dict:
        """``"empty"``: the pipeline encodes the prompt and "" itself; ``"zero"``: the unguided branch gets a zero embedding."""
        if uncond == "empty":
            return {"prompt": prompt}
        embeds, _ = self.pipe.encode_prompt(prompt, do_classifier_free_guidance=False, device=self.device, dtype=self.dtype)  # [1, 226, 4096]
        return {"prompt_embeds": embeds, "negative_prompt_embeds": torch.zeros_like(embeds)}


@contextlib.contextmanager
def loading_bars_on_terminals_only() -> Iterator[None]:
    """diffusers' and transformers' loading bars are nested: the inner one moves the cursor up (ESC [A),
    which a log file keeps as garbage. Where stderr is not a terminal they are off while the pipeline
    loads, and put back as they were after."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [lib for lib in (diffusers_logging, transformers_logging) if lib.is_progress_bar_enabled()]
    if sys.stderr.isatty():
        libraries = []
    for lib in libraries:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib in libraries:
            lib.enable_progress_bar()


def _own_transformer(model: ResolvedModel, dtype: torch.dtype) -> dict:
    """A transformer-only folder (``dimensionx convert-sat``) brings its transformer; the rest comes from its base."""
    if model.base is None:
        return {}
    from diffusers import CogVideoXTransformer3DModel

    return {"transformer": CogVideoXTransformer3DModel.from_pretrained(model.path, subfolder="transformer", dtype=dtype)}


def _fusion_key(directors: list[DirectorChoice], scale: float | None) -> list:
    return [(d.lora.sha256, d.weight) for d in directors] + [scale]


def generate_video(config: VideoConfig, generator: DirectorVideoGenerator | None = None) -> Path:
    """Renders one video per ``config``; writes ``out`` (mp4) and its JSON sidecar. Returns the mp4 path."""
    # 1. Check inputs before anything heavy.
    check_inputs(config)
    check_mode(config.mode)
    config.mode_settings.check_packages(config.mode)
    check_switch(config)
    photo = load_image(config.image)
    # 2. Resolve the directors' files (small), then the base model (large, maybe downloaded).
    directors, model = resolve_weights(config, generator)
    if model.tiny:  # its video gets its known cameras too
        check_writable(cameras_path(output_path(config)), config.overwrite)
    then = None if config.then is None else resolve_directors(
        dataclasses.replace(config, motion=config.then, lora=None), tiny=model.tiny)
    # 3. Load the pipeline.
    generator = generator or load_generator(config, model)
    # 4. Fuse the directors (adapter mode: load them, to be switched per step).
    fuse_seconds = generator.set_directors(directors, config.lora_scale, then, config.switch_step, uses_adapters(config))
    # 5. Fit the photo to the model.
    height, width = generator.size
    image = fit_image(photo, width, height, config.fit)
    # 6-7. Denoise and decode (CFG-parallel, --gpus 2: the first process decodes and writes).
    decode = cfg_processes(generator.pipe.transformer) == 1 or is_main_process()
    frames, seconds = generator(image, config.prompt, config, decode=decode)
    out = output_path(config)
    if frames is None:
        return out
    # 8. Write the video and its sidecar (a tiny model's video: and its known cameras), all or none.
    sidecar = _sidecar(config, generator, frames, {"load": generator.load_seconds, "fuse": fuse_seconds, **seconds})
    cameras = known_cameras(config, len(frames), width, height) if generator.model.tiny else None
    paths = [out, out.with_suffix(".json")]
    if cameras is not None:
        paths.append(cameras_path(out))
        sidecar["cameras"] = paths[-1].name
    with atomic_files(paths) as temps:
        write_video(frames, temps[0], config.fps)
        sidecar["video"]["sha256"] = file_sha256(temps[0])  # readers check it names the mp4 beside it (videofiles.check_sidecar)
        write_json(sidecar, temps[1])
        if cameras is not None:
            write_json(cameras, temps[2])
    logger.info("wrote %s (%d frames, %dx%d) and %s", out, len(frames), width, height, " and ".join(map(str, paths[1:])))
    return out


def _sidecar(config: VideoConfig, generator: DirectorVideoGenerator, frames: np.ndarray, seconds: dict) -> dict:
    import diffusers
    import peft
    import transformers

    from .. import __version__

    pipe = generator.pipe
    return {
        "config": config_to_dict(config),
        "model": {"id": generator.model.id, "model_path": str(generator.model.path),
                  **({"base_path": str(generator.model.base)} if generator.model.base else {})},
        "directors": _director_rows(generator.directors, generator.multipliers),
        "lora_mode": "adapters" if generator.switch is not None else "fused",
        "then": None if generator.then is None else {
            "switch_step": generator.switch_step, "directors": _director_rows(generator.then, generator.then_multipliers)},
        "scheduler": scheduler_row(pipe.scheduler),
        "video": {"frames": int(frames.shape[0]), "height": int(frames.shape[1]), "width": int(frames.shape[2]), "fps": config.fps},
        "device": {"type": generator.device.type, "name": _device_name(generator.device), "dtype": str(generator.dtype).removeprefix("torch.")},
        "mode": {"name": generator.mode, "notes": generator.mode_notes},
        "processes": cfg_processes(pipe.transformer),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "versions": {"dimensionx": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
    }


def scheduler_row(scheduler) -> dict:
    """The sidecar's ``scheduler``: the diffusers class (``scheduler`` may be a subclass of ours,
    ``noise.PrefetchedNoise``) that ``diffusers.<class>.from_config`` loads with the config beside it."""
    library = next(c for c in type(scheduler).__mro__ if c.__module__.startswith("diffusers."))
    return {"class": library.__name__, **{k: v for k, v in scheduler.config.items() if not k.startswith("_")}}


def _director_rows(directors: list[DirectorChoice], multipliers: list[float]) -> list[dict]:
    return [{"name": d.name, "weight": d.weight, "multiplier": m, "rank": d.lora.rank,
             "file": str(d.lora.path.resolve()), "sha256": d.lora.sha256} for d, m in zip(directors, multipliers)]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()
