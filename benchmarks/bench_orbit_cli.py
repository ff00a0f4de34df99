"""The orbit commands as a user runs them, at full size: ``dimensionx convert-sat``, then ``dimensionx orbit``.

Builds the orbit model's architecture (CogVideoX-5B-I2V with ``sample_frames=145`` at 40x60
latents, so the 22426-row learned table) with random weights, saves it as the published
checkpoint is laid out (``checkpoints/latest`` + ``checkpoints/1/mp_rank_00_model_states.pt``,
the state under ``module``, SAT's tensor names as ``tests/test_sat_convert.py`` writes them by
hand; with ``--lora-rank R`` also a SAT LoRA of rank R on q/k/v and the attention output of
every layer, as the paper trains its directors), and saves the random base pipeline that lends
VAE, T5 and scheduler. Then, each in its own process as a user would type it: ``convert-sat
CHECKPOINTS --out MODEL --base BASE`` (the LoRA merged at 1/rank), with a LoRA also
``convert-sat CHECKPOINTS --lora-only --out director.safetensors`` (checked: rank and tensor
count), and ``orbit photo.png --model MODEL --mode M --out orbit_M.mp4`` per ``--modes`` (cold
start included: loading, FP8, compilation). Checks that every SAT tensor was placed and that the
video has 145 frames at 320x480; records seconds per step and the sidecar's own seconds. With
``--scene3d``, last, ``scene3d photo.png --orbit --model MODEL --mode fast --cameras ring.json``: the
orbit fed to the 3D stage in one command (random weights make noise that SfM cannot register, so the
cameras are the known 360-degree ring the orbit model is trained to follow, one per frame); checks the
scene's PLY, transforms.json and orbit render. Writes ``orbit_cli_<device>.json``.

    python benchmarks/bench_orbit_cli.py --modes fast --work /tmp/oc --out OUT                  # one H200: 3.5 min
    python benchmarks/bench_orbit_cli.py --modes fast,exact --lora-rank 256 --work /tmp/oc --out OUT
    python benchmarks/bench_orbit_cli.py --modes fast --lora-rank 256 --scene3d --work /tmp/oc --out OUT
    python benchmarks/bench_orbit_cli.py --tiny --lora-rank 4 --scene3d --out /tmp/orbit-cli     # CPU check: tiny-orbit, 2 steps
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO / "tests"))
import bench_video as bv  # noqa: E402
from test_sat_convert import sat_names, save_deepspeed, with_sat_lora  # noqa: E402  (SAT's names, written by hand)

ORBIT_SHAPE = (145, 320, 480)
CLI = "import sys; from dimensionx.cli import main; sys.exit(main(sys.argv[1:]))"


def dimensionx(*args: str) -> tuple[float, str]:
    """Runs ``dimensionx ARGS`` in a new process; (seconds, its last output lines). Fails loudly."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-6:])
    if done.returncode != 0:
        raise SystemExit(f"dimensionx {' '.join(map(str, args))} failed ({done.returncode}):\n{tail}")
    return seconds, tail


def build(work: Path, tiny: bool, lora_rank: int) -> tuple[Path, Path, Path | None, dict]:
    """(SAT checkpoint folder, base pipeline folder, SAT YAML or None, seconds) for the random orbit model."""
    seconds = {}
    start = time.perf_counter()
    if tiny:
        from dimensionx.models.tiny import TINY_ORBIT_FRAMES, build_tiny_pipeline

        pipe = build_tiny_pipeline(frames=TINY_ORBIT_FRAMES)
    else:
        bv.set_shape(*ORBIT_SHAPE)
        pipe = bv.build_pipeline(seed=0)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    base = work / "base"
    pipe.save_pretrained(base)
    seconds["save_base"] = time.perf_counter() - start
    start = time.perf_counter()
    transformer = pipe.transformer.to("cpu")
    config, state = transformer.config, sat_names(transformer)
    if lora_rank:
        state, _ = with_sat_lora(state, lora_rank, config.num_layers, config.num_attention_heads * config.attention_head_dim, 0.01)
    shutil.rmtree(work / "sat", ignore_errors=True)
    checkpoints = save_deepspeed(state, work / "sat")
    seconds["save_sat"] = time.perf_counter() - start
    sat_yaml = None
    if tiny:  # the converter's default SAT settings are the orbit's; the tiny one says its own
        sat_yaml = work / "sat.yaml"
        sat_yaml.write_text(json.dumps({"model": {"network_config": {"params": {
            "num_frames": config.sample_frames, "latent_height": config.sample_height, "latent_width": config.sample_width,
            "num_layers": config.num_layers,
            "modules": {"pos_embed_config": {"params": {"text_length": config.max_text_seq_length, "learnable_pos_embed": True}}},
        }}}}))
    del pipe, transformer, state
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return checkpoints, base, sat_yaml, {k: round(v, 1) for k, v in seconds.items()}


def scene3d(work: Path, photo: Path, model: Path, frames: int, width: int, height: int, tiny: bool) -> dict:
    """``dimensionx scene3d photo --orbit`` as typed, every frame reconstructed with the known cameras of a 360-degree ring."""
    from recon_synthetic import arc_cameras, intrinsics, transforms_json

    ring = work / "ring.json"
    ring.write_text(json.dumps(transforms_json(arc_cameras(frames, 360.0 * (frames - 1) / frames), intrinsics(width, height), width, height)))
    scene = work / "scene3d"
    steps = ["--steps", "2", "--iterations", "20", "--orbit-frames", "4"] if tiny else []
    wall, log = dimensionx("scene3d", photo, "--orbit", "--model", model, "--prompt", bv.PROMPT, "--mode", "fast", *steps,
                           "--frames", str(frames), "--cameras", ring, "--out", scene, "--overwrite")
    metrics = json.loads((scene / "metrics.json").read_text())
    video = json.loads((scene / "video.json").read_text())
    return {"wall_seconds": round(wall, 1), "frames": frames, "video_seconds": video["seconds"],
            "recon_seconds": metrics["seconds"], "frames_registered": metrics["frames_registered"],
            "n_gaussians": metrics["n_gaussians"], "psnr_of_noise": metrics["psnr"],
            "ok": {name: (scene / name).is_file() for name in ("point_cloud.ply", "transforms.json", "sparse/0/images.txt",
                                                               "renders/orbit.mp4", "video.mp4", "video.json")},
            "log": log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="fast,exact", help="comma-separated `dimensionx orbit --mode` values")
    parser.add_argument("--tiny", action="store_true", help="CPU check with the tiny orbit model (2 steps)")
    parser.add_argument("--lora-rank", type=int, default=0, help="also a SAT LoRA of this rank in the checkpoint (0: none)")
    parser.add_argument("--scene3d", action="store_true", help="then `scene3d --orbit` with the known cameras of a 360-degree ring")
    parser.add_argument("--work", type=Path, help="folder for the checkpoint, models and videos (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("the full-size run needs a CUDA GPU; --tiny checks the script on CPU")

    work = args.work or Path(tempfile.mkdtemp(prefix="orbit-cli-"))
    work.mkdir(parents=True, exist_ok=True)
    checkpoints, base, sat_yaml, seconds = build(work, args.tiny, args.lora_rank)
    model = work / "orbit360"
    shutil.rmtree(model, ignore_errors=True)
    convert_args = [checkpoints, "--out", model, "--base", base] + (["--sat-config", sat_yaml] if sat_yaml else [])
    seconds["convert_sat"], convert_log = dimensionx("convert-sat", *convert_args)
    conversion = json.loads((model / "conversion.json").read_text())
    report = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.machine(),
              "tiny": args.tiny, "weights": "random", "seconds": seconds, "conversion": conversion, "convert_log": convert_log,
              "orbit": {}}
    if args.lora_rank:
        from dimensionx.directors.lora import read_lora

        director = work / "director.safetensors"
        director.unlink(missing_ok=True)
        seconds["convert_sat_lora_only"], _ = dimensionx("convert-sat", checkpoints, "--lora-only", "--out", director,
                                                         *(["--sat-config", sat_yaml] if sat_yaml else []))
        lora = read_lora(director)
        layers = json.loads((model / "transformer" / "config.json").read_text())["num_layers"]
        report["lora"] = {"rank": lora.rank, "tensors": len(lora.tensors), "bytes": director.stat().st_size,
                          "ok": lora.rank == args.lora_rank and len(lora.tensors) == layers * 4 * 2}
    frames, height, width = (None, 64, 96) if args.tiny else ORBIT_SHAPE
    photo = work / "photo.png"
    bv.set_shape(frames or 49, height, width)
    bv.test_image().save(photo)
    for mode in args.modes.split(","):
        video = work / f"orbit_{mode}.mp4"
        steps = ["--steps", "2"] if args.tiny else []
        wall, log = dimensionx("orbit", photo, "--model", model, "--prompt", bv.PROMPT, "--mode", mode, *steps,
                               "--out", video, "--overwrite")
        sidecar = json.loads(video.with_suffix(".json").read_text())
        written = sidecar["video"]
        row = {"wall_seconds": round(wall, 1), "sidecar_seconds": sidecar["seconds"], "video": written,
               "mode_notes": sidecar["mode"], "log": log}
        if not args.tiny:
            row["shape_ok"] = [written.get("frames"), written.get("height"), written.get("width")] == list(ORBIT_SHAPE)
        report["orbit"][mode] = row
        print(mode, json.dumps({k: v for k, v in row.items() if k != "log"}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "tiny" if args.tiny else report["device"].lower().replace(" ", "_")
    path = args.out / f"orbit_cli_{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")  # now: the figures so far outlive a failing scene3d
    if args.scene3d:
        report["scene3d"] = scene3d(work, photo, model, written["frames"], written["width"], written["height"], args.tiny)
        print("scene3d", json.dumps({k: v for k, v in report["scene3d"].items() if k != "log"}), flush=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
