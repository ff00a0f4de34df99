"""The 17 directors of DimensionX: 16 S-Directors (camera motions) and the T-Director.

Each director is a rank-256 LoRA on CogVideoX-5B-I2V. ``repo`` is the Hugging Face repo
the official file is published in; ``filename`` is the file's name in the tiny model's
LoRA folder and the stem used to find it in ``--lora-dir`` or the hub cache.
"""

from __future__ import annotations

import dataclasses

BASIC_REPO = "ShuoChen20/DimensionX_12_basic_camera_lora"
ORBIT_REPO = "ShuoChen20/DimensionX_4_orbit_camera_lora"
TIME_REPO = "ShuoChen20/DimensionX_T_director_lora"


@dataclasses.dataclass(frozen=True)
class Director:
    name: str
    kind: str  # "S" (space: the camera moves) or "T" (time: the scene moves, the camera stays)
    description: str
    repo: str

    @property
    def filename(self) -> str:
        return f"{self.name}_lora_weights.safetensors"


def _s(name: str, description: str, repo: str = BASIC_REPO) -> Director:
    return Director(name, "S", description, repo)


DIRECTORS: dict[str, Director] = {
    d.name: d
    for d in (
        _s("pan_left", "camera turns left in place (yaw), scene sweeps right"),
        _s("pan_right", "camera turns right in place (yaw), scene sweeps left"),
        _s("pan_up", "camera tilts up in place (pitch)"),
        _s("pan_down", "camera tilts down in place (pitch)"),
        _s("pan_rotation_left", "camera rolls counter-clockwise about its viewing axis"),
        _s("pan_rotation_right", "camera rolls clockwise about its viewing axis"),
        _s("x_left", "camera slides left (truck), parallax on depth"),
        _s("x_right", "camera slides right (truck), parallax on depth"),
        _s("y_up", "camera rises (pedestal up)"),
        _s("y_down", "camera lowers (pedestal down)"),
        _s("z_zoom_in", "camera dollies forward into the scene"),
        _s("z_zoom_out", "camera dollies backward out of the scene"),
        _s("orbit_left", "camera orbits the subject to the left, keeping it centred", ORBIT_REPO),
        _s("orbit_right", "camera orbits the subject to the right, keeping it centred", ORBIT_REPO),
        _s("orbit_up", "camera orbits over the subject, looking down on it", ORBIT_REPO),
        _s("orbit_down", "camera orbits under the subject, looking up at it", ORBIT_REPO),
        Director("time", "T", "the scene moves over time while the camera stays still", TIME_REPO),
    )
}


def get_director(name: str) -> Director:
    from ..errors import DimensionXError

    if name not in DIRECTORS:
        import difflib

        close = difflib.get_close_matches(name, DIRECTORS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DimensionXError(
            f"unknown motion {name!r}.{hint} Known motions: {', '.join(DIRECTORS)} (run `dimensionx motions`)."
        )
    return DIRECTORS[name]
