"""``generate_orbit``: one 360-degree orbit video (or a batch) on the shared video runtime.

The orbit is ``dimensionx video`` with the orbit model and the original's sampler settings
(:class:`~.config.OrbitConfig`); what is checked here is what only the orbit model needs:
a model was given, and the frame count is the one its learned position table was sized for
(at any other count diffusers would silently swap the table for a generated sinusoid).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import DimensionXError
from ..models import resolve_model
from .config import OrbitConfig


def generate_orbit(config: OrbitConfig) -> list[Path | None]:
    """Writes the orbit mp4(s) and sidecar(s); returns each video's mp4, None for a failed batch line."""
    from ..video.batch import generate_batch
    from ..video.generator import check_inputs, generate_video

    if config.model is None:
        raise DimensionXError(
            "no orbit model: convert the SAT checkpoint once with `dimensionx convert-sat checkpoints/ --out models/orbit360` "
            "and pass --model models/orbit360 (or --model tiny-orbit for a smoke run with random weights)"
        )
    config = dataclasses.replace(config, frames=orbit_frames(config.model, config.frames))
    if config.batch:
        return [r.out for r in generate_batch(config)]
    config = dataclasses.replace(config, out=config.out or str(Path("outputs") / f"{Path(config.image or 'orbit').stem}_orbit360.mp4"))
    check_inputs(config)  # before the weights load
    return [generate_video(config)]


def orbit_frames(model: str, frames: int | None) -> int:
    """The model's sample_frames (read from its config, before any weights load); ``frames`` must be it if given."""
    folder = resolve_model(model).path if model.startswith("tiny") else Path(model).expanduser()
    path = folder / "transformer" / "config.json"
    if not path.is_file():
        raise DimensionXError(f"--model {model} has no transformer/config.json: pass a folder written by `dimensionx convert-sat`")
    try:
        transformer = json.loads(path.read_text())
        transformer.get("sample_frames")
    except (ValueError, AttributeError) as exc:
        raise DimensionXError(f"--model {model}: {path} is damaged ({type(exc).__name__}: {exc}): convert the checkpoint "
                              "again with `dimensionx convert-sat`") from None
    if not transformer.get("use_learned_positional_embeddings"):
        raise DimensionXError(f"--model {model} has no learned position table, so it is not the orbit model: use `dimensionx video` for it")
    if frames is not None and frames != transformer["sample_frames"]:
        raise DimensionXError(
            f"--frames {frames}: --model {model} makes exactly {transformer['sample_frames']} frames (its learned position table "
            f"is sized for them; at another count diffusers would replace it): drop --frames"
        )
    return transformer["sample_frames"]
