"""The conventions of nerfstudio / instant-ngp ``transforms.json`` camera files, for every stage that reads or writes one.

Camera-to-world matrices in the file use OpenGL camera axes (x right, y up, z backward); the
stages compute in OpenCV's (x right, y down, z forward). The horizontal focal length is ``fl_x``
in pixels, or follows from the horizontal field of view ``camera_angle_x`` (radians) and the width.
"""

from __future__ import annotations

import numpy as np

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # [4, 4]: c2w_file = c2w_opencv @ this (and back: it is its own inverse)


def focal_from_fov(width: float, fov_x: float) -> float:
    """Focal length in px of a pinhole ``width`` px wide whose horizontal field of view is ``fov_x`` radians:
    the image's edge, half the width from the centre, lies at half the field of view."""
    return 0.5 * width / np.tan(0.5 * fov_x)


def focal_x(fields: dict, width: float) -> float:
    """A frame's horizontal focal length in px: ``fl_x``, else from ``camera_angle_x``; KeyError when it has neither."""
    return float(fields["fl_x"]) if "fl_x" in fields else focal_from_fov(width, float(fields["camera_angle_x"]))
