"""The scene as the page's 3D viewer shows it.

Gradio's splat viewer orbits the world origin from 5 units away, while SfM puts a scene
wherever its first camera looked, at whatever scale. The viewer gets a copy of ``scene.splat``
moved so that the median splat sits at the origin and scaled so that most splats lie within
``VIEW_RADIUS`` of it; the downloads keep the scene as reconstructed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# one splat of the .splat format, 32 bytes: position, scale (linear), RGBA, rotation (128 + 128 * q)
SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
VIEW_RADIUS = 2.0  # world units, for the viewer's camera 5 units from the origin
RADIUS_QUANTILE = 0.8  # the share of splats that fit within VIEW_RADIUS; the rest (floaters) may not


def framed_splat(splat: Path, out: Path) -> Path:
    """Writes ``splat`` to ``out`` centred on its median position and scaled to ``VIEW_RADIUS``; returns ``out``."""
    records = np.fromfile(splat, dtype=SPLAT_RECORD)
    centred = records["position"] - np.median(records["position"], axis=0)  # [N, 3]
    radius = np.quantile(np.linalg.norm(centred, axis=1), RADIUS_QUANTILE)
    factor = VIEW_RADIUS / radius if radius > 0 else 1.0
    records["position"] = centred * factor
    records["scale"] *= factor
    records.tofile(out)
    return out
