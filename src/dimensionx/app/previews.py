"""Small animated previews of each director's camera path, drawn by the app (no model needed).

Each preview shows what the camera sees: a backdrop (grid of dots) and a subject (a house) in
front of it. A director moves the two layers the way its camera motion moves them in the
image: a pan moves both alike, a slide moves the near subject more (parallax), an orbit keeps
the subject centred while the backdrop sweeps, a zoom scales, a roll rotates, and the
T-Director leaves the camera still while the subject moves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

from PIL import Image, ImageDraw

SIZE = (96, 64)  # px, width x height of a preview
FRAMES = 16  # frames per loop
FRAME_MS = 90  # milliseconds per frame
SHIFT = 18.0  # px, image motion of the near layer at the end of the path


class Layer(NamedTuple):
    dx: float = 0.0  # px, right
    dy: float = 0.0  # px, down
    scale: float = 1.0
    roll: float = 0.0  # degrees, counter-clockwise in the image


# t in [0, 1] along the path -> (backdrop, subject)
Motion = Callable[[float], tuple[Layer, Layer]]


def _both(layer: Callable[[float], Layer]) -> Motion:
    return lambda t: (layer(t), layer(t))


def _parallax(dx: float, dy: float) -> Motion:
    """The camera slides: near subject moves ``(dx, dy)`` px, the far backdrop a third of that."""
    return lambda t: (Layer(dx * t / 3, dy * t / 3), Layer(dx * t, dy * t))


def _orbit(dx: float, dy: float) -> Motion:
    """The camera circles the subject, keeping it centred: the backdrop sweeps the way the camera goes."""
    return lambda t: (Layer(dx * t, dy * t), Layer(0.0, 0.0, 1.0 - 0.15 * math.sin(math.pi * t)))


def _zoom(near: float, far: float) -> Motion:
    return lambda t: (Layer(scale=1 + far * t), Layer(scale=1 + near * t))


MOTIONS: dict[str, Motion] = {
    "pan_left": _both(lambda t: Layer(SHIFT * t)),
    "pan_right": _both(lambda t: Layer(-SHIFT * t)),
    "pan_up": _both(lambda t: Layer(dy=SHIFT * t)),
    "pan_down": _both(lambda t: Layer(dy=-SHIFT * t)),
    "pan_rotation_left": _both(lambda t: Layer(roll=-30 * t)),
    "pan_rotation_right": _both(lambda t: Layer(roll=30 * t)),
    "x_left": _parallax(SHIFT, 0),
    "x_right": _parallax(-SHIFT, 0),
    "y_up": _parallax(0, SHIFT),
    "y_down": _parallax(0, -SHIFT),
    "z_zoom_in": _zoom(0.7, 0.2),
    "z_zoom_out": _zoom(-0.4, -0.1),
    "orbit_left": _orbit(-SHIFT, 0),
    "orbit_right": _orbit(SHIFT, 0),
    "orbit_up": _orbit(0, -SHIFT),
    "orbit_down": _orbit(0, SHIFT),
    "time": lambda t: (Layer(), Layer(dy=-0.5 * SHIFT * abs(math.sin(2 * math.pi * t)))),
}

BACKDROP = [(x, y) for x in range(-120, 121, 12) for y in range(-84, 85, 12)]  # dots, px from the centre
HOUSE = [(-12, 14), (-12, -2), (0, -14), (12, -2), (12, 14)]  # outline, px from the centre
DOOR = [(-3, 14), (-3, 5), (3, 5), (3, 14)]


def _place(points: list[tuple[float, float]], layer: Layer) -> list[tuple[float, float]]:
    """Image coordinates of centre-relative ``points`` moved by ``layer``."""
    cos, sin = math.cos(math.radians(layer.roll)), math.sin(math.radians(layer.roll))
    cx, cy = SIZE[0] / 2 + layer.dx, SIZE[1] / 2 + layer.dy
    return [(cx + layer.scale * (cos * x + sin * y), cy + layer.scale * (-sin * x + cos * y)) for x, y in points]


def draw_frame(motion: Motion, t: float) -> Image.Image:
    backdrop, subject = motion(t)
    image = Image.new("RGB", SIZE, (28, 32, 44))
    draw = ImageDraw.Draw(image)
    for x, y in _place(BACKDROP, backdrop):
        draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=(120, 140, 170))
    draw.polygon(_place(HOUSE, subject), fill=(232, 170, 60), outline=(255, 230, 180))
    draw.polygon(_place(DOOR, subject), fill=(110, 60, 30))
    return image


def write_preview(name: str, path: Path) -> Path:
    """An endlessly looping GIF of director ``name``'s path there and back."""
    ts = [i / (FRAMES - 1) for i in range(FRAMES)]
    frames = [draw_frame(MOTIONS[name], t) for t in ts + ts[-2:0:-1]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return path


def write_previews(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write_preview(name, folder / f"{name}.gif") for name in MOTIONS}
