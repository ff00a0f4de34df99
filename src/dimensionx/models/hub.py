"""Resolving ``--model`` to a local diffusers folder: a hub id, a folder, or ``tiny``.

Weights are downloaded on first use. When they are not cached and the hub cannot be
reached, the error names the exact download command and the ``--model DIR`` alternative.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import DimensionXError

DEFAULT_MODEL = "THUDM/CogVideoX-5b-I2V"
MAX_FRAMES = 161  # frames of a video made or trained on: 4k + 1 up to 161 (the orbit's is 145); longer ones outgrow an 80 GB GPU
BASE_KEY = "_dimensionx_base_model"  # model_index.json key of a transformer-only folder: the pipeline lending VAE, T5, scheduler


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    id: str  # what the user asked for: a hub id, a folder or "tiny"
    path: Path  # local diffusers folder holding model_index.json
    tiny: bool = False
    base: Path | None = None  # for a transformer-only folder (``dimensionx convert-sat``): the pipeline lending the rest


def resolve_model(model: str, download: bool = True) -> ResolvedModel:
    """The local folder of ``model``; without ``download``, only what is cached (else an error)."""
    if model == "tiny":
        from .tiny import ensure_tiny_model

        return ResolvedModel("tiny", ensure_tiny_model(), tiny=True)
    if model == "tiny-orbit":
        from .tiny import TINY_ORBIT_FRAMES, ensure_tiny_model

        return ResolvedModel("tiny-orbit", ensure_tiny_model(frames=TINY_ORBIT_FRAMES), tiny=True)
    folder = Path(model).expanduser()
    if folder.exists():
        if not (folder / "model_index.json").is_file():
            raise DimensionXError(
                f"--model {model} is a folder without model_index.json, so it is not a diffusers pipeline: "
                f"pass a folder saved by `save_pretrained` (e.g. from `hf download {DEFAULT_MODEL} --local-dir DIR`)"
            )
        base = base_model_of(folder)
        return ResolvedModel(model, folder.resolve(), base=resolve_model(base).path if base else None)
    if model.startswith((".", "/", "~")) or model.count("/") != 1 or not _is_repo_id(model):
        raise DimensionXError(
            f"--model {model} is neither an existing folder nor a hub id of the form owner/name "
            f"(default {DEFAULT_MODEL}; `--model tiny` runs the tiny random model on a CPU)"
        )
    return ResolvedModel(model, download_snapshot(model, what="model weights", download=download))


def _is_repo_id(name: str) -> bool:
    """Whether ``name`` is spelled as the hub allows (``nosuchdir/`` or ``a b/c`` is not)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def base_model_of(folder: Path) -> str | None:
    """The base pipeline of a transformer-only folder (no ``vae/``, ``BASE_KEY`` in model_index.json), else None."""
    if (folder / "vae").is_dir():
        return None
    return json.loads((folder / "model_index.json").read_text()).get(BASE_KEY)


def download_snapshot(repo_id: str, what: str, allow_patterns: list[str] | None = None, download: bool = True) -> Path:
    """Local folder of ``repo_id``: from the hub cache, else (if ``download``) downloaded with a progress bar."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=allow_patterns))
    except LocalEntryNotFoundError as exc:
        if not download:
            raise _not_found(repo_id, what, exc, "was not downloaded") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns))
    except Exception as exc:  # offline, DNS, HTTP, gated repo: all end the same way for the user
        raise _not_found(repo_id, what, exc, "could not be downloaded") from None


def _not_found(repo_id: str, what: str, exc: Exception, why: str) -> DimensionXError:
    return DimensionXError(
        f"{what} ({repo_id}) not found in the local Hugging Face cache and {why} "
        f"({type(exc).__name__}: {str(exc).splitlines()[0]}). On a machine with internet run "
        f"`hf download {repo_id} --local-dir DIR` and pass the folder instead"
        + (" (--model DIR)" if what == "model weights" else " (--lora-dir DIR)")
        + ", or set HF_HOME to a cache that holds it."
    )
