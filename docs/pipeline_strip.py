"""Draws docs/pipeline.png, the README's strip: the photo, then what each stage wrote from it.

Run after README's "Try it without a GPU" commands (the tiny random-weight model, so every
picture after the photo is noise or a fit to noise; nothing here is retouched):

    python docs/pipeline_strip.py outputs docs/pipeline.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from dimensionx.videofiles import read_frames

PANEL = (150, 100)  # px (width, height) of each picture
LABEL = 28  # px of caption above the pictures
GAP = 22  # px between panels, with an arrow


def middle_frame(video: Path) -> Image.Image:
    frames, _ = read_frames(video)  # [T, H, W, 3] uint8
    return Image.fromarray(frames[len(frames) // 2])


def panels(outputs: Path, photo: Path) -> list[tuple[str, Image.Image]]:
    return [
        ("photo", Image.open(photo).convert("RGB")),
        ("video (mp4 + sidecar)", middle_frame(outputs / "tiny.mp4")),
        ("3D Gaussians (PLY)", middle_frame(outputs / "tiny_scene" / "renders" / "orbit.mp4")),
        ("4D Gaussians at t=0.5", middle_frame(outputs / "tiny4d_t05.mp4")),
    ]


def draw(items: list[tuple[str, Image.Image]]) -> Image.Image:
    width = len(items) * PANEL[0] + (len(items) - 1) * GAP
    strip = Image.new("RGB", (width, LABEL + PANEL[1]), "white")
    pen = ImageDraw.Draw(strip)
    for k, (label, picture) in enumerate(items):
        x = k * (PANEL[0] + GAP)
        strip.paste(picture.resize(PANEL, Image.Resampling.LANCZOS), (x, LABEL))
        pen.text((x, 8), label, fill="black")
        if k:
            mid = LABEL + PANEL[1] // 2
            pen.line([(x - GAP + 4, mid), (x - 5, mid)], fill="black", width=2)
            pen.polygon([(x - 4, mid), (x - 10, mid - 5), (x - 10, mid + 5)], fill="black")
    return strip


def main(outputs: str, out: str) -> None:
    photo = Path(__file__).resolve().parents[1] / "assets" / "barn.png"
    draw(panels(Path(outputs), photo)).save(out, optimize=True)
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
