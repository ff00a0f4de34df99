"""Renders assets/barn.png, the README's example input: a red barn in a field under an evening sky.

Drawn procedurally with numpy so the project ships no third-party image.
Run: python assets/make_example.py
"""

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


if __name__ == "__main__":
    Image.fromarray(render()).save(Path(__file__).with_name("barn.png"), optimize=True)
