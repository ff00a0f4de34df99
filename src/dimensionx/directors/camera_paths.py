"""Camera paths of the 16 S-Director motions, defined once (pure numpy).

Every motion is a move of the camera relative to its start pose, written in the start
camera's own axes (OpenCV: x right, y down, z forward):

- ``rotate``: the camera turns in place about ``axis`` by ``amount`` degrees (pans, tilts, rolls);
- ``translate``: the camera slides along ``axis`` by ``amount`` scene units;
- ``orbit``: the camera swings about the scene centre, about ``axis`` through it, by ``amount``
  degrees, turning with the swing so the centre stays where it was in the image.

Rotations follow the right-hand rule about ``axis``. A scene unit is the distance from the
start camera to the scene centre, so a path means the same on scenes of any scale. Poses are
camera-to-world 4x4 matrices with OpenCV axes (the world-to-camera ``viewmats`` gsplat reads
are their inverses).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..camerafiles import OPENGL_FROM_OPENCV, focal_from_fov

UP, DOWN, RIGHT, LEFT, FORWARD, BACK = (0, -1, 0), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1)


@dataclasses.dataclass(frozen=True)
class CameraMotion:
    name: str
    kind: str  # "rotate", "translate" or "orbit"
    axis: tuple[float, float, float]  # in the start camera's axes (x right, y down, z forward)
    amount: float  # degrees (rotate, orbit) or scene units (translate) over the whole clip


MOTIONS: dict[str, CameraMotion] = {
    m.name: m
    for m in (
        CameraMotion("pan_left", "rotate", UP, 30.0),  # forward turns towards -x
        CameraMotion("pan_right", "rotate", DOWN, 30.0),
        CameraMotion("pan_up", "rotate", RIGHT, 20.0),  # forward turns towards -y (up)
        CameraMotion("pan_down", "rotate", LEFT, 20.0),
        CameraMotion("pan_rotation_left", "rotate", BACK, 30.0),  # counter-clockwise roll seen from behind the camera
        CameraMotion("pan_rotation_right", "rotate", FORWARD, 30.0),
        CameraMotion("x_left", "translate", LEFT, 0.3),
        CameraMotion("x_right", "translate", RIGHT, 0.3),
        CameraMotion("y_up", "translate", UP, 0.3),
        CameraMotion("y_down", "translate", DOWN, 0.3),
        CameraMotion("z_zoom_in", "translate", FORWARD, 0.4),
        CameraMotion("z_zoom_out", "translate", BACK, 0.4),
        CameraMotion("orbit_left", "orbit", DOWN, 30.0),  # the camera swings to its left round the centre
        CameraMotion("orbit_right", "orbit", UP, 30.0),
        CameraMotion("orbit_up", "orbit", LEFT, 30.0),  # the camera rises over the centre, looking down on it
        CameraMotion("orbit_down", "orbit", RIGHT, 30.0),
    )
}


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """[3, 3] right-handed rotation about unit ``axis`` [3] (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    angle = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[4, 4] camera-to-world (OpenCV axes) at ``position`` [3] looking at ``target`` [3], ``up`` [3] roughly up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(-up, forward)
    if np.linalg.norm(right) < 1e-8:  # looking straight along up: any right works
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = position
    return c2w


def camera_path(motion: str | CameraMotion, start: np.ndarray, centre: np.ndarray, frames: int) -> np.ndarray:
    """[frames, 4, 4] camera-to-world poses from ``start`` [4, 4] (at frame 0) to the full move, at a constant pace.

    ``centre`` [3] is the scene centre: the pivot of orbits and, by its distance from the start
    camera, the scene unit of translations.
    """
    motion = MOTIONS[motion] if isinstance(motion, str) else motion
    rotation0, position0 = start[:3, :3], start[:3, 3]
    axis_world = rotation0 @ np.asarray(motion.axis, dtype=np.float64)  # the motion's axis in world axes
    unit = float(np.linalg.norm(centre - position0))
    poses = np.repeat(start[None].astype(np.float64), frames, axis=0)
    for i, t in enumerate(np.linspace(0.0, 1.0, frames)):
        if motion.kind == "rotate":
            poses[i, :3, :3] = rotation(axis_world, t * motion.amount) @ rotation0
        elif motion.kind == "translate":
            poses[i, :3, 3] = position0 + t * motion.amount * unit * axis_world / np.linalg.norm(axis_world)
        elif motion.kind == "orbit":
            swing = rotation(axis_world, t * motion.amount)
            poses[i, :3, :3] = swing @ rotation0
            poses[i, :3, 3] = centre + swing @ (position0 - centre)
        else:
            raise ValueError(f"unknown motion kind {motion.kind!r}")
    return poses


STATIC = CameraMotion("static", "rotate", UP, 0.0)  # the base model alone (--motion none) and the T-Director: no camera move


def ring(degrees: float) -> CameraMotion:
    """The 360-degree orbit model's path: an ``orbit_left`` swing of ``degrees`` round the scene centre."""
    return CameraMotion(f"ring_{degrees:g}", "orbit", MOTIONS["orbit_left"].axis, degrees)


def mixed_path(motions: list[tuple[CameraMotion, float]], frames: int) -> np.ndarray:
    """[frames, 4, 4] camera-to-world poses of a weighted mix, from the identity start pose with the scene
    centre 1 unit ahead: each motion moves ``weight`` times its amount, and the moves are composed in turn."""
    start, centre = np.eye(4), np.array([0.0, 0.0, 1.0])
    poses = np.repeat(start[None], frames, axis=0)
    for motion, weight in motions:
        scaled = dataclasses.replace(motion, amount=motion.amount * weight)
        poses = camera_path(scaled, start, centre, frames) @ poses  # start is the identity: the path is the move itself
    return poses


# Horizontal field of view of the known cameras written for a video (degrees): the videos' own lens is
# unknown; 60 degrees is a common camera's and only fixes the scale of the intrinsics.
FIELD_OF_VIEW_X = 60.0


def transforms_json(poses: np.ndarray, width: int, height: int) -> dict:
    """nerfstudio ``transforms.json`` of ``poses`` [T, 4, 4] (camera-to-world, OpenCV axes) seen as
    ``width`` x ``height`` px frames: one frame per pose, in order, with ``file_path`` ``frames/NNNN.png``."""
    focal = focal_from_fov(width, np.deg2rad(FIELD_OF_VIEW_X))  # px
    return {
        "camera_model": "OPENCV",
        "fl_x": float(focal), "fl_y": float(focal), "cx": width / 2, "cy": height / 2, "w": width, "h": height,
        "frames": [{"file_path": f"frames/{i:04d}.png", "transform_matrix": (pose @ OPENGL_FROM_OPENCV).tolist()}
                   for i, pose in enumerate(poses)],
    }
