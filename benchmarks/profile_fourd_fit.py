"""Where a 4D fit iteration's time goes: the deformation field against the rest, at a fixed count.

The exact-budget fit of the shared orbit ran at 52 ms per iteration at 196k Gaussians (fourd.md),
twice the fast budget's rate at 153k. This runs the fit's own ``Fitter.train`` on a synthetic
grid (random frames: the content does not change the work per iteration when densification is
off) with N random Gaussians, at the fit's frame size, in four settings: canonical only (no
field), and the field with offsets absolute (``none``), relative to the key time (``key``) and
to their mean over the grid's times (``mean``, the default). Each runs ``--iterations`` steps
(fine stage from the first; densification off, so the count stays N); ms per iteration is read
between the second and last trace rows (the first tenth holds warm-up and gsplat's JIT build).
With ``--profile``, a ``torch.profiler`` table of the ``mean`` setting's heaviest CUDA ops.
Writes ``fourd_fit_profile_<device>.json``.

    python benchmarks/profile_fourd_fit.py --out OUT                                    # one H200: ~2 min
    python benchmarks/profile_fourd_fit.py --device cpu --gaussians 500 --size 48x32 --iterations 100 --out /tmp/p
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from recon_synthetic import arc_cameras, intrinsics  # noqa: E402

from dimensionx.fourd.config import FourDConfig  # noqa: E402
from dimensionx.fourd.fit import Fitter, GridViews, split_views  # noqa: E402
from dimensionx.splats.render import scene_scale  # noqa: E402
from dimensionx.fourd.pipeline import peak_gpu_gib  # noqa: E402
from dimensionx.splats.gaussians import rgb_to_sh  # noqa: E402

SETTINGS = {"canonical only": (False, "none"), "field, none": (True, "none"), "field, key": (True, "key"),
            "field, mean": (True, "mean")}


def synthetic(n: int, width: int, height: int, views: int, times: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    viewmats = torch.tensor(arc_cameras(views, 90.0), dtype=torch.float32)
    Ks = torch.tensor(intrinsics(width, height), dtype=torch.float32).expand(views, 3, 3).contiguous()
    images = torch.rand(times, views, height, width, 3, generator=g)
    train, holdout = split_views(views, 8)
    grid = GridViews(images.to(device), torch.linspace(0, 1, times).to(device), viewmats.to(device), Ks.to(device), train, holdout)
    splats = torch.nn.ParameterDict({
        "means": torch.rand(n, 3, generator=g) * 2 - 1, "quats": torch.randn(n, 4, generator=g),
        "scales": torch.full((n, 3), -4.0), "opacities": torch.full((n,), 0.0),
        "sh0": rgb_to_sh(torch.rand(n, 3, generator=g))[:, None], "shN": torch.zeros(n, 15, 3)})
    return splats, grid


def run(args, deform: bool, reference: str, device: torch.device, profile: bool = False) -> dict:
    splats, grid = synthetic(args.gaussians, *args.size, args.views, args.times, device)
    config = FourDConfig(iterations=args.iterations, coarse_iterations=0, densify=False, offset_reference=reference)
    fitter = Fitter(config, splats, grid, scene_scale(grid.viewmats.cpu().numpy()), device, deform=deform)
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fitter.train(seed=0, progress=False)
        return {"table": prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # this setting's peak, not the largest so far
    fitter.train(seed=0, progress=False)
    first, last = fitter.trace[1 if len(fitter.trace) > 2 else 0], fitter.trace[-1]
    return {"ms_per_iteration": round(1000 * (last["seconds"] - first["seconds"]) / (last["iteration"] - first["iteration"]), 2),
            "trace": fitter.trace, "peak_gpu_gib": peak_gpu_gib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(480, 320), help="WxH of the frames")
    parser.add_argument("--views", type=int, default=25)
    parser.add_argument("--times", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.iterations < 100:
        parser.error("--iterations must be at least 100: ms per iteration is read between trace rows, every 50 or more")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": name, "torch": torch.__version__, "gaussians": args.gaussians, "size": list(args.size),
              "views": args.views, "times": args.times, "iterations": args.iterations, "settings": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fourd_fit_profile_{name.lower().replace(' ', '_')}.json"
    for label, (deform, reference) in SETTINGS.items():
        result["settings"][label] = run(args, deform, reference, device)
        print(f"{label:>15}: {result['settings'][label]['ms_per_iteration']:7.2f} ms per iteration", flush=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
    if args.profile:
        table = run(args, True, "mean", device, profile=True)["table"]
        print(table)
        result["profile_mean"] = table
        path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
