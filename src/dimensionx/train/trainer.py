"""Director LoRA training, top to bottom: ``train(TrainConfig(...))``.

1. check the config and every data row before any model loads;
2. start accelerate (one process, DDP or DeepSpeed, as ``accelerate launch`` set it up);
3. load the frozen transformer (and the VAE and T5 unless everything is pre-encoded);
4. pre-encode the clips into the latent cache, or decode them on the fly;
5. add the LoRA (peft, alpha 1 -> scale 1/rank), the optimiser and the learning-rate schedule;
6. resume from a checkpoint: LoRA, optimiser, schedule, RNG states, and the data position;
7. train: v-prediction loss, gradient clipping, a log line per step, checkpoints every N steps,
   a checkpoint on SIGTERM, a stop on a NaN/inf loss (the last good checkpoint is kept);
8. export ``pytorch_lora_weights.safetensors`` in the official unprefixed layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import pickle
import re
import shutil
import signal
import time
from pathlib import Path

import torch
from diffusers.optimization import SchedulerType
from tqdm import tqdm

from ..atomic import atomic_file, file_sha256, write_json
from ..config import config_to_dict
from ..directors.lora import save_lora
from ..diskerrors import DISK_FULL, cannot_write, machine_errno, reached_size_limit
from ..errors import DimensionXError
from ..models import resolve_model
from ..models.hub import MAX_FRAMES
from ..outputs import check_writable, finish_output_dir, is_output_dir, mark_output_dir, OUTPUT_MARKER, start_output_dir
from ..videofiles import write_video
from .batches import CachedClips, EpochShuffle, VideoClips, pre_encode
from .config import TrainConfig
from .data import ClipList, find_clips, load_clip
from .encoded import check_size, find_encoded, manifest_path, write_manifest
from .model import (
    Components,
    add_lora,
    diffusion_loss,
    encode_first_frame,
    encode_text,
    encode_video,
    image_condition,
    load_components,
    load_lora_state,
    lora_state,
    rotary_embedding,
)

log = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"
LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
CHECKPOINT_LORA = "lora.safetensors"
TRAIN_TIMESTEPS = 1000
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}
EXPORT_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
LIMITS = {  # setting: (smallest, largest) value a run is started with, checked before any model loads
    "rank": (1, 3072),  # 3072: the 5B transformer's width; a higher rank adds nothing
    "frames": (5, MAX_FRAMES),
    "skip_frames": (0, 1000),
    "text_max_length": (1, 512),
    "max_steps": (1, 10_000_000),
    "micro_batch": (1, 64),
    "grad_accumulation": (1, 1024),
    "learning_rate": (1e-8, 1.0),
    "adam_beta1": (0.0, 0.9999),
    "adam_beta2": (0.0, 0.9999),
    "weight_decay": (0.0, 1.0),
    "adam_epsilon": (1e-12, 1.0),
    "max_grad_norm": (1e-6, 1e6),
    "lr_warmup_steps": (0, 10_000_000),
    "text_dropout": (0.0, 0.99),  # probabilities
    "image_dropout": (0.0, 0.99),
    "image_noise_mean": (-20.0, 5.0),  # log sigma, pixels in [-1, 1]
    "image_noise_std": (0.0, 5.0),
    "image_noise_draws": (1, 64),
    "num_workers": (0, 64),
    "checkpoint_every": (0, 10_000_000),
    "checkpoints_kept": (1, 1000),
    "log_every": (1, 10_000_000),
    "sample_every": (0, 10_000_000),
    "sample_steps": (1, 1000),
    "seed": (0, 2**32 - 1),
}


@dataclasses.dataclass
class TrainResult:
    output_dir: Path
    step: int  # optimiser steps done
    status: str  # "done" or "stopped" (SIGTERM: a checkpoint was saved; --resume latest continues)
    lora: Path | None  # the exported file (None when stopped)


def train(config: TrainConfig) -> TrainResult:
    from accelerate import Accelerator

    # 1. Check everything a user passed, before any model loads.
    check_inputs(config)
    out = Path(config.output_dir)
    check_run_folder(out, config)
    resume_dir = find_resume(config, out)
    manifest = manifest_path(config.data)
    clips = find_encoded(manifest, config.frames) if manifest else find_clips(config.data, config.skip_frames)
    model = resolve_model(config.model)
    check_size(clips, *model_size(model.path))
    if config.pre_encode and clips.encoded is None:
        check_writable(cache_dir(config, clips) / "CLIP.safetensors", overwrite=True, what="cache_dir (in --config)")

    # 2. Processes and devices: accelerate (`accelerate launch` decides DDP / DeepSpeed).
    accelerator = Accelerator(mixed_precision=mixed_precision(config.mixed_precision),
                              gradient_accumulation_steps=config.grad_accumulation)
    if accelerator.is_main_process:
        prepare_run_folder(out, config, resume_dir, clips)
    accelerator.wait_for_everyone()
    device, dtype = accelerator.device, DTYPES[accelerator.mixed_precision]

    # 3. The frozen model (the transformer alone for pre-encoded data).
    parts = load_components(model.path, encoders=clips.encoded is None, dtype=dtype)
    height, width = parts.size
    for module in (parts.transformer, parts.vae, parts.text_encoder):
        if module is not None:
            module.to(device)
    rng = torch.Generator().manual_seed(config.seed + 1_000_003 * accelerator.process_index)

    # 4. The data: pre-encoded latents, or clips decoded by the loader's workers.
    if clips.encoded is not None:
        dataset = CachedClips([clip.video for clip in clips.clips])
    elif config.pre_encode:
        with accelerator.main_process_first():
            settings = encode_settings(config, model, dtype)
            files = pre_encode(clips.clips, cache_dir(config, clips), settings,
                               lambda clip: encode_clip(parts, clip, config, height, width))
            dataset = CachedClips(files)
        if accelerator.is_main_process:
            write_manifest(cache_dir(config, clips) / f"encoded_{settings_key(settings)}.json", files,
                           [clip.caption for clip in clips.clips], config.frames, height, width)
        if not config.sample_every:
            parts.vae = parts.text_encoder = parts.tokenizer = None  # training holds the transformer alone
            if device.type == "cuda":
                torch.cuda.empty_cache()
    else:
        dataset = VideoClips(clips.clips, config.frames, config.skip_frames, height, width)
    sampler = EpochShuffle(len(dataset), config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.micro_batch, sampler=sampler,
                                         num_workers=config.num_workers)

    # 5. LoRA, optimiser, schedule.
    if config.gradient_checkpointing:
        parts.transformer.enable_gradient_checkpointing()
    torch.manual_seed(config.seed)  # peft draws lora_A from the global generator: same start in every process and run
    add_lora(parts.transformer, config.rank)
    params = [p for p in parts.transformer.parameters() if p.requires_grad]
    optimizer = build_optimizer(config, params, device)
    schedule = build_schedule(config, optimizer, accelerator.num_processes)
    transformer, optimizer, loader, schedule = accelerator.prepare(parts.transformer, optimizer, loader, schedule)
    register_lora_hooks(accelerator)

    # 6. Resume.
    step = 0
    if resume_dir is not None:
        step = resume(accelerator, resume_dir, rng, out)
    epoch, skip = data_position(step, config.grad_accumulation, len(loader))

    # 7. Train.
    latent_frames = (config.frames - 1) // 4 + 1
    rotary = rotary_embedding(accelerator.unwrap_model(transformer), height, width, latent_frames, device)
    alphas = parts.scheduler.alphas_cumprod.to(device)
    stop = StopRequest()
    progress = tqdm(total=config.max_steps, initial=step, desc="training", unit="step",
                    disable=not accelerator.is_main_process, dynamic_ncols=True)
    transformer.train()
    inputs_dtype = input_dtype(accelerator, dtype)
    status, losses, start = "done", [], time.perf_counter()
    with stop.on_sigterm(), progress:  # the bar's line is closed before any error message
        while step < config.max_steps and status == "done":
            sampler.use_epoch(epoch)
            for batch in (accelerator.skip_first_batches(loader, skip) if skip else loader):
                with accelerator.accumulate(transformer):
                    loss = micro_step(transformer, parts, batch, config, rng, alphas, rotary, latent_frames, device,
                                      inputs_dtype).mean()
                    bad, stopping = flags(accelerator, loss, stop.requested)
                    if bad:
                        stop_on_nan(accelerator, out, step, loss)
                    losses.append(loss.detach())
                    accelerator.backward(loss)
                    grad_norm = accelerator.clip_grad_norm_(params, config.max_grad_norm) if accelerator.sync_gradients else None
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                if not accelerator.sync_gradients:
                    continue
                step += 1
                seconds, start = time.perf_counter() - start, time.perf_counter()
                # [processes, 3]: mean loss, peak allocated and reserved GiB of each process
                stats = accelerator.gather(torch.cat([torch.stack(losses).mean()[None].float(), peak_memory(device)])[None])
                mean_loss = stats[:, 0].mean().item()
                losses = []
                progress.update(1)
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                if accelerator.is_main_process and step % config.log_every == 0:
                    append_log(out, step, mean_loss, schedule.get_last_lr()[0], grad_norm, seconds,
                               config.micro_batch * config.grad_accumulation * accelerator.num_processes,
                               stats[:, 1:] if device.type == "cuda" else None)
                if stopping or step == config.max_steps or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    save_checkpoint(accelerator, out, step, rng, config)
                if config.sample_every and step % config.sample_every == 0 and accelerator.is_main_process:
                    write_sample(accelerator.unwrap_model(transformer), parts, clips, config, out, step, device)
                if stopping:
                    status = "stopped"
                if stopping or step == config.max_steps:
                    break
            epoch, skip = epoch + 1, 0

    # 8. Export.
    accelerator.wait_for_everyone()
    lora = None
    if status == "done" and accelerator.is_main_process:
        lora = export_lora(accelerator.unwrap_model(transformer), out, config, model.id, clips, step)
        finish_output_dir(out)
    accelerator.end_training()
    return TrainResult(out, step, status, lora)


def data_position(step: int, accumulation: int, batches: int) -> tuple[int, int]:
    """(epoch, micro-batches of it already used) after ``step`` optimiser steps of ``accumulation``
    micro-batches, with ``batches`` micro-batches an epoch. accelerate also closes a step at the end
    of each epoch, so an epoch holds ``ceil(batches / accumulation)`` steps, its last one maybe short."""
    epoch, within = divmod(step, math.ceil(batches / accumulation))
    return epoch, within * accumulation


def check_inputs(config: TrainConfig) -> None:
    if not config.data:
        raise DimensionXError("no training data: pass --data (a CSV file, a folder with metadata.csv, or videos/ + captions/)")
    if not config.output_dir:
        raise DimensionXError("no run folder: pass --output-dir DIR")
    for name, (low, high) in LIMITS.items():
        value = getattr(config, name)
        if not (math.isfinite(value) and low <= value <= high):
            raise DimensionXError(f"{name} {value}: use a number from {low:g} to {high:g} (the default is "
                                  f"{getattr(TrainConfig, name):g}); outside it a run fails, diverges or cannot fit a GPU")
    if (config.frames - 1) % 4:
        raise DimensionXError(f"frames {config.frames}: CogVideoX takes 4k+1 frames (the VAE packs 4 in one latent), e.g. 49")
    if config.mixed_precision not in ("auto", *DTYPES):
        raise DimensionXError(f"mixed_precision {config.mixed_precision!r}: use auto, bf16, fp16 or no")
    if config.export_dtype not in EXPORT_DTYPES:
        raise DimensionXError(f"export_dtype {config.export_dtype!r}: use bf16 or fp32")
    schedules = [kind.value for kind in SchedulerType]
    if config.lr_scheduler not in schedules:
        raise DimensionXError(f"lr_scheduler {config.lr_scheduler!r}: use one of {', '.join(schedules)}")
    if config.optimizer not in ("adamw", "adamw8bit"):
        raise DimensionXError(f"optimizer {config.optimizer!r}: use adamw or adamw8bit")
    if config.sample_every and manifest_path(config.data):
        raise DimensionXError(f"--data {config.data} is pre-encoded: sample videos need the clips' frames, the VAE and T5; "
                              "set sample_every 0 or train on the videos")


def model_size(model_path: Path) -> tuple[int, int]:
    """(height, width) px the model's transformer makes, from its config (no weights loaded)."""
    config = json.loads((Path(model_path) / "transformer" / "config.json").read_text())
    return config["sample_height"] * 8, config["sample_width"] * 8


def input_dtype(accelerator, dtype: torch.dtype) -> torch.dtype | None:
    """The dtype the transformer's inputs are cast to, or None to leave them as they are.

    accelerate autocasts the forward of one process and of DDP. DeepSpeed instead casts the module to
    bf16 and, its own ``torch_autocast`` section being off, runs the forward with autocast turned OFF
    (deepspeed.runtime.torch_autocast.autocast_if_enabled): an outer autocast does not reach it, so
    the batch must arrive in the module's dtype (DeepSpeed's built-in mixed precision).
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED and dtype != torch.float32:
        return dtype
    return None


def peak_memory(device: torch.device) -> torch.Tensor:
    """[2] peak allocated and reserved GiB of this process's GPU (zeros on a CPU), on ``device``."""
    if device.type != "cuda":
        return torch.zeros(2, device=device)
    return torch.tensor([torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)],
                        dtype=torch.float32, device=device) / 2**30


def mixed_precision(name: str) -> str:
    """"auto": what `accelerate launch` / its config chose, else bf16 on CUDA and none on a CPU."""
    if name != "auto":
        return name
    return os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if torch.cuda.is_available() else "no")


def find_resume(config: TrainConfig, out: Path) -> Path | None:
    """The checkpoint folder ``--resume`` names (None: a fresh run)."""
    if config.resume is None:
        return None
    if config.resume == "latest":
        found = sorted((out / CHECKPOINTS).glob("step_*")) if (out / CHECKPOINTS).is_dir() else []
        if not found:
            log.info("--resume latest: no checkpoint in %s yet, starting from step 0", out / CHECKPOINTS)
            return None
        check_checkpoint(found[-1], config, found[-2] if len(found) > 1 else None)
        return found[-1]
    path = Path(config.resume)
    if not (path / STATE_FILE).is_file():
        raise DimensionXError(f"--resume {path}: not a checkpoint folder (no {STATE_FILE}); pass a folder "
                              f"{out / CHECKPOINTS}/step_NNNNNN or `latest`")
    earlier = sorted(p for p in path.parent.glob("step_*") if p.name < path.name)
    check_checkpoint(path, config, earlier[-1] if earlier else None)
    return path


def check_checkpoint(path: Path, config: TrainConfig, earlier: Path | None) -> None:
    """Refuses, before any model loads, a checkpoint whose files are not those it was written with (each file's
    size and sha256 are in its trainer_state.json) or that holds a LoRA of another rank than ``config.rank``."""
    recover = (f"resume from the one before (--resume {earlier})" if earlier else "there is no earlier checkpoint") + \
        " or start again (--overwrite)"
    try:
        state = json.loads((path / STATE_FILE).read_text())
        int(state["step"])
        files = {name: (int(w["bytes"]), str(w["sha256"])) for name, w in (state.get("files") or {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DimensionXError(f"checkpoint {path} is damaged: its {STATE_FILE} cannot be read ({type(exc).__name__}: "
                              f"{exc}); {recover}") from None
    for name, (size_written, sha256) in files.items():
        file = path / name
        size = file.stat().st_size if file.is_file() else None
        if size != size_written or file_sha256(file) != sha256:
            now = "is missing" if size is None else f"is {size} bytes, {size_written} when written" \
                if size != size_written else "differs from the sha256 written with it"
            raise DimensionXError(f"checkpoint {path} is damaged: {name} {now}; {recover}")
    rank = state.get("rank") or _lora_rank(path / CHECKPOINT_LORA, recover)
    if rank != config.rank:
        raise DimensionXError(f"checkpoint {path} holds a LoRA of rank {rank}, but rank is {config.rank}: pass --rank "
                              f"{rank} to continue it, or --overwrite to start a new run at rank {config.rank}")


def _lora_rank(path: Path, recover: str) -> int:
    """The rank of the LoRA file of a checkpoint written before checkpoints recorded it: lora_A's rows."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as lora:
            name = next(k for k in lora.keys() if "lora_A" in k)
            return lora.get_slice(name).get_shape()[0]
    except (OSError, SafetensorError, StopIteration) as exc:
        raise DimensionXError(f"checkpoint {path.parent} is damaged: {path.name} cannot be read ({type(exc).__name__}: "
                              f"{exc}); {recover}") from None


def check_run_folder(out: Path, config: TrainConfig) -> None:
    """Refuses, before any model loads, a run folder that is another's files, or that is already a run and
    neither --resume nor --overwrite says what to do with it."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DimensionXError(f"--output-dir {out} is not a folder: pass a new folder for the run")
    if not out.exists():
        check_writable(out / LOG_FILE, overwrite=False, what="--output-dir")  # its parent can be written
        return
    if not any(out.iterdir()):
        check_writable(out / LOG_FILE, overwrite=True, what="--output-dir")  # an empty folder: it can be written
        return
    if not is_output_dir(out, "train"):
        raise DimensionXError(f"--output-dir {out} holds files that `dimensionx train` did not write (no run marker "
                              f"{OUTPUT_MARKER}): neither --resume nor --overwrite touches them; pass a new or empty --output-dir")
    if config.resume is None and not config.overwrite:
        raise DimensionXError(f"--output-dir {out} already holds a run: pass --resume latest to continue it, "
                              "--overwrite to start again, or another --output-dir")
    check_writable(out / LOG_FILE, overwrite=True, what="--output-dir")  # the run folder can be written


def prepare_run_folder(out: Path, config: TrainConfig, resume_dir: Path | None, clips: ClipList) -> None:
    """Creates the run folder, marked as a run, and writes its config and data report. With --overwrite (and no
    --resume) an earlier run is moved aside and deleted only when this one has exported its LoRA."""
    if config.resume is None and config.overwrite and out.exists() and any(out.iterdir()):
        start_output_dir(out, overwrite=True, stage="train")
    elif not is_output_dir(out, "train"):
        out.mkdir(parents=True, exist_ok=True)
        mark_output_dir(out, "train")
    for partial in (out / CHECKPOINTS).glob(".step_*.partial"):  # a killed run's unfinished checkpoint
        if re.fullmatch(r"\.step_\d{6}\.partial", partial.name) and partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial)
    write_json({"config": config_to_dict(config)}, out / "train_config.json")
    write_json(clips.report(), out / "data_report.json")
    if resume_dir is None:
        (out / LOG_FILE).unlink(missing_ok=True)


def remove_unstarted_run(out: Path) -> None:
    """Deletes the run folder ``out`` this command created, if it failed before its first checkpoint."""
    if is_output_dir(out, "train") and not any((out / CHECKPOINTS).glob("step_*")) and not (out / LORA_FILE).exists():
        shutil.rmtree(out, ignore_errors=True)


def cache_dir(config: TrainConfig, clips: ClipList) -> Path:
    return Path(config.cache_dir) if config.cache_dir else clips.root / ".dimensionx-cache"


def encode_settings(config: TrainConfig, model, dtype: torch.dtype) -> dict:
    """Everything a cached file depends on besides the video bytes and the caption."""
    return {"model": str(model.path), "dtype": str(dtype), "frames": config.frames, "skip": config.skip_frames,
            "text_max_length": config.text_max_length, "draws": config.image_noise_draws, "seed": config.seed,
            "image_noise": [config.image_noise_mean, config.image_noise_std], "version": 1}


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def encode_clip(parts: Components, clip, config: TrainConfig, height: int, width: int) -> dict[str, torch.Tensor]:
    """One clip's latents [F', C, h, w], ``draws`` noisy first-frame latents [draws, 1, C, h, w], caption [L, D]."""
    rng = torch.Generator().manual_seed(config.seed)
    video = load_clip(clip, config.frames, config.skip_frames, height, width)[None]  # [1, F, 3, H, W]
    draws = config.image_noise_draws
    sigma = torch.exp(torch.normal(config.image_noise_mean, config.image_noise_std, (draws,), generator=rng))
    noise = torch.randn((draws, *video.shape[2:]), generator=rng)
    first = encode_first_frame(parts.vae, video[:, 0].expand(draws, -1, -1, -1), sigma.to(parts.vae.device),
                               noise.to(parts.vae.device), rng)
    return {"latents": encode_video(parts.vae, video, rng)[0].cpu(), "image_latents": first.cpu(),
            "prompt_embeds": encode_text(parts.tokenizer, parts.text_encoder, [clip.caption], config.text_max_length)[0].cpu()}


def micro_step(transformer, parts: Components, batch: dict, config: TrainConfig, rng: torch.Generator,
               alphas: torch.Tensor, rotary, latent_frames: int, device: torch.device,
               inputs_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-sample loss [B] of one micro-batch; every random draw comes from ``rng`` (CPU)."""
    if "latents" in batch:
        latents, prompt = batch["latents"].to(device), batch["prompt_embeds"].to(device)
        batch_size = len(latents)
        pick = torch.randint(0, batch["image_latents"].shape[1], (batch_size,), generator=rng)
        first = batch["image_latents"][torch.arange(batch_size), pick].to(device)  # [B, 1, C, h, w]
    else:
        video = batch["video"]  # [B, F, 3, H, W]
        batch_size = len(video)
        latents = encode_video(parts.vae, video, rng)
        sigma = torch.exp(torch.normal(config.image_noise_mean, config.image_noise_std, (batch_size,), generator=rng))
        noise = torch.randn(video[:, 0].shape, generator=rng)
        first = encode_first_frame(parts.vae, video[:, 0].to(device), sigma.to(device), noise.to(device), rng)
        prompt = encode_text(parts.tokenizer, parts.text_encoder, list(batch["caption"]), config.text_max_length)
    timesteps = torch.randint(0, TRAIN_TIMESTEPS, (batch_size,), generator=rng)
    noise = torch.randn(latents.shape, generator=rng)
    keep_text = (torch.rand(batch_size, generator=rng) >= config.text_dropout).float()
    keep_image = (torch.rand(batch_size, generator=rng) >= config.image_dropout).float()
    prompt = prompt * keep_text.to(device).view(-1, 1, 1)
    condition = image_condition(first * keep_image.to(device).view(-1, 1, 1, 1, 1), latent_frames)
    return diffusion_loss(transformer, alphas, latents, condition.to(latents.dtype), prompt,
                          timesteps.to(device), noise.to(device), rotary, inputs_dtype)


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter], device: torch.device):
    kwargs = dict(lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                  weight_decay=config.weight_decay, eps=config.adam_epsilon)
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise DimensionXError("optimizer adamw8bit needs bitsandbytes: pip install bitsandbytes, or use adamw") from None
        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, fused=device.type == "cuda", **kwargs)


def build_schedule(config: TrainConfig, optimizer, processes: int):
    """diffusers' named schedules; accelerate steps a prepared schedule once per process, hence the factor."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps * processes,
                         num_training_steps=config.max_steps * processes)


class StopRequest:
    """Set by SIGTERM; the loop saves a checkpoint at the end of the current step and stops."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def on_sigterm(self):
        previous = signal.signal(signal.SIGTERM, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, signum, frame) -> None:
        self.requested = True


def flags(accelerator, loss: torch.Tensor, stop_requested: bool) -> tuple[bool, bool]:
    """(any process saw a NaN/inf loss, any process got SIGTERM): every process decides alike."""
    local = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0, float(stop_requested)], device=loss.device)
    total = accelerator.reduce(local, reduction="sum")
    return bool(total[0] > 0), bool(total[1] > 0)


def stop_on_nan(accelerator, out: Path, step: int, loss: torch.Tensor) -> None:
    found = sorted((out / CHECKPOINTS).glob("step_*")) if (out / CHECKPOINTS).is_dir() else []
    if accelerator.is_main_process:
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps({"step": step + 1, "loss": None, "error": "non-finite loss"}) + "\n")
    raise DimensionXError(
        f"the loss became {loss.item()} at step {step + 1}: training stopped, no LoRA exported. "
        + (f"The last good checkpoint is {found[-1]}; " if found else "No checkpoint was written yet; ")
        + "lower learning_rate, use mixed_precision bf16 instead of fp16, or check the data, then "
        + ("--resume latest" if found else "run again")
    )


def append_log(out: Path, step: int, loss: float, lr: float, grad_norm, seconds: float, samples: int,
               peaks: torch.Tensor | None = None) -> None:
    """One line of train_log.jsonl; ``peaks`` [processes, 2]: peak allocated / reserved GiB of each process's GPU."""
    line = {"step": step, "loss": loss, "lr": lr,
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "seconds": round(seconds, 4), "samples_per_s": round(samples / seconds, 4)}
    if peaks is not None:
        line["peak_allocated_gib"] = [round(float(p), 2) for p in peaks[:, 0]]
        line["peak_reserved_gib"] = [round(float(p), 2) for p in peaks[:, 1]]
    with open(out / LOG_FILE, "a") as f:
        f.write(json.dumps(line) + "\n")


def register_lora_hooks(accelerator) -> None:
    """Checkpoints hold the LoRA alone (not the frozen 5B weights): accelerate's save/load hooks."""
    from safetensors.torch import load_file, save_file

    def save(models, weights, output_dir):
        if accelerator.is_main_process and models:
            tensors = {k: v.float().contiguous() for k, v in lora_state(accelerator.unwrap_model(models[0])).items()}
            save_file(tensors, os.path.join(output_dir, CHECKPOINT_LORA))
        weights.clear()

    def load(models, input_dir):
        while models:
            load_lora_state(accelerator.unwrap_model(models.pop()), load_file(os.path.join(input_dir, CHECKPOINT_LORA)))

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def save_checkpoint(accelerator, out: Path, step: int, rng: torch.Generator, config: TrainConfig) -> Path:
    """``checkpoints/step_NNNNNN``: written under a temporary name, renamed when complete; older ones pruned."""
    from accelerate.utils import DistributedType

    final = out / CHECKPOINTS / f"step_{step:06d}"
    partial = out / CHECKPOINTS / f".step_{step:06d}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    extra = {"exclude_frozen_parameters": True} if accelerator.distributed_type == DistributedType.DEEPSPEED else {}
    try:
        accelerator.save_state(str(partial), **extra)
        torch.save(rng.get_state(), partial / f"rng_state_{accelerator.process_index}.pt")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            written = {str(f.relative_to(partial)): {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
                       for f in sorted(partial.rglob("*")) if f.is_file()}
            write_json({"step": step, "processes": accelerator.num_processes, "micro_batch": config.micro_batch,
                        "grad_accumulation": config.grad_accumulation, "seed": config.seed, "rank": config.rank,
                        "files": written}, partial / STATE_FILE)
    except BaseException as exc:  # a full disk, a signal: no half-written checkpoint stays
        code = machine_errno(exc) or (errno.EFBIG if reached_size_limit(*partial.rglob("*")) else None)  # torch.save's has none
        shutil.rmtree(partial, ignore_errors=True)
        # without an earlier checkpoint the run folder is removed (remove_unstarted_run): there is nothing to resume
        then = "continue with --resume latest" if any((out / CHECKPOINTS).glob("step_*")) else "run the command again"
        if isinstance(exc, Exception) and code in DISK_FULL:
            raise DimensionXError(cannot_write(f"checkpoint {final}", code, then)) from None
        if isinstance(exc, Exception) and not isinstance(exc, (OSError, DimensionXError)):
            free = shutil.disk_usage(out).free
            raise DimensionXError(f"checkpoint {final} could not be written ({type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())}; {free / 2**20:.0f} MiB free on its disk): free some "
                                  f"space, then {then}") from None
        raise
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        for old in sorted((out / CHECKPOINTS).glob("step_*"))[: -max(1, config.checkpoints_kept)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resume(accelerator, checkpoint: Path, rng: torch.Generator, out: Path) -> int:
    """Loads ``checkpoint`` into the prepared objects; returns its step. The log keeps lines up to that step."""
    from accelerate.utils import DistributedType

    state = json.loads((checkpoint / STATE_FILE).read_text())
    if state["processes"] != accelerator.num_processes:
        log.warning("checkpoint %s was written by %d processes, this run has %d: the data order will differ",
                    checkpoint, state["processes"], accelerator.num_processes)
    extra = {"load_module_strict": False} if accelerator.distributed_type == DistributedType.DEEPSPEED else {}
    rng_file = checkpoint / f"rng_state_{accelerator.process_index}.pt"
    try:
        accelerator.load_state(str(checkpoint), **extra)
        if rng_file.is_file():
            rng.set_state(torch.load(rng_file))
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:  # a checkpoint without checksums
        raise DimensionXError(f"checkpoint {checkpoint} is damaged ({type(exc).__name__}: {' '.join(str(exc).split())}): "
                              "resume from an earlier one (--resume its folder) or start again (--overwrite)") from None
    step = int(state["step"])
    if accelerator.is_main_process and (out / LOG_FILE).is_file():
        lines = (out / LOG_FILE).read_text().splitlines()
        kept = [line for line in lines if line and (json.loads(line).get("step") or 0) <= step]
        (out / LOG_FILE).write_text("".join(f"{line}\n" for line in kept))
    log.info("resumed from %s at step %d", checkpoint, step)
    return step


def export_lora(transformer, out: Path, config: TrainConfig, model_id: str, clips: ClipList, step: int) -> Path:
    """``pytorch_lora_weights.safetensors`` (unprefixed, ``dimensionx video --lora`` fuses it at 1/rank) + JSON sidecar."""
    tensors = {k: v.to(EXPORT_DTYPES[config.export_dtype]) for k, v in lora_state(transformer).items()}
    path = out / LORA_FILE
    with atomic_file(path) as tmp:
        save_lora(tensors, tmp)
    lines = (out / LOG_FILE).read_text().splitlines() if (out / LOG_FILE).is_file() else []
    final_loss = json.loads(lines[-1]).get("loss") if lines else None
    write_json({"config": config_to_dict(config), "model": model_id, "steps": step, "rank": config.rank,
                "scale": f"1/{config.rank} (peft lora_alpha=1), the scale `dimensionx video` fuses at",
                "final_loss": final_loss, "clips": len(clips.clips), "skipped_rows": len(clips.bad)},
               path.with_suffix(".json"))
    log.info("wrote %s (rank %d, %d tensors)", path, config.rank, len(tensors))
    return path


@torch.no_grad()
def write_sample(transformer, parts: Components, clips: ClipList, config: TrainConfig, out: Path, step: int,
                 device: torch.device) -> None:
    """A video from the first clip's first frame and caption, with the LoRA as it is now."""
    from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
    from PIL import Image

    height, width = parts.size
    clip = clips.clips[0]
    frame = load_clip(clip, config.frames, config.skip_frames, height, width)[0]  # [3, H, W]
    image = Image.fromarray(((frame.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy())
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=parts.tokenizer, text_encoder=parts.text_encoder, vae=parts.vae, transformer=transformer,
        scheduler=CogVideoXDPMScheduler.from_config(parts.scheduler.config, timestep_spacing="trailing"))
    pipe.set_progress_bar_config(disable=True)
    was_training = transformer.training
    transformer.eval()
    frames = pipe(image=image, prompt=clip.caption, height=height, width=width, num_frames=config.frames,
                  num_inference_steps=config.sample_steps, guidance_scale=6.0, use_dynamic_cfg=True,
                  generator=torch.Generator("cpu").manual_seed(config.seed), output_type="np").frames[0]
    transformer.train(was_training)
    write_video((frames.clip(0, 1) * 255 + 0.5).astype("uint8"), out / "samples" / f"step_{step:06d}.mp4", fps=8)
