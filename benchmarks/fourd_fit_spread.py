"""Held-out PSNR of the static 4D fit with two fields that compute the same function, over seeds (CPU or CUDA).

The shared orbit held static (as ``bench_fourd.py --part fit``: its first 25 views, every 3rd
frame, at 9 identical times; cameras by recon's SfM) is fitted on the CPU (whose reference
rasterizer is deterministic) or on CUDA (gsplat), once per seed with the deformation field of this tree and once with
the field of ``--field-commit`` (read with ``git show``), which computes the same function by other
float32 operations. SfM runs once per seed and both fits start from its cameras and points
(pycolmap's threads make two SfM runs differ slightly). Held-out PSNR differences between the two
fields at one seed are what rounding, amplified by densification, does; between seeds, what the
seed and SfM do. Small settings keep a run near 10 minutes on two cores: ``max_size`` 160, ``--iterations`` 1200, ``max_gaussians`` 20000.
Writes ``fourd_fit_spread_<fit device>.json`` after every fit. On one H200 four processes, one seed
each, ran 8 fits at the fast budget in about 500 s (one at a time, about 620 s).

    python benchmarks/fourd_fit_spread.py --field-commit e1c75a7 --seeds 42,43,44 --out benchmarks/results
    python benchmarks/fourd_fit_spread.py --fit-device cuda --max-size 480 --max-gaussians 300000 --iterations 3000 --seeds 1,2,3,4 --out OUT
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED_ORBIT = REPO / ".." / "shared" / "data" / "videos" / "orbit360_landscape_145f_480x320.mp4"

from dimensionx.config import load_config  # noqa: E402
from dimensionx.fourd.config import FourDConfig  # noqa: E402
import dimensionx.fourd.fit as fit_module  # noqa: E402
from dimensionx.fourd.scene import fit_scene  # noqa: E402
import dimensionx.recon.sfm as sfm_module  # noqa: E402
from dimensionx.videofiles import read_frames

from bench_fourd import static_grid  # noqa: E402  (benchmarks/, the script's own folder)


def field_at(commit: str, folder: Path) -> type:
    """``HexPlaneField`` of ``fourd/deform.py`` as it was at ``commit`` (or of a saved copy: a path to a .py file)."""
    path = Path(commit)
    if not path.is_file():  # a commit: where the tree has no .git (a GPU machine's copy), save the file first
        path = folder / f"deform_{commit}.py"
        path.write_text(subprocess.run(["git", "show", f"{commit}:src/dimensionx/fourd/deform.py"], cwd=REPO,
                                       check=True, capture_output=True, text=True).stdout)
    spec = importlib.util.spec_from_file_location(f"deform_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HexPlaneField


def sfm_once_per_seed() -> None:
    """Makes ``run_sfm`` (which ``fourd/scene.py`` imports when it runs) return its first result for each seed again."""
    run_sfm, results = sfm_module.run_sfm, {}

    def cached(*args, **kwargs):
        seed = args[3].seed
        if seed not in results:
            results[seed] = run_sfm(*args, **kwargs)
        return copy.deepcopy(results[seed])  # a fit may change what it was given

    sfm_module.run_sfm = cached


def fit_once(frames: np.ndarray, field: type, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    fit_module.HexPlaneField = field  # the class Fitter builds
    config = load_config(FourDConfig, REPO / "configs" / "fourd.yaml",
                         {"mode": "fast", "iterations": args.iterations, "max_size": args.max_size, "seed": seed,
                          "fit_device": args.fit_device, "max_gaussians": args.max_gaussians})
    folder.mkdir(parents=True)
    fit_scene(static_grid(frames, config), folder, folder, config)
    fit = json.loads((folder / "fit.json").read_text())
    return {"seed": seed, "psnr": fit["psnr"], "ssim": fit["ssim"], "n_gaussians": fit["n_gaussians"],
            "psnr_per_holdout_view": fit["psnr_per_holdout_view"], "final_loss": fit["final_loss"], "cameras": fit["cameras"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field-commit", default="e1c75a7", help="the commit whose fourd/deform.py to compare with, or that file saved (git show COMMIT:src/dimensionx/fourd/deform.py)")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--iterations", type=int, default=1200)
    parser.add_argument("--max-size", type=int, default=160, help="frames' longer side for the fit (480 on a GPU: the default)")
    parser.add_argument("--max-gaussians", type=int, default=20000, help="300000 on a GPU: the default")
    parser.add_argument("--fit-device", default="cpu", help="cpu (deterministic reference rasterizer) or cuda (gsplat)")
    parser.add_argument("--orbit", type=Path, default=SHARED_ORBIT, help="a video or a folder of its frames")
    parser.add_argument("--repeat", type=int, default=1, help="fits per field and seed, from the same SfM (on CUDA gsplat's atomic sums make repeats differ)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    frames, _ = read_frames(args.orbit)
    current = fit_module.HexPlaneField
    sfm_once_per_seed()
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fourd_fit_spread_{args.fit_device}.json"
    with tempfile.TemporaryDirectory(prefix="fit-spread-") as tmp:
        fields = {"this tree": current, Path(args.field_commit).stem: field_at(args.field_commit, Path(tmp))}
        for seed in (int(s) for s in args.seeds.split(",")):
            for repeat in range(args.repeat):
                for name, field in fields.items():
                    folder = Path(tmp) / f"{name}_{seed}_{repeat}".replace(" ", "_")
                    rows.append({"field": name, "repeat": repeat, **fit_once(frames, field, seed, args, folder)})
                    print(json.dumps(rows[-1]), flush=True)
                    shutil.rmtree(folder, ignore_errors=True)
                    # written after every fit: a run cut short keeps what it finished
                    path.write_text(json.dumps({"how": " ".join(sys.argv), "iterations": args.iterations, "runs": rows}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
