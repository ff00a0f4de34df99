"""``OrbitConfig``: every knob of ``dimensionx orbit``, importable without torch."""

from __future__ import annotations

import dataclasses

from ..video.config import ModeConfig, VideoConfig


@dataclasses.dataclass
class OrbitConfig(VideoConfig):
    """``VideoConfig`` with the original 360-degree orbit settings (DimensionX ``inference_145.yaml``):
    the model's 145 frames at its 320x480, 50 DPM++ steps, dynamic CFG 6, zero unconditional text
    embedding, 8 fps, seed 42. A sidecar of an orbit reproduces it with ``--config``."""

    model: str | None = None  # folder written by `dimensionx convert-sat`, or "tiny-orbit" (random weights, tests)
    motion: str | None = "none"  # the orbit is in the model's weights; --lora adds a director on top
    frames: int | None = None  # None: the model's sample_frames (145), the only count its learned position table fits
    uncond: str = "zero"  # unguided branch: zero text embedding, as the SAT original
    orbit_degrees: float = 360.0  # the camera's sweep, written to the sidecar: recon matches the loop's ends and checks the path
    # fast: a full transformer pass every 6th step (11 of 50), not every 5th (13): at 145 frames on one H200
    # 23.1 s against 26.7 s, and as close to stock (32.6 vs 32.5 dB); every 8th fell to 29.1 dB
    # (benchmarks/results/orbit_nvidia-h200.json).
    mode_settings: ModeConfig = dataclasses.field(default_factory=lambda: ModeConfig(cache_interval=6))
