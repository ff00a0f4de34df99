"""``--batch FILE``: one video per line ``image@@prompt[@@motion]`` (the original SAT format).

The pipeline is loaded once, at the first line that needs it; each line gets its own video and
sidecar in the ``--out`` folder. A bad line is reported and skipped, never fatal to the lines after
it. A line whose video and sidecar are already there, complete and made with the line's settings,
is kept, so a stopped batch resumes by running the same command again.

With ``--gpus N`` (torchrun, one GPU or CPU process each) line ``i`` (0-based, in file order) is
made by rank ``i % N``, whole: same name, same seed, so the same file as the one-process batch.
The ranks compare notes after every round of N lines; an unexpected failure on one (a crash, not a
bad line) stops them all, and rank 0 reports it in one line, as it reports the summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

from ..config import config_to_dict
from ..errors import DimensionXError
from ..videofiles import check_sidecar
from .generator import DirectorVideoGenerator, VideoConfig, check_switch, generate_video, load_generator
from .inputs import motion_label
from .modes import check_mode
from .parallel import disable_cfg_parallel, init_process, is_distributed

logger = logging.getLogger(__name__)
RUN_ONLY = ("overwrite", "out")  # settings a kept video may have been made with otherwise (out: the same file, named another way)


@dataclasses.dataclass
class BatchResult:
    line: int  # 1-based line number in the batch file
    out: Path | None  # the mp4, or None when the line failed
    error: str | None = None
    rank: int = 0  # the process (torchrun rank) that made or failed the line
    kept: bool = False  # the video was there from an earlier run


def parse_batch_line(text: str, line: int, base: Path, default_motion: str | None) -> tuple[str, str, str | None]:
    parts = [p.strip() for p in text.split("@@")]
    if len(parts) not in (2, 3) or not parts[0]:
        raise DimensionXError(f"line {line}: expected `image@@prompt` or `image@@prompt@@motion`, got {text!r}")
    image = Path(parts[0]).expanduser()
    if not image.is_absolute() and not image.exists() and (base / image).exists():
        image = base / image
    motion = parts[2] if len(parts) == 3 and parts[2] else default_motion
    return str(image), parts[1], motion


def read_batch(config: VideoConfig) -> list[tuple[int, str]]:
    """(1-based line number, text) of the batch file's video lines; refuses a missing or empty file and an mp4 --out."""
    batch = Path(config.batch)
    if not batch.is_file():
        raise DimensionXError(f"--batch {batch} does not exist: pass a text file of `image@@prompt[@@motion]` lines")
    out = Path(config.out or "outputs")
    if out.suffix == ".mp4" or (out.exists() and not out.is_dir()):
        raise DimensionXError(f"with --batch, --out is a folder for all the videos, not the file {config.out}")
    try:
        text = batch.read_text()
    except UnicodeDecodeError as exc:
        raise DimensionXError(f"--batch {batch} is not a text file ({exc.reason} at byte {exc.start}): pass a UTF-8 text "
                              "file of `image@@prompt[@@motion]` lines") from None
    lines = [(n, t.strip()) for n, t in enumerate(text.splitlines(), 1) if t.strip() and not t.lstrip().startswith("#")]
    if not lines:
        raise DimensionXError(f"--batch {batch} has no lines of the form `image@@prompt[@@motion]`")
    return lines


def generate_batch(config: VideoConfig) -> list[BatchResult]:
    """Makes this process's share of the batch; returns every line's result on the first process (its own elsewhere)."""
    lines = read_batch(config)
    check_mode(config.mode)
    check_switch(config)
    rank, world = _join(config.device)
    maker = _LineMaker(config, rank)
    mine = lines[rank::world]  # video line i (0-based) -> rank i % world
    results: list[BatchResult] = []
    for turn in range(math.ceil(len(lines) / world)):
        crash = None
        if turn < len(mine):
            number, text = mine[turn]
            try:
                results.append(maker.make(number, text))
            except Exception as exc:
                if world == 1:
                    raise
                crash = f"batch line {number} failed on rank {rank} of {world}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        crashes = [c for c in _everyone(crash, world) if c]
        if crashes:
            if rank == 0:
                raise DimensionXError(f"{crashes[0]}; every rank stopped, the finished videos are kept: "
                                      "fix that and run the same command again to make the rest")
            return results
    if world > 1:
        results = sorted((r for part in _everyone(results, world) for r in part), key=lambda r: r.line)
    if rank == 0:
        _summary(results, Path(config.out or "outputs"), world)
    return results


class _LineMaker:
    """Makes (or keeps) one line's video; loads the pipeline at the first video it has to make."""

    def __init__(self, config: VideoConfig, rank: int):
        self.config, self.rank = config, rank
        self.batch, self.out_dir = Path(config.batch), Path(config.out or "outputs")
        self.generator: DirectorVideoGenerator | None = None

    def make(self, number: int, text: str) -> BatchResult:
        try:
            image, prompt, motion = parse_batch_line(text, number, self.batch.parent, self.config.motion)
            out = self.out_dir / f"{number:04d}_{Path(image).stem}_{motion_label(motion)}.mp4"
            # gpus=1: each video is made by one process, whatever --gpus shares the lines over
            config = dataclasses.replace(self.config, image=image, prompt=prompt, motion=motion, batch=None, out=str(out), gpus=1)
            if not config.overwrite and _made_before(config, out):
                logger.info("batch line %d: kept %s, made before with these settings", number, out)
                return BatchResult(number, out, rank=self.rank, kept=True)
            return BatchResult(number, generate_video(config, self._generator()), rank=self.rank)
        except DimensionXError as exc:
            logger.error("batch line %d skipped%s: %s", number, f" (rank {self.rank})" if is_distributed() else "", exc)
            return BatchResult(number, None, str(exc), rank=self.rank)

    def _generator(self) -> DirectorVideoGenerator:
        if self.generator is None:
            self.generator = load_generator(self.config, reusable=True)
            if is_distributed():
                disable_cfg_parallel(self.generator.pipe.transformer)
        return self.generator


def _made_before(config: VideoConfig, out: Path) -> bool:
    """``out`` and its sidecar are there, whole (the sidecar's checksum is the mp4's) and made with ``config``."""
    sidecar = out.with_suffix(".json")
    if not (out.is_file() and sidecar.is_file()):
        return False
    try:
        recorded = json.loads(sidecar.read_text())
        check_sidecar(sidecar, recorded)
    except (ValueError, DimensionXError):
        return False
    wanted = config_to_dict(config)
    settings = recorded.get("config", {}) if isinstance(recorded, dict) else {}
    return all(settings.get(k) == v for k, v in wanted.items() if k not in RUN_ONLY)


def _join(device: str) -> tuple[int, int]:
    """(rank, world) of this process: torchrun's process group with ``--gpus N``, else (0, 1)."""
    if not is_distributed():
        return 0, 1
    import torch.distributed as dist

    init_process(device)
    return dist.get_rank(), dist.get_world_size()


def _everyone(value, world: int) -> list:
    """``value`` of every process, in rank order (a collective: every process calls it at the same point)."""
    if world == 1:
        return [value]
    import torch.distributed as dist

    values = [None] * world
    dist.all_gather_object(values, value)
    return values


def _summary(results: list[BatchResult], out_dir: Path, world: int) -> None:
    failed = [r for r in results if r.error]
    kept = sum(r.kept for r in results)
    where = (lambda r: f"{r.line} (rank {r.rank})") if world > 1 else (lambda r: str(r.line))
    logger.info("batch: %d of %d videos written to %s%s%s%s", len(results) - len(failed), len(results), out_dir,
                f" ({kept} kept from an earlier run)" if kept else "", f" by {world} ranks" if world > 1 else "",
                f"; failed lines: {', '.join(map(where, failed))}" if failed else "")
