"""Mutation testing of a chosen module list: does a plausible one-token bug turn a test red?

For each module the harness lists every mutation site (a comparison flipped, an integer constant
moved by one, ``+`` and ``-`` or ``*`` and ``/`` swapped, a unary minus dropped, a ``raise`` made a
no-op, an ``if`` guard made always false, ``and`` / ``or`` swapped, ``True`` / ``False`` swapped, a
keyword default changed), samples up to ``--per-module`` of them with a fixed seed, and for each
writes the mutated module over the source file, runs that module's chosen fast test subset with a
per-mutant timeout and restores the file, always: also on Ctrl-C, SIGTERM or a crash of the
harness (a backup beside the file is restored on the next start).

A mutant is *killed* when the tests fail, *survived* when they pass, *timeout* when they run past
the limit. Results are merged per module into ``benchmarks/results/mutation.json``; survivors
list line, kind and the mutated source line, so a reader can judge whether they change behaviour.

It edits files in place: run it in a worktree of your own, with the tree first on the path::

    PYTHONPATH=$PWD/src python benchmarks/mutate.py outputs.py fourd/denoise.py
    PYTHONPATH=$PWD/src python benchmarks/mutate.py outputs.py --only 12,40   # re-run chosen mutants
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "dimensionx"
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"

# module (under src/dimensionx) -> the fast pytest selection that guards it; the fastest file first (-x stops at a kill)
SUBSETS: dict[str, list[str]] = {
    "directors/lora.py": ["tests/test_lora_fusion.py", "tests/test_lora_mutants.py"],
    "video/noise.py": ["tests/test_noise_mutants.py", "tests/test_noise_prefetch.py"],
    "video/parallel.py": ["tests/test_parallel_mutants.py",
                          "tests/test_cfg_parallel.py::test_each_process_runs_one_branch_and_gathers_both"],
    "fourd/denoise.py": ["tests/test_fourd_denoise.py", "tests/test_fourd_denoise_mutants.py"],
    "fourd/deform.py": ["tests/test_fourd_deform.py", "tests/test_fourd_deform_mutants.py"],
    "fourd/fit.py": ["tests/test_fourd_fit_mutants.py", "tests/test_fourd_fit.py"],
    "splats/render.py": ["tests/test_recon_render.py", "tests/test_render_reference.py"],
    "splats/densify.py": ["tests/test_recon_train.py::test_sync_free_strategy_gathers_gsplats_statistics",
                          "tests/test_recon_train.py::test_capped_growth_stops_at_the_cap_and_grows_the_largest_gradients",
                          "tests/test_recon_train.py::test_capped_growth_adds_nothing_at_the_cap",
                          "tests/test_densify_mutants.py"],
    "recon/sfm.py": ["tests/test_sfm_mutants.py",
                     "tests/test_recon_sfm.py::test_sfm_recovers_known_cameras_up_to_a_similarity",
                     "tests/test_recon_sfm.py::test_loop_pairs_join_the_end_of_an_orbit_to_its_start",
                     "tests/test_recon_sfm.py::test_noise_frames_fail_with_the_clear_sfm_error"],
    "recon/pathprior.py": ["tests/test_recon_jumps.py", "tests/test_pathprior_mutants.py"],
    "models/sat.py": ["tests/test_sat_mutants.py", "tests/test_sat_convert.py"],
    "train/trainer.py": ["tests/test_train.py::test_resume_from_a_checkpoint_ends_with_the_same_lora",
                         "tests/test_train.py::test_existing_run_folder_needs_resume_or_overwrite",
                         "tests/test_train.py::test_nan_loss_stops_and_keeps_the_last_good_checkpoint",
                         "tests/test_train_resume.py", "tests/test_train_checks.py", "tests/test_train_resume_log.py"],
    "outputs.py": ["tests/test_outputs_mutants.py", "tests/test_overwrite.py", "tests/test_overwrite_rules.py", "tests/test_nothing_lost.py",
                   "tests/test_media_edges.py"],
    "atomic.py": ["tests/test_nothing_lost.py", "tests/test_media_edges.py"],
    "videofiles.py": ["tests/test_media.py", "tests/test_media_edges.py"],
    "imagefiles.py": ["tests/test_reliability_images.py", "tests/test_media_edges.py"],
    "app/uploads.py": ["tests/test_app.py::test_uploads_are_checked_before_any_model_runs", "tests/test_app_checks.py"],
    "app/sessions.py": ["tests/test_app.py::test_session_folders_expire_and_stay_closed", "tests/test_app_checks.py"],
}

COMPARE_FLIP = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
COMPARE_EDGE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}  # off-by-one boundaries
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
              ast.Pow: ast.Mult}


@dataclass
class Site:
    index: int  # position in the walk of the module's tree (stable for one source text)
    kind: str
    line: int

    def describe(self, lines: list[str]) -> dict:
        return {"id": self.index, "kind": self.kind, "line": self.line, "source": lines[self.line - 1].strip()}


def is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def walk(tree: ast.AST):
    """Nodes in a fixed order, skipping annotations and docstrings (mutating those changes nothing)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        children = []
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST) and not is_docstring(child):
                    children.append(child)
        stack.extend(reversed(children))


def mutations(node: ast.AST) -> list[str]:
    """The mutation kinds that apply to ``node``."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op = type(node.ops[0])
        return ["compare_flip"] + (["compare_edge"] if op in COMPARE_EDGE else [])
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAP:
        return ["binop_swap"]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        return ["sign_drop" if isinstance(node.op, ast.USub) else "not_drop"]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return ["int_plus_one", "int_minus_one"]
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        return ["bool_flip"]
    if isinstance(node, ast.BoolOp):
        return ["boolop_swap"]
    if isinstance(node, ast.Raise):
        return ["raise_drop"]
    if isinstance(node, ast.If):
        return ["if_false"]
    if isinstance(node, ast.arguments):
        return [f"default_{i}" for i, d in enumerate(node.defaults + node.kw_defaults)
                if isinstance(d, ast.Constant) and type(d.value) in (int, float, bool)]
    return []


def sites(source: str) -> list[Site]:
    found = []
    for node in walk(ast.parse(source)):
        for kind in mutations(node):
            found.append(Site(len(found), kind, getattr(node, "lineno", 0) or first_line(node)))
    return found


def first_line(node: ast.AST) -> int:
    return min((n.lineno for n in ast.walk(node) if hasattr(n, "lineno")), default=1)


def changed_constant(value):
    if type(value) is bool:
        return not value
    if type(value) is int:
        return value + 1
    return 0.0 if value else 1.0


def apply(source: str, target: Site) -> str:
    """``source`` with the mutation ``target`` applied (the module re-printed by ``ast.unparse``)."""
    tree = ast.parse(source)
    count = 0
    for node in walk(tree):
        kinds = mutations(node)
        if target.index >= count + len(kinds):
            count += len(kinds)
            continue
        kind = kinds[target.index - count]
        assert kind == target.kind, (kind, target)
        mutate(node, kind, tree)
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    raise IndexError(target)


def mutate(node: ast.AST, kind: str, tree: ast.AST) -> None:
    if kind == "compare_flip":
        node.ops[0] = COMPARE_FLIP[type(node.ops[0])]()
    elif kind == "compare_edge":
        node.ops[0] = COMPARE_EDGE[type(node.ops[0])]()
    elif kind == "binop_swap":
        node.op = BINOP_SWAP[type(node.op)]()
    elif kind in ("sign_drop", "not_drop"):
        replace(tree, node, node.operand)
    elif kind == "int_plus_one":
        node.value += 1
    elif kind == "int_minus_one":
        node.value -= 1
    elif kind == "bool_flip":
        node.value = not node.value
    elif kind == "boolop_swap":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "raise_drop":
        replace(tree, node, ast.Pass())
    elif kind == "if_false":
        node.test = ast.Constant(False)
    elif kind.startswith("default_"):
        default = (node.defaults + node.kw_defaults)[int(kind.split("_")[1])]
        default.value = changed_constant(default.value)
    else:
        raise ValueError(kind)


def replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                return
    raise LookupError(old)


class Restorer:
    """Holds a module's original text; puts it back on exit, Ctrl-C, SIGTERM, or on the next start."""

    def __init__(self, path: Path):
        self.path = path
        self.backup = path.with_name(path.name + ".mutate-backup")
        if self.backup.exists():  # a harness killed outright (SIGKILL) left its backup: restore it first
            self.path.write_bytes(self.backup.read_bytes())
            self.backup.unlink()
        self.original = path.read_bytes()

    def __enter__(self):
        self.backup.write_bytes(self.original)
        return self

    def write(self, text: str) -> None:
        self.path.write_text(text)
        for cached in (self.path.parent / "__pycache__").glob(f"{self.path.stem}.*.pyc"):
            cached.unlink()

    def __exit__(self, *exc):
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # a second Ctrl-C waits
        try:
            self.path.write_bytes(self.original)
            for cached in (self.path.parent / "__pycache__").glob(f"{self.path.stem}.*.pyc"):
                cached.unlink()
            self.backup.unlink()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return False


def existing(selection: list[str], base: str | None) -> list[str]:
    """``selection`` without the test files that do not exist (here, or at commit ``base`` if given)."""
    def present(path: str) -> bool:
        if base is None:
            return (ROOT / path).exists()
        return subprocess.run(["git", "cat-file", "-e", f"{base}:{path}"], cwd=ROOT, capture_output=True).returncode == 0
    return [a for a in selection if not a.startswith("tests/") or present(a.split("::")[0])]


def run_tests(selection: list[str], timeout: float) -> tuple[str, float]:
    """("passed" | "failed" | "timeout", seconds) of the selection in a child process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *selection]
    start = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return "timeout", time.monotonic() - start
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return ("passed" if code == 0 else "failed"), time.monotonic() - start


def run_module(module: str, per_module: int, seed: int, only: list[int] | None, selection: list[str]) -> dict:
    path = PACKAGE / module
    with Restorer(path) as restorer:
        source = restorer.original.decode()
        lines = source.splitlines()
        every = sites(source)
        chosen = ([every[i] for i in only] if only is not None
                  else sorted(random.Random(f"{seed}:{module}").sample(every, min(per_module, len(every))),
                              key=lambda s: s.index))
        restorer.write(ast.unparse(ast.parse(source)) + "\n")  # the re-printed but unmutated module must pass
        verdict, baseline = run_tests(selection, timeout=900)
        if verdict != "passed":
            raise SystemExit(f"{module}: the tests fail on the unmutated (re-printed) module; fix them first: {selection}")
        limit = 3 * baseline + 20
        outcome = {"killed": [], "survived": [], "timeout": []}
        for site in chosen:
            restorer.write(apply(source, site))
            verdict, seconds = run_tests(selection, limit)
            key = {"failed": "killed", "passed": "survived", "timeout": "timeout"}[verdict]
            outcome[key].append(site.describe(lines))
            print(f"{module} #{site.index} {site.kind} line {site.line}: {key} ({seconds:.1f} s)", flush=True)
    killed = len(outcome["killed"]) + len(outcome["timeout"])
    return {"tests": selection, "seed": seed, "only": only, "sites": len(every), "sampled": len(chosen),
            "killed": len(outcome["killed"]), "survived": len(outcome["survived"]),
            "timeouts": len(outcome["timeout"]), "kill_rate": round(killed / max(1, len(chosen)), 3),
            "baseline_s": round(baseline, 1), "survivors": outcome["survived"], "timed_out": outcome["timeout"],
            "killed_mutants": outcome["killed"]}


def merged(earlier: dict, later: dict) -> dict:
    """Two ``--only`` runs of one module as one: each mutant's latest verdict."""
    verdicts = {}
    for report in (earlier, later):
        for key, mutants in (("killed", report.get("killed_mutants", [])), ("survived", report["survivors"]),
                             ("timeout", report["timed_out"])):
            verdicts.update({m["id"]: (key, m) for m in mutants})
    by_key = {key: [m for k, m in verdicts.values() if k == key] for key in ("killed", "survived", "timeout")}
    return {**later, "only": sorted(verdicts), "sampled": len(verdicts), "killed": len(by_key["killed"]),
            "survived": len(by_key["survived"]), "timeouts": len(by_key["timeout"]),
            "kill_rate": round(1 - len(by_key["survived"]) / max(1, len(verdicts)), 3),
            "survivors": by_key["survived"], "timed_out": by_key["timeout"], "killed_mutants": by_key["killed"]}


def table(results: dict) -> str:
    """Markdown rows: module, before (killed / sampled), after. An "after" that re-ran only the
    survivors of "before" (``--only``) counts the mutants "before" had killed as still killed."""
    rows = ["| module | before: killed / sampled | after: killed / sampled | survivors after |", "|---|---|---|---|"]
    for module, runs in results.items():
        before, after = runs.get("before"), runs.get("after")
        if before is None:
            continue
        killed = before["sampled"] - before["survived"]
        cells = [f"`{module}`", f"{killed} / {before['sampled']} ({killed / before['sampled']:.0%})", "not run", ""]
        if after is not None:
            if after.get("only"):
                total, killed = before["sampled"], killed + after["sampled"] - after["survived"]
            else:
                total, killed = after["sampled"], after["sampled"] - after["survived"]
            cells[2] = f"{killed} / {total} ({killed / total:.0%})"
            cells[3] = ", ".join(f"{s['kind']} line {s['line']}" for s in after["survivors"])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(SUBSETS), help="paths under src/dimensionx (default: all)")
    parser.add_argument("--per-module", type=int, default=25, help="mutants sampled per module (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--only", help="comma-separated mutant ids to run instead of a sample (one module)")
    parser.add_argument("--label", default="before", help="key the results are stored under (default before)")
    parser.add_argument("--tests-at", help="use only the test files that existed at this commit (a 'before' run)")
    parser.add_argument("--list", action="store_true", help="print every mutation site and exit")
    parser.add_argument("--table", action="store_true", help="print the results as a markdown table and exit")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through Restorer like Ctrl-C
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return
    if args.list:
        for module in args.modules:
            source = (PACKAGE / module).read_text()
            for site in sites(source):
                print(module, json.dumps(site.describe(source.splitlines())))
        return
    only = [int(i) for i in args.only.split(",")] if args.only else None
    for module in args.modules:
        report = run_module(module, args.per_module, args.seed, only, existing(SUBSETS[module], args.tests_at))
        store(module, args.label, report)
        print(f"{module}: {report['kill_rate']:.0%} killed of {report['sampled']} ({report['survived']} survived)")


def store(module: str, label: str, report: dict) -> None:
    """Merges ``report`` into the results file, read afresh under a lock: harnesses of other modules may write too."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "dimensionx-mutation.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        earlier = results.get(module, {}).get(label)
        if report.get("only") is not None and earlier is not None and earlier.get("only"):
            report = merged(earlier, report)
        results.setdefault(module, {})[label] = report
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
