"""The scene as the page's splat viewer opens it: ``static/viewer.js`` on the vendored gsplat.js (MIT).

The viewer gets the splat files' URLs and a starting view: the camera at the first reconstructed
camera's centre, turning about the scene's median splat, so the first frame shows the scene from
where the video began (not from inside the splats). A 4D scene is one ``.splat`` per time, the same
Gaussians moved by the deformation field; the viewer's time slider swaps them while the user orbits.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import numpy as np

STATIC = Path(__file__).parent / "static"  # viewer.js and the vendored gsplat.js (see static/README.md)
# one splat of the .splat format, 32 bytes: position, scale (linear), RGBA, rotation (128 + 128 * q)
SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])


@dataclasses.dataclass
class SceneView:
    files: list[Path]  # one .splat (3D), or one .splat per time (4D)
    times: list[float]  # the time of each file in [0, 1] (4D); empty for a 3D scene
    position: list[float]  # world units: the viewer's first camera centre (the first reconstructed camera's)
    target: list[float]  # world units: the point it looks at and turns about (the median splat)


def scene_view(files: list[Path], transforms: Path, times: list[float] | None = None) -> SceneView:
    """The view of ``files`` (.splat) from the first camera of ``transforms`` (nerfstudio transforms.json)."""
    first = np.asarray(json.loads(transforms.read_text())["frames"][0]["transform_matrix"], dtype=np.float64)  # [4, 4] c2w
    positions = np.fromfile(files[0], dtype=SPLAT_RECORD)["position"]  # [N, 3]
    return SceneView(list(files), list(times or []), first[:3, 3].tolist(), np.median(positions, axis=0).tolist())


def viewer_html(view: SceneView | None, file_url) -> str:
    """The viewer's element: ``static/viewer.js`` draws ``view`` into it (empty: a hint). ``file_url(path)``: its URL."""
    if view is None:
        return '<div class="dx-splat dx-empty">The scene appears here: drag to turn, scroll to zoom, right-drag to pan.</div>'
    scene = {"files": [file_url(p) for p in view.files], "times": view.times, "position": view.position, "target": view.target}
    return f'<div class="dx-splat" data-scene="{html.escape(json.dumps(scene), quote=True)}"></div>'
