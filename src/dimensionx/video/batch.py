"""``--batch FILE``: one video per line ``image@@prompt[@@motion]`` (the original SAT format).

The pipeline is loaded once; each line gets its own video and sidecar in the ``--out``
folder. A bad line is reported and skipped, never fatal to the lines after it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..errors import DimensionXError
from ..models import resolve_model
from .modes import check_mode
from .generator import DirectorVideoGenerator, VideoConfig, generate_video, resolve_device
from .inputs import motion_label

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class BatchResult:
    line: int  # 1-based line number in the batch file
    out: Path | None  # the mp4, or None when the line failed
    error: str | None = None


def parse_batch_line(text: str, line: int, base: Path, default_motion: str | None) -> tuple[str, str, str | None]:
    parts = [p.strip() for p in text.split("@@")]
    if len(parts) not in (2, 3) or not parts[0]:
        raise DimensionXError(f"line {line}: expected `image@@prompt` or `image@@prompt@@motion`, got {text!r}")
    image = Path(parts[0]).expanduser()
    if not image.is_absolute() and not image.exists() and (base / image).exists():
        image = base / image
    motion = parts[2] if len(parts) == 3 and parts[2] else default_motion
    return str(image), parts[1], motion


def generate_batch(config: VideoConfig) -> list[BatchResult]:
    batch = Path(config.batch)
    if not batch.is_file():
        raise DimensionXError(f"--batch {batch} does not exist: pass a text file of `image@@prompt[@@motion]` lines")
    out_dir = Path(config.out or "outputs")
    if out_dir.suffix == ".mp4":
        raise DimensionXError(f"with --batch, --out is a folder for all the videos, not the file {out_dir}")
    lines = [(n, t.strip()) for n, t in enumerate(batch.read_text().splitlines(), 1) if t.strip() and not t.lstrip().startswith("#")]
    if not lines:
        raise DimensionXError(f"--batch {batch} has no lines of the form `image@@prompt[@@motion]`")
    check_mode(config.mode)
    device, dtype = resolve_device(config.device, config.dtype)
    generator = DirectorVideoGenerator(resolve_model(config.model), device, dtype, config.mode, reusable=True)
    results = []
    for number, text in lines:
        try:
            image, prompt, motion = parse_batch_line(text, number, batch.parent, config.motion)
            out = out_dir / f"{number:04d}_{Path(image).stem}_{motion_label(motion)}.mp4"
            line_config = dataclasses.replace(config, image=image, prompt=prompt, motion=motion, batch=None, out=str(out))
            results.append(BatchResult(number, generate_video(line_config, generator)))
        except DimensionXError as exc:
            logger.error("batch line %d skipped: %s", number, exc)
            results.append(BatchResult(number, None, str(exc)))
    failed = [r for r in results if r.error]
    logger.info("batch: %d of %d videos written to %s%s", len(results) - len(failed), len(results), out_dir,
                f"; failed lines: {', '.join(str(r.line) for r in failed)}" if failed else "")
    return results
