"""Where a director's LoRA file is found: ``--lora``, ``--lora-dir``, the tiny model, the hub."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DimensionXError
from .registry import Director


def find_director_file(director: Director, lora_dir: str | Path | None = None, tiny: bool = False,
                       download: bool = True) -> Path | None:
    """Path of ``director``'s LoRA, looked up in this order:

    1. ``lora_dir``: a ``.safetensors`` file whose name contains the director's name as a
       whole word (``orbit_left_lora_weights.safetensors``, ``orbit_left/x.safetensors``);
    2. the tiny model's LoRA folder when ``tiny``;
    3. the local Hugging Face cache of the director's repo, then (if ``download``) the hub.

    Returns ``None`` when ``download`` is False and nothing is found locally.
    """
    if lora_dir is not None:
        folder = Path(lora_dir).expanduser()
        if not folder.is_dir():
            raise DimensionXError(f"--lora-dir {folder} is not a folder: pass the folder that holds the director .safetensors files")
        found = match_in_folder(director, folder)
        if found is not None:
            return found
    if tiny:
        from .tiny import tiny_lora_dir

        return tiny_lora_dir() / director.filename
    return _from_hub(director, download)


def match_in_folder(director: Director, folder: Path) -> Path | None:
    word = re.compile(rf"(^|[^a-z]){re.escape(director.name)}([^a-z]|$)")
    hits = sorted(p for p in folder.rglob("*.safetensors") if word.search(str(p.relative_to(folder)).lower()))
    if len(hits) > 1:
        raise DimensionXError(
            f"several files in {folder} match director {director.name}: {', '.join(str(h) for h in hits)}; "
            "keep one, or name the file with --motion NAME --lora PATH"
        )
    return hits[0] if hits else None


def _from_hub(director: Director, download: bool) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from ..models.hub import download_snapshot

    patterns = [f"*{director.name}*"]
    try:
        folder = Path(snapshot_download(director.repo, local_files_only=True, allow_patterns=patterns))
        found = match_in_folder(director, folder)
    except LocalEntryNotFoundError:
        found = None
    if found is not None or not download:
        return found
    found = match_in_folder(director, download_snapshot(director.repo, what=f"the {director.name} director LoRA", allow_patterns=patterns))
    if found is None:
        raise DimensionXError(
            f"the hub repo {director.repo} has no file named for {director.name}: "
            "download the director by hand and pass it with --motion NAME --lora PATH"
        )
    return found
