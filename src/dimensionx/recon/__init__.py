"""Video -> cameras (pycolmap SfM) -> 3D Gaussian scene (gsplat), and the files other tools open.

The public surface the other stages (``fourd/``, ``train/``) use; they import nothing else of recon:

- SfM cameras of frames: :func:`sfm_cameras`;
- frame reading: ``frame_names`` (the names SfM gives frames), ``downscale`` ([T, H, W, 3] uint8 to a
  longest side in px);
- camera files: ``cameras_from_transforms`` (a nerfstudio ``transforms.json``), ``scale_intrinsics``.

They are imported on first use, so ``import dimensionx.recon`` (the CLI's parser) stays free of torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

PUBLIC = {"frame_names": "frames", "downscale": "frames", "cameras_from_transforms": "cameras", "scale_intrinsics": "cameras"}


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(f".{PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sfm_cameras(images, image_dir: Path, seed: int):
    """SfM (pycolmap, no repairs) of the frames ``images`` [T, H, W, 3] uint8, saved into ``image_dir`` as
    ``frame_names(range(T))``. Returns recon's ``SfmResult``: ``cameras`` (``viewmats`` [V, 4, 4], ``Ks``
    [V, 3, 3], ``frame_ids`` [V] of the V registered frames), ``points`` [P, 3], ``colors`` [P, 3] uint8,
    ``reprojection_error_px``. Raises ``DimensionXError`` where SfM fails."""
    import numpy as np

    from .config import ReconConfig
    from .frames import frame_names, save_pngs
    from .sfm import run_sfm

    names = frame_names(np.arange(len(images)))
    image_dir.mkdir(parents=True, exist_ok=True)
    save_pngs([image_dir / name for name in names], images)
    return run_sfm(images, names, image_dir, ReconConfig(video=str(image_dir), seed=seed))
