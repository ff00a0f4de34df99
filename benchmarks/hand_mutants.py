"""Hand-written mutants: plausible bugs of meaning that ``mutate.py``'s one-token changes cannot write.

``mutate.py`` flips operators and constants; a reviewer also breaks conventions: a world-to-camera
matrix where a camera-to-world one belongs, the image width where the height belongs, an activation
dropped (a logit written as an opacity), a slice that loses its stride, a boundary moved by one. Each
mutant here is one such change, written as an exact text replacement (the text must occur once in its
module). The harness applies one at a time, runs the module's fast test selection (``SELECTIONS`` below,
else ``mutate.SUBSETS``), records *killed* / *survived* / *timeout* and always restores the file
(``mutate.Restorer``: also on Ctrl-C, SIGTERM, or the next start after a SIGKILL)::

    PYTHONPATH=$PWD/src python benchmarks/hand_mutants.py                      # every mutant
    PYTHONPATH=$PWD/src python benchmarks/hand_mutants.py splatv-scale-log      # chosen ones
    PYTHONPATH=$PWD/src python benchmarks/hand_mutants.py --tests-at 2bde9b3 --label before
    PYTHONPATH=$PWD/src python benchmarks/hand_mutants.py splatv-scale-log --tests tests/test_export_mutants.py
    PYTHONPATH=$PWD/src python benchmarks/hand_mutants.py --table

Results go to ``benchmarks/results/hand_mutants.json`` (per mutant and label: verdict, seconds).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import dataclass

from mutate import PACKAGE, ROOT, SUBSETS, Restorer, existing, run_tests

RESULTS = ROOT / "benchmarks" / "results" / "hand_mutants.json"

# the fast tests of each mutated behaviour's room (files of the module, the CLI tests left out: a CPU shared by
# several engineers); the mutant tests first (-x stops at a kill)
SELECTIONS: dict[str, list[str]] = {
    "camerafiles.py": ["tests/test_camera_files_mutants.py", "tests/test_known_cameras.py"],
    "recon/cameras.py": ["tests/test_camera_files_mutants.py", "tests/test_recon_export.py", "tests/test_known_cameras.py"],
    "recon/frames.py": ["tests/test_camera_files_mutants.py", "tests/test_recon_frames.py"],
    "directors/camera_paths.py": ["tests/test_camera_files_mutants.py", "tests/test_known_cameras.py",
                                  "tests/test_make_dataset.py"],
    "splats/export.py": ["tests/test_export_mutants.py", "tests/test_recon_export.py", "tests/test_fourd_export.py"],
    "fourd/export.py": ["tests/test_export_mutants.py", "tests/test_fourd_export.py"],
    "fourd/shard.py": ["tests/test_grid_mutants.py",
                       "tests/test_fourd_cli.py::test_grid_over_two_processes_equals_the_one_process_grid"],
    "fourd/grid.py": ["tests/test_grid_mutants.py", "tests/test_fourd_cli.py::test_pick_times_and_key_frame",
                      "tests/test_fourd_cli.py::test_same_seed_same_grid", "tests/test_fourd_cli.py::test_scene4d_writes_every_output"],
    "train/data.py": ["tests/test_train_data_mutants.py", "tests/test_train_data.py"],
    "train/batches.py": ["tests/test_train_data_mutants.py", "tests/test_train_resume.py"],
    "train/make_dataset.py": ["tests/test_train_data_mutants.py", "tests/test_make_dataset.py"],
    "train/trainer.py": ["tests/test_train_resume_log.py", "tests/test_train_resume.py",
                         "tests/test_train.py::test_resume_from_a_checkpoint_ends_with_the_same_lora"],
    "directors/switch.py": ["tests/test_director_switch.py"],
    "app/callbacks.py": ["tests/test_app.py::test_form_mixes_two_directors_into_one_motion"],
}


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str  # under src/dimensionx
    old: str  # exact text, once in the module
    new: str
    what: str  # the bug in words


MUTANTS = [
    Mutant("fov-focal-full-width", "camerafiles.py",
           "return 0.5 * width / np.tan(0.5 * fov_x)", "return width / np.tan(0.5 * fov_x)",
           "a field of view turned into a focal length from the full width, not the half (every camera file's rule)"),
    Mutant("principal-point-cy-from-width", "recon/cameras.py",
           'float(fields.get("cy", h / 2))', 'float(fields.get("cy", w / 2))',
           "a transforms.json without cy gets its principal point's y from the width"),
    Mutant("transforms-opengl-flip-on-world", "recon/cameras.py",
           "c2w = np.linalg.inv(viewmat) @ OPENGL_FROM_OPENCV", "c2w = OPENGL_FROM_OPENCV @ np.linalg.inv(viewmat)",
           "the OpenCV -> OpenGL axis flip applied to the world axes instead of the camera's"),
    Mutant("smooth-path-rotations-not-inverted", "recon/cameras.py",
           "Rotation.from_matrix(np.transpose(cameras.viewmats[:, :3, :3], (0, 2, 1)))",
           "Rotation.from_matrix(cameras.viewmats[:, :3, :3])",
           "the orbit path slerps world-to-camera rotations as if they were camera-to-world"),
    Mutant("shot-index-one-past-the-end", "recon/frames.py",
           "not 0 <= shot < len(shots)", "not 0 <= shot <= len(shots)",
           "--shot N with N shots (one past the last) passes the check"),
    Mutant("shot-of-two-frames-accepted", "recon/frames.py",
           "if len(shots[chosen]) < MIN_FRAMES:", "if len(shots[chosen]) < MIN_FRAMES - 1:",
           "a shot of two frames is accepted for reconstruction"),
    Mutant("sampling-past-the-last-frame", "recon/frames.py",
           "np.linspace(shot.start, shot.stop - 1, n)", "np.linspace(shot.start, shot.stop, n)",
           "uniform sampling spreads frames up to the frame after the shot"),
    Mutant("known-cameras-fov-in-degrees", "directors/camera_paths.py",
           "focal_from_fov(width, np.deg2rad(FIELD_OF_VIEW_X))", "focal_from_fov(width, FIELD_OF_VIEW_X)",
           "a tiny video's known cameras get their focal length from the field of view in degrees taken as radians"),
    Mutant("known-cameras-cy-from-width", "directors/camera_paths.py",
           '"cy": height / 2', '"cy": width / 2',
           "a tiny video's known cameras put the principal point's y at half the width"),
    Mutant("splat-colour-raw-sh", "splats/export.py",
           'torch.cat([sh_to_rgb(splats["sh0"][:, 0]).float(), alpha[:, None]], dim=1)',
           'torch.cat([splats["sh0"][:, 0].float(), alpha[:, None]], dim=1)',
           ".splat colours written as raw degree-0 SH coefficients (the SH -> RGB step dropped)"),
    Mutant("splat-quaternion-xyzw", "splats/export.py",
           'record["rotation"] = (quats[order] * 128 + 128)', 'record["rotation"] = (quats[order][:, [1, 2, 3, 0]] * 128 + 128)',
           ".splat quaternions written x, y, z, w instead of w, x, y, z"),
    Mutant("ply-export-tracks-gradients", "splats/export.py",
           "@torch.no_grad()\ndef write_ply", "def write_ply",
           "the PLY writer runs with autograd on (its no_grad dropped)"),
    Mutant("splatv-camera-world-to-camera", "fourd/export.py",
           '"rotation": c2w[k, :3, :3].tolist()', '"rotation": viewmats[k, :3, :3].tolist()',
           ".splatv cameras carry the world-to-camera rotation where the viewer reads camera-to-world"),
    Mutant("splatv-scale-log", "fourd/export.py",
           '"scale": np.exp(log_scales.mean(axis=0))', '"scale": log_scales.mean(axis=0)',
           ".splatv scales written as logs (the exp dropped)"),
    Mutant("splatv-opacity-logit", "fourd/export.py",
           'torch.sigmoid(splats["opacities"])[:, None]], dim=1)', 'splats["opacities"][:, None]], dim=1)',
           ".splatv alpha written from the opacity logit (the sigmoid dropped)"),
    Mutant("shard-slice-loses-stride", "fourd/shard.py",
           "groups[self.rank::self.world]", "groups[self.rank:self.world]",
           "--gpus N: a process takes a run of groups from its rank instead of every N-th one"),
    Mutant("shard-gather-keeps-own", "fourd/shard.py",
           "return {k: v for part in parts for k, v in part.items()}", "return videos",
           "--gpus N: the gathered grid holds only this process's videos"),
    Mutant("key-row-least-motion", "fourd/grid.py",
           "key = int(np.argmax(motion_scores(temporal[times])))", "key = int(np.argmin(motion_scores(temporal[times])))",
           "the key row is the one with the least motion"),
    Mutant("time-values-over-frame-count", "fourd/grid.py",
           "t / (time_frames - 1)", "t / time_frames",
           "grid times divided by the frame count: the last row is not at time 1"),
    Mutant("csv-caption-column-by-position", "train/data.py",
           'caption_col = header.index("caption") if "caption" in header else 1', "caption_col = 1",
           "a CSV whose header puts caption before video pairs each video with the wrong column"),
    Mutant("shortest-clip-refused", "train/data.py",
           "if frames - 2 * skip < MIN_USABLE_FRAMES:", "if frames - 2 * skip <= MIN_USABLE_FRAMES:",
           "a clip with exactly the minimum usable frames is refused"),
    Mutant("same-order-every-epoch", "train/batches.py",
           "manual_seed(self.seed + self.epoch)", "manual_seed(self.seed)",
           "the data order is the same permutation every epoch"),
    Mutant("start-cameras-past-the-last", "train/make_dataset.py",
           "np.linspace(0, len(c2w) - 1, clips)", "np.linspace(0, len(c2w), clips)",
           "start cameras spread up to one past the last recon camera"),
    Mutant("dataset-focal-from-the-height", "train/make_dataset.py",
           "focal = focal_x(fields, width)", 'focal = focal_x(fields, int(fields["h"]))',
           "make-dataset turns camera_angle_x into a focal length over the height, not the width"),
    Mutant("switch-one-step-late", "directors/switch.py",
           "if phase.start == step + 1:", "if phase.start == step:",
           "Switch-Once: the next phase's directors start one step after their switch step"),
    Mutant("mix-weights-not-complementary", "app/callbacks.py",
           "{self.mix_with}:{1 - self.mix_weight:g}", "{self.mix_with}:{self.mix_weight:g}",
           "the app's mix gives the second director the first one's weight, not the rest"),
    Mutant("lora-scale-zero-means-default", "directors/lora.py",
           "weight * (scale if scale is not None else 1.0 / lora.rank)", "weight * (scale or 1.0 / lora.rank)",
           "--lora-scale 0 (the director switched off) fuses at the default 1/rank"),
    Mutant("camera-centre-rotation-not-transposed", "splats/render.py",
           "return -(viewmats[..., None, :3, 3] @ viewmats[..., :3, :3])[..., 0, :]",
           "return -(viewmats[..., :3, :3] @ viewmats[..., :3, 3:])[..., 0]",
           "camera centres computed as -R t instead of -R^T t"),
    Mutant("sh-view-direction-reversed", "splats/render.py",
           "dirs = means[None] - camera_centers(viewmats)[:, None]", "dirs = camera_centers(viewmats)[:, None] - means[None]",
           "view-dependent colour evaluated for the direction from the Gaussian to the camera"),
    Mutant("sh-degree-1-sign", "splats/render.py",
           "basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]", "basis += [SH_C1 * y, SH_C1 * z, -SH_C1 * x]",
           "the CPU renderer's first degree-1 harmonic loses its sign (y)"),
    Mutant("resume-log-drops-checkpoint-step", "train/trainer.py",
           '(json.loads(line).get("step") or 0) <= step]', '(json.loads(line).get("step") or 0) < step]',
           "a resumed run's log loses the line of the checkpoint's own step"),
    Mutant("resume-rng-not-restored", "train/trainer.py",
           "rng.set_state(torch.load(rng_file))", "torch.load(rng_file)",
           "a resumed run reads the saved RNG state but does not restore it"),
]


def selection(module: str, tests_at: str | None) -> list[str]:
    return existing(SELECTIONS.get(module) or SUBSETS[module], tests_at)


def mutated(mutant: Mutant, source: str) -> str:
    if source.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: {mutant.old!r} occurs {source.count(mutant.old)} times in {mutant.module}, "
                         "not once: update the mutant to the module's text")
    return source.replace(mutant.old, mutant.new)


def run(mutants: list[Mutant], tests_at: str | None, label: str, only_tests: list[str] | None = None) -> None:
    """Runs each mutant and stores its verdict at once; each module's selection (or ``only_tests``) must pass
    unmutated first."""
    baselines = {}
    for mutant in mutants:
        tests = only_tests or selection(mutant.module, tests_at)
        path = PACKAGE / mutant.module
        with Restorer(path) as restorer:
            source = restorer.original.decode()
            text = mutated(mutant, source)
            if mutant.module not in baselines:
                verdict, baselines[mutant.module] = run_tests(tests, timeout=900)
                if verdict != "passed":
                    raise SystemExit(f"{mutant.module}: the tests fail on the unmutated module; fix them first: {tests}")
            restorer.write(text)
            verdict, seconds = run_tests(tests, timeout=3 * baselines[mutant.module] + 20)
        verdict = {"failed": "killed", "passed": "survived", "timeout": "timeout"}[verdict]
        store(mutant.name, label, {"module": mutant.module, "verdict": verdict, "seconds": round(seconds, 1), "tests": tests})
        print(f"{mutant.module} {mutant.name}: {verdict} ({seconds:.1f} s)", flush=True)


def store(name: str, label: str, result: dict) -> None:
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored.setdefault(name, {})[label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")


def table(results: dict) -> str:
    """Markdown rows: module, mutation, verdict before -> after. Tests were only added, so a mutant killed
    "before" and not re-run counts as killed after."""
    rows = ["| module | mutation | before -> after |", "|---|---|---|"]
    for mutant in MUTANTS:
        runs = results.get(mutant.name, {})
        before = runs["before"]["verdict"] if "before" in runs else "not run"
        after = runs["after"]["verdict"] if "after" in runs else before if before == "killed" else "not run"
        rows.append(f"| `{mutant.module}` | {mutant.what} | {before} -> {after} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--label", default="after", help="key the results are stored under (default after)")
    parser.add_argument("--tests-at", help="use only the test files that existed at this commit (a 'before' run)")
    parser.add_argument("--tests", nargs="+", help="run these tests instead of the module's selection (e.g. the new test alone)")
    parser.add_argument("--table", action="store_true", help="print the results as a markdown table and exit")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through Restorer like Ctrl-C
    if args.table:
        print(table(json.loads(RESULTS.read_text()) if RESULTS.exists() else {}))
        return
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"unknown mutants: {', '.join(sorted(unknown))}")
    run([m for m in MUTANTS if not args.names or m.name in args.names], args.tests_at, args.label, args.tests)


if __name__ == "__main__":
    main()
