"""Speed, memory and fidelity of ``--mode exact|fast|lowmem`` against stock diffusers, on one CUDA GPU.

The full CogVideoX-5B-I2V architecture (42-layer transformer, 3D VAE, 24-layer T5-XXL
encoder) is built from its published configs with random weights, initialised on the GPU
from one seed, so no download is needed. Stock diffusers and each mode run in one process on
the same image, prompt, noise and weights, each with the same random rank-64 director LoRA
fused in (so the fusion path of every mode is exercised): 49 frames at 480x720, 50 steps,
guidance 6 with dynamic CFG, as ``dimensionx video``.

Random weights time the real kernels at the real shapes, and the fidelity figures (PSNR of the
decoded frames, relative error of the final latents, both against stock) show how far each
mode's arithmetic drifts. They cannot judge visual quality: no frame here depicts anything.

Each mode first makes a 2-step video twice, with an empty Inductor cache: the first costs
more than the second by the start (for compiled modes the cold compile; for stock, kernel
autotuning and allocator warm-up). Then the 50-step video, all warm:
``seconds_end_to_end`` is what each video costs in a running process (the app, a batch). A
second process with the cache filled repeats the 2-step pair: the warm start, what the first
video of a new ``dimensionx video`` process costs on top (``seconds_first_video_warm``).
Results are printed and written to ``benchmarks/results/video_<device>.json``.

    python benchmarks/bench_video.py                      # every mode, ~9 minutes on an H100
    python benchmarks/bench_video.py --modes stock,exact,fast              # 6.5 minutes, then
    python benchmarks/bench_video.py --modes stock,lowmem --append         # 5 minutes, same JSON
    python benchmarks/bench_video.py --frames 145 --size 320x480 --modes stock,exact,fast   # orbit shape, 8 min
    python benchmarks/bench_video.py --steps 4 --frames 9 --out /tmp/smoke   # wiring check
    python benchmarks/bench_video.py --modes stock,fast,fast+attention=sage --no-warm-start   # one lever at a time

A mode written ``MODE+KEY=VALUE+...`` runs MODE with those ``ModeConfig`` settings (``mode_settings`` of a
preset): each lever of a mode is measured as its own row against the same stock reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Published configs (THUDM/CogVideoX-5b-I2V), written out because the hub may be unreachable.
TRANSFORMER = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, flip_sin_to_cos=True, freq_shift=0,
    time_embed_dim=512, text_embed_dim=4096, num_layers=42, dropout=0.0, attention_bias=True, sample_width=90,
    sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
    activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5,
    spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True, patch_bias=True,
)
VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
    block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3, act_fn="silu", norm_eps=1e-6,
    norm_num_groups=32, temporal_compression_ratio=4, sample_height=480, sample_width=720, scaling_factor=0.7,
)
T5_XXL = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
    relative_attention_max_distance=128, dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
    is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
)
SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=True, steps_offset=0, prediction_type="v_prediction", rescale_betas_zero_snr=True,
    snr_shift_scale=1.0, timestep_spacing="trailing",
)
PROMPT = "A red barn in a green field under a blue sky, the camera slowly orbiting to the left."
GOALS = {"exact": {"seconds_max": 55.0, "psnr_min_db": 35.0}, "fast": {"seconds_max": 20.0}, "lowmem": {"peak_gib_max": 10.0}}
GIB = 2**30
COMPILED = ("exact", "fast")  # modes with a compile start
DEFAULT_SHAPE = (49, 480, 720)  # frames, height, width of `dimensionx video`


def parse_mode(spec: str):
    """``fast+attention=sage+cache_interval=6`` -> ("fast", ModeConfig with those settings); a bare name -> (name, None)."""
    from dimensionx.video.config import ModeConfig

    mode, *settings = spec.split("+")
    if not settings:
        return mode, None
    defaults = ModeConfig()
    values = {}
    for setting in settings:
        key, value = setting.split("=", 1)
        kind = type(getattr(defaults, key))
        values[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return mode, ModeConfig(**values)


def build_pipeline(seed: int, text_encoder: bool = True):
    """The 5B-I2V pipeline with random weights, every tensor on the GPU in bf16; same seed, same weights."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from dimensionx.models.tiny import _build_tiny_tokenizer

    torch.manual_seed(seed)
    with torch.device("cuda"):
        transformer = CogVideoXTransformer3DModel(**TRANSFORMER).to(torch.bfloat16)
        vae = AutoencoderKLCogVideoX(**VAE).to(torch.bfloat16)
        t5 = T5EncoderModel(T5Config(**T5_XXL)).to(torch.bfloat16).eval() if text_encoder else None
    # A character-level T5 tokenizer: real T5-XXL compute on 226 tokens without the hub's vocabulary.
    tokenizer = _build_tiny_tokenizer() if text_encoder else None
    return CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=t5, vae=vae, transformer=transformer,
                                         scheduler=CogVideoXDPMScheduler(**SCHEDULER))


@torch.no_grad()
def sequence_length(frames: int) -> int:
    """Tokens the transformer attends over: 2x2 patches of every latent frame, plus the prompt's."""
    latent_frames = (frames - 1) // TRANSFORMER["temporal_compression_ratio"] + 1
    patches = (TRANSFORMER["sample_height"] // TRANSFORMER["patch_size"]) * (TRANSFORMER["sample_width"] // TRANSFORMER["patch_size"])
    return latent_frames * patches + TRANSFORMER["max_text_seq_length"]


def full_step_tflop(frames: int) -> float:
    """Matrix work of one transformer pass over the CFG batch of 2: block GEMMs plus attention."""
    dim = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
    tokens = sequence_length(frames)
    per_layer = 24 * dim**2 * tokens + 4 * tokens**2 * dim  # q, k, v, out and the 4x MLP; QK^T and PV
    return 2 * TRANSFORMER["num_layers"] * per_layer / 1e12


@torch.no_grad()
def kernel_floor(frames: int) -> dict:
    """The bf16 transformer time of one step if every FLOP ran at this GPU's measured rate for the
    shape: cuDNN attention over the CFG batch, and the 3072 x 12288 MLP GEMM for all the matrix work."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, head_dim = TRANSFORMER["num_attention_heads"], TRANSFORMER["attention_head_dim"]
    dim = heads * head_dim
    tokens = sequence_length(frames)
    q, k, v = (torch.randn(2, tokens, heads, head_dim, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(3))
    x = torch.randn(2 * tokens, dim, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4 * dim, dim, device="cuda", dtype=torch.bfloat16)

    def attention():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    def seconds(fn, reps: int = 10) -> float:
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / reps

    attention_tflop, gemm_tflop = 4 * 2 * tokens**2 * dim / 1e12, 2 * 2 * tokens * dim * 4 * dim / 1e12
    attention_rate, gemm_rate = attention_tflop / seconds(attention), gemm_tflop / seconds(lambda: x @ w.T)
    layers = TRANSFORMER["num_layers"]
    step = layers * (attention_tflop / attention_rate + 3 * gemm_tflop / gemm_rate)  # q, k, v, out and the MLP: 3x its first GEMM
    return {"attention_tflops": attention_rate, "gemm_tflops": gemm_rate, "bf16_step_seconds": step}


@torch.no_grad()
def fingerprint(pipe) -> float:
    """A checksum of a few weights: equal across builds when the random weights are."""
    block = pipe.transformer.transformer_blocks
    return float(sum(p.double().sum() for p in (block[0].attn1.to_q.weight, block[-1].ff.net[2].weight, pipe.vae.decoder.conv_out.conv.weight)))


def random_director(rank: int, seed: int, folder: Path):
    """A director LoRA file of the official layout (q/k/v/out of every block), random, fused at 1/rank."""
    from dimensionx.directors.lora import LORA_TARGETS, read_lora, save_lora

    generator = torch.Generator().manual_seed(seed)
    dim = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
    tensors = {}
    for block in range(TRANSFORMER["num_layers"]):
        for target in LORA_TARGETS:
            name = f"transformer_blocks.{block}.{target}"
            tensors[f"{name}.lora_A.weight"] = (torch.randn(rank, dim, generator=generator) / math.sqrt(dim)).bfloat16()
            tensors[f"{name}.lora_B.weight"] = (torch.randn(dim, rank, generator=generator) * 0.02).bfloat16()
    path = folder / "random_director.safetensors"
    save_lora(tensors, path)
    return read_lora(path)


def set_shape(frames: int, height: int, width: int) -> None:
    """Builds the models for this video shape (the 145-frame orbit model is 320x480): sample sizes of the configs."""
    TRANSFORMER.update(sample_frames=frames, sample_height=height // 8, sample_width=width // 8)
    VAE.update(sample_height=height, sample_width=width)


def test_image() -> Image.Image:
    """Photo-like input of the video's size: gradients and a disc, no flat regions."""
    height, width = VAE["sample_height"], VAE["sample_width"]
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (0.3 * height) ** 2
    rgb = np.stack([x / width * 255, y / height * 255, disc * 200 + 30], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def prepare(mode: str, seed: int, lora, text_encoder: bool = True, mode_config=None):
    """Builds the pipeline, director fused: stock diffusers, or assembled for a mode by dimensionx's generator
    (as ``dimensionx video`` assembles it; CFG-parallel too when run under torchrun). ``mode_config``: a
    ModeConfig other than the defaults (e.g. another step-cache interval)."""
    from dimensionx.directors.lora import fuse_directors
    from dimensionx.models import ResolvedModel
    from dimensionx.video.generator import DirectorChoice, DirectorVideoGenerator

    pipe = build_pipeline(seed, text_encoder)
    notes = []
    if mode == "stock":
        if lora is not None:
            fuse_directors(pipe, [(lora, 1.0)])
    else:
        generator = DirectorVideoGenerator(ResolvedModel(f"random CogVideoX-5B-I2V (seed {seed})", Path()), torch.device("cuda"),
                                           torch.bfloat16, mode, mode_config=mode_config, pipe=pipe)
        if lora is not None:
            generator.set_directors([DirectorChoice("random", 1.0, lora)], None)
        notes = generator.mode_notes
    gc.collect()
    torch.cuda.empty_cache()
    return pipe, notes


@torch.no_grad()
def generate(pipe, image, args, prompt_embeds: torch.Tensor | None = None, steps: int | None = None, zero_uncond: bool = False) -> dict:
    """One video as ``dimensionx video`` makes it, timed per phase (host clock after device syncs).
    ``zero_uncond``: as ``dimensionx orbit``, the prompt is encoded once and the unguided branch gets a zero embedding."""
    starts, ends = [], []

    def on_transformer(module, call_args, call_kwargs):
        torch.cuda.synchronize()
        starts.append(time.perf_counter())

    def on_step_end(pipe, step, timestep, tensors):
        torch.cuda.synchronize()
        ends.append(time.perf_counter())
        return tensors

    handle = pipe.transformer.register_forward_pre_hook(on_transformer, with_kwargs=True)
    text = {"prompt": PROMPT} if prompt_embeds is None else {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": prompt_embeds}
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    if zero_uncond:
        embeds = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, device=pipe._execution_device)[0]  # [1, 226, 4096]
        text = {"prompt_embeds": embeds, "negative_prompt_embeds": torch.zeros_like(embeds)}
    latents = pipe(image=image, height=VAE["sample_height"], width=VAE["sample_width"], num_frames=args.frames, num_inference_steps=steps or args.steps,
                   guidance_scale=6.0, use_dynamic_cfg=True, generator=torch.Generator("cpu").manual_seed(42),
                   output_type="latent", callback_on_step_end=on_step_end, **text).frames  # [1, F_latent, C, H/8, W/8]
    torch.cuda.synchronize()
    denoised = time.perf_counter()
    video = pipe.decode_latents(latents)  # [1, 3, T, H, W] in [-1, 1]
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]  # [T, H, W, 3] in [0, 1]
    frames = (np.clip(frames * 255.0, 0, 255) + 0.5).astype(np.uint8)
    torch.cuda.synchronize()
    done = time.perf_counter()
    handle.remove()
    steps = [e - s for s, e in zip(starts, ends)]
    return {
        "latents": latents.float(), "frames": frames,
        "seconds_end_to_end": done - start, "seconds_prepare": starts[0] - start, "seconds_denoise": ends[-1] - starts[0],
        "seconds_decode": done - denoised, "step_seconds": steps,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB, "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
    }


def fidelity(run: dict, reference: dict) -> dict:
    error = (run["latents"] - reference["latents"]).norm() / reference["latents"].norm()
    mse = np.mean((run["frames"].astype(np.float64) - reference["frames"].astype(np.float64)) ** 2)
    return {"latent_rel_error": float(error), "psnr_db": None if mse == 0 else float(10 * np.log10(255.0**2 / mse))}  # None: identical


def full_steps(step_seconds: list[float]) -> list[float]:
    """Seconds of the steps that ran the whole transformer (a step cache forecasts the others): the slow
    cluster of steps 1.. (step 0 carries warm-up), split at the geometric mean of the 10th and 90th
    percentiles, so that one slow outlier (a recompile) does not make every other full step look cheap."""
    seconds = np.asarray(step_seconds[1:] or step_seconds, dtype=np.float64)
    low, high = np.percentile(seconds, 10), np.percentile(seconds, 90)
    if high < 3 * low:  # one cluster: every step ran in full
        return seconds.tolist()
    return seconds[seconds > np.sqrt(low * high)].tolist()


def summarize(mode: str, run: dict, notes: list[str], args) -> dict:
    step = run["step_seconds"]
    full = full_steps(step)
    return {
        "mode": mode, "notes": notes,
        "seconds_end_to_end": run["seconds_end_to_end"], "seconds_prepare": run["seconds_prepare"],
        "seconds_denoise": run["seconds_denoise"], "seconds_decode": run["seconds_decode"],
        "seconds_per_step": run["seconds_denoise"] / args.steps, "full_step_seconds_median": float(np.median(full)),
        "full_step_tflops": full_step_tflop(args.frames) / float(np.median(full)),
        "steps_computed_in_full": 1 + len(full) if len(step) > 1 else 1,
        "peak_allocated_gib": run["peak_allocated_gib"], "peak_reserved_gib": run["peak_reserved_gib"],
    }


def start_overhead(pipe, image, args, prompt_embeds: torch.Tensor | None = None) -> float:
    """Seconds a first 2-step video takes over a second one: what starting costs this process (compiles, autotuning)."""
    first, second = (generate(pipe, image, args, prompt_embeds, steps=2)["seconds_end_to_end"] for _ in range(2))
    return first - second


def warm_start(args) -> dict:
    """In a fresh process with the Inductor cache filled: the start overhead of each compiled mode."""
    command = [sys.executable, __file__, "--warm-start-child", "--frames", str(args.frames), "--size", args.size,
               "--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    lines = [line for line in done.stdout.splitlines() if line.startswith("WARM ")]
    if done.returncode or not lines:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        return {}
    return json.loads(lines[-1][5:])


def warm_start_child(args) -> None:
    image = test_image()
    embeds = torch.zeros(1, TRANSFORMER["max_text_seq_length"], TRANSFORMER["text_embed_dim"], dtype=torch.bfloat16, device="cuda")
    result = {}
    for mode in ("exact", "fast"):
        pipe, _ = prepare(mode, args.seed, None, text_encoder=False)
        result[mode] = start_overhead(pipe, image, args, embeds)
        del pipe
        free_gpu()
    print("WARM " + json.dumps(result), flush=True)


def free_gpu() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch._dynamo.reset()


def finish(rows: dict, warm: dict, stock: dict | None, shape: tuple[int, int, int]) -> None:
    """Adds the first-video times of compiled modes, the ratio to stock and the goals to each row.

    Goals are judged on ``seconds_end_to_end``, a video in a running process; the first video
    of a new process (``seconds_first_video_warm``) costs the warm start on top.
    """
    for mode, row in rows.items():
        if "start_overhead_cold_s" in row:
            row["seconds_first_video_cold"] = row["seconds_end_to_end"] + row["start_overhead_cold_s"]
        if mode in warm:
            row["start_overhead_warm_s"] = warm[mode]
            row["seconds_first_video_warm"] = row["seconds_end_to_end"] + warm[mode]
        if stock is not None:
            row["ratio_to_stock"] = stock["seconds_end_to_end"] / row["seconds_end_to_end"]
        goal = GOALS.get(mode) if shape == DEFAULT_SHAPE else None  # the goals are set for 49 frames 480x720
        if goal:
            met = [row["seconds_end_to_end"] <= goal["seconds_max"]] if "seconds_max" in goal else []
            met += [row.get("psnr_db") is None or row["psnr_db"] >= goal["psnr_min_db"]] if "psnr_min_db" in goal else []
            met += [row["peak_reserved_gib"] <= goal["peak_gib_max"]] if "peak_gib_max" in goal else []
            row["goal"] = {**goal, "met": all(met)}


def environment() -> dict:
    import diffusers
    import transformers

    versions = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    try:
        import torchao

        versions["torchao"] = torchao.__version__
    except ImportError:
        versions["torchao"] = None
    return {"device": torch.cuda.get_device_name(), "versions": versions}


def result_path(report: dict, out: Path) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", report["environment"]["device"].lower()).strip("-")
    settings = report["settings"]
    shape = "" if (settings["frames"], settings["height"], settings["width"]) == DEFAULT_SHAPE else \
        f"_{settings['frames']}f_{settings['height']}x{settings['width']}"
    return out / f"video_{slug}{shape}.json"


def write(report: dict, out: Path) -> Path:
    path = result_path(report, out)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def print_table(rows: dict) -> None:
    print(f"\n{'mode':<7} {'video s':>7} {'1st warm':>8} {'1st cold':>8} {'s/step':>7} {'full':>4} {'peak GiB':>8} {'x stock':>7} {'PSNR dB':>8} {'lat err':>8}")
    for mode, r in rows.items():
        print(f"{mode:<7} {r['seconds_end_to_end']:7.1f} {r.get('seconds_first_video_warm', float('nan')):8.1f} "
              f"{r.get('seconds_first_video_cold', float('nan')):8.1f} {r['seconds_per_step']:7.2f} {r['steps_computed_in_full']:4d} "
              f"{r['peak_reserved_gib']:8.1f} {r.get('ratio_to_stock', float('nan')):7.2f} {r.get('psnr_db') or float('nan'):8.1f} "
              f"{r.get('latent_rel_error', float('nan')):8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="stock,exact,fast,lowmem", help="comma-separated; stock first gives the reference")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", default="480x720", help="HEIGHTxWIDTH in pixels; the orbit model's 145 frames are 320x480")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of modes not run here from the JSON already in --out (one call per group of modes)")
    parser.add_argument("--no-warm-start", action="store_true", help="skip the second process that times the warm start")
    parser.add_argument("--warm-start-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_video.py needs a CUDA GPU: run it on the GPU machine (see docs/speed.md)")
    height, width = (int(n) for n in args.size.split("x"))
    set_shape(args.frames, height, width)
    if args.warm_start_child:
        return warm_start_child(args)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")  # cold: empty cache
    os.environ["DIMENSIONX_CACHE"] = tempfile.mkdtemp(prefix="dimensionx-cold-")  # and no compile-artifact file (modes.py)
    modes = args.modes.split(",")
    image, lora = test_image(), random_director(args.lora_rank, args.seed, Path(tempfile.mkdtemp()))
    report = {"environment": environment(), "settings": {"frames": args.frames, "height": VAE["sample_height"], "width": VAE["sample_width"], "steps": args.steps,
              "guidance": 6.0, "dynamic_cfg": True, "lora_rank": args.lora_rank,
              "full_step_tflop": full_step_tflop(args.frames), "weights": "random (seed %d)" % args.seed,
              "note": "random weights: timings and drift are real, visual quality is not judged"},
              "kernel_floor": kernel_floor(args.frames), "modes": {}, "processes": []}
    earlier_path = result_path(report, Path(args.out))
    if args.append and earlier_path.is_file():
        earlier = json.loads(earlier_path.read_text())
        report["modes"], report["processes"] = earlier["modes"], earlier.get("processes", [])
        report["weights_fingerprint"] = earlier.get("weights_fingerprint", {})
    report["processes"].append(modes)
    reference = None
    for spec in modes:
        mode, mode_config = parse_mode(spec)
        pipe, notes = prepare(mode, args.seed, lora, mode_config=mode_config)
        report.setdefault("weights_fingerprint", {})[mode] = fingerprint(pipe)
        overhead = start_overhead(pipe, image, args)  # also warms stock's kernels: every mode is timed warm
        run = generate(pipe, image, args)
        del pipe
        free_gpu()
        row = summarize(mode, run, notes, args)
        row["start_overhead_cold_s"] = overhead
        if mode_config is not None:
            row["mode_settings"] = dataclasses.asdict(mode_config)
        if mode == "stock":
            reference = run
            row["frames_mean"], row["frames_std"] = float(run["frames"].mean()), float(run["frames"].std())
        elif reference is not None:
            row.update(fidelity(run, reference))
        report["modes"][spec] = row
        finish(report["modes"], {}, report["modes"].get("stock"), (args.frames, height, width))
        print(f"{mode}: {json.dumps(row)}", flush=True)
        write(report, Path(args.out))
    compiled = [m for m in modes if m in COMPILED]
    warm = warm_start(args) if compiled and not args.no_warm_start else {}
    finish(report["modes"], warm, report["modes"].get("stock"), (args.frames, height, width))
    path = write(report, Path(args.out))
    print_table(report["modes"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
