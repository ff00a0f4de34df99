"""Renders the example photos: assets/barn.png (the README's example input: a red barn in a field
under an evening sky), lighthouse.png and snowman.png, and assets/examples.json, the web app's
clickable examples (photo and prompt).

Drawn procedurally with numpy so the project ships no third-party image.
Run: python assets/make_example.py
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 720, 480  # pixels, the CogVideoX-5B-I2V size


def render() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    horizon = 300 + 12 * np.sin(x / 90.0)
    t = y / 300.0
    sky = np.stack([120 + 110 * t, 160 + 60 * t, 235 - 40 * t], -1)
    rng = np.random.default_rng(0)
    grass_noise = rng.normal(0, 10, (HEIGHT, WIDTH))
    field = np.stack([60 + 30 * (y - 300) / 180 + grass_noise, 140 + 40 * (y - 300) / 180 + grass_noise, 50 + grass_noise * 0.5], -1)
    image = np.where((y < horizon)[..., None], sky, field)
    sun = (x - 560) ** 2 + (y - 110) ** 2 < 40**2
    image[sun] = (255, 225, 150)
    barn = (x > 250) & (x < 450) & (y > 200) & (y < 360)
    roof = (y <= 200) & (y > 200 - (100 - np.abs(x - 350)) * 0.9) & (np.abs(x - 350) < 110)
    image[barn] = (170, 30, 30)
    image[roof] = (90, 40, 35)
    door = (x > 315) & (x < 385) & (y > 260) & (y < 360)
    image[door] = (235, 225, 210)
    cross = door & ((np.abs((x - 315) - (y - 260) * 0.7) < 4) | (np.abs((385 - x) - (y - 260) * 0.7) < 4))
    image[cross] = (170, 30, 30)
    for cx in (120, 620):  # two trees
        trunk = (np.abs(x - cx) < 8) & (y > 250) & (y < 330)
        crown = (x - cx) ** 2 + ((y - 230) * 1.3) ** 2 < 45**2
        image[trunk] = (80, 55, 35)
        image[crown] = (30, 95, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


def grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """[H, W] float pixel rows and columns."""
    return np.mgrid[0:height, 0:width].astype(np.float32)


def render_lighthouse(width: int = 480, height: int = 320) -> np.ndarray:
    """A red and white lighthouse on dark rocks by a blue sea, noon sky."""
    y, x = grid(width, height)
    rng = np.random.default_rng(1)
    t = y / height
    image = np.stack([110 + 90 * t, 170 + 50 * t, 240 - 10 * t], -1)  # sky
    sea = y > 200 + 4 * np.sin(x / 25.0)
    waves = rng.normal(0, 8, (height, width))
    image[sea] = np.stack([20 + waves, 90 + 1.5 * waves, 150 + waves], -1)[sea]
    rocks = y > 250 - 40 * np.exp(-((x - 330) / 90.0) ** 2) + 6 * np.sin(x / 9.0)
    image[rocks] = np.stack([70 + waves, 66 + waves, 62 + waves], -1)[rocks]
    half = 16 + (220 - y) * 0.05  # px, half width of the tapering tower
    tower = (np.abs(x - 330) < half) & (y > 90) & (y < 222)
    image[tower] = (240, 240, 235)
    image[tower & (((y - 90) // 22) % 2 == 1)] = (200, 40, 40)
    image[(np.abs(x - 330) < 14) & (y > 70) & (y <= 90)] = (255, 230, 120)  # the lamp room
    image[(y > 52) & (y <= 70) & (np.abs(x - 330) < (y - 50))] = (60, 60, 70)  # the roof
    return np.clip(image, 0, 255).astype(np.uint8)


def render_snowman(width: int = 480, height: int = 320) -> np.ndarray:
    """A snowman with a black hat and a red scarf in a snowy garden at dusk, two pine trees."""
    y, x = grid(width, height)
    rng = np.random.default_rng(2)
    t = y / height
    image = np.stack([60 + 120 * t, 70 + 110 * t, 130 + 90 * t], -1)  # dusk sky
    snow = y > 215 + 6 * np.sin(x / 40.0)
    image[snow] = np.stack([235 + rng.normal(0, 4, (height, width))] * 3, -1)[snow] - [10, 5, 0]
    for cx in (70, 410):  # pine trees: stacked triangles
        for top, bottom in ((90, 160), (130, 210), (170, 250)):
            layer = (y > top) & (y < bottom) & (np.abs(x - cx) < (y - top) * 0.45)
            image[layer] = (25, 80, 45)
        image[(np.abs(x - cx) < 6) & (y >= 250) & (y < 270)] = (80, 55, 35)
    for cy, r in ((245, 42), (180, 30), (130, 22)):  # body, chest, head
        image[(x - 240) ** 2 + (y - cy) ** 2 < r**2] = (250, 250, 252)
    image[(np.abs(x - 240) < 18) & (y > 88) & (y < 112)] = (20, 20, 25)  # hat
    image[(np.abs(x - 240) < 28) & (y >= 110) & (y < 116)] = (20, 20, 25)
    image[(np.abs(x - 240) < 27) & (y > 150) & (y < 160)] = (200, 30, 40)  # scarf
    for ex in (232, 248):
        image[(x - ex) ** 2 + (y - 125) ** 2 < 9] = (20, 20, 25)
    image[(x > 240) & (x < 256) & (np.abs(y - 133) < 2.5 - (x - 240) * 0.15)] = (240, 120, 30)  # nose
    return np.clip(image, 0, 255).astype(np.uint8)


EXAMPLES = {  # file -> (render, prompt)
    "barn.png": (render, "a red barn in a green field under an evening sky, two trees"),
    "lighthouse.png": (render_lighthouse, "a red and white lighthouse on dark rocks by a calm blue sea"),
    "snowman.png": (render_snowman, "a snowman with a black hat and a red scarf in a snowy garden at dusk"),
}


if __name__ == "__main__":
    folder = Path(__file__).parent
    for name, (draw, _) in EXAMPLES.items():
        Image.fromarray(draw()).save(folder / name, optimize=True)
    (folder / "examples.json").write_text(json.dumps([{"photo": name, "prompt": prompt} for name, (_, prompt) in EXAMPLES.items()],
                                                     indent=2) + "\n")
