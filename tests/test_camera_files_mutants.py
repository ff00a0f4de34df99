"""Camera files and shot choice at their conventions and edges: intrinsics from a field of view, the
principal point when a file omits it, the known cameras of a tiny video, ``--shot`` one past the last.

The references are the pinhole model itself: a point at half the horizontal field of view from the
optical axis lands on the image's edge, and a principal point left out sits at the image centre.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dimensionx.directors.camera_paths import FIELD_OF_VIEW_X, transforms_json
from dimensionx.errors import DimensionXError
from dimensionx.recon.cameras import cameras_from_transforms
from dimensionx.recon.frames import choose_shot

WIDTH, HEIGHT = 64, 48  # not square: a principal point taken from the wrong side is seen


def pixel(K: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(x, y) px where a ray along ``direction`` [3] (camera axes, OpenCV) lands."""
    x = K @ direction
    return x[:2] / x[2]


@pytest.mark.parametrize("degrees", [60.0, 90.0])
def test_a_field_of_view_alone_gives_the_pinhole_that_sees_exactly_that_wide(tmp_path, degrees):
    """nerfstudio / instant-ngp files may carry ``camera_angle_x`` (radians) instead of fl_x, cx, cy."""
    path = tmp_path / "transforms.json"
    angle = np.radians(degrees)
    path.write_text(json.dumps({"camera_angle_x": angle, "w": WIDTH, "h": HEIGHT,
                                "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}))
    (K,) = cameras_from_transforms(path, ["a.png"]).Ks
    # rays at half the field of view to either side land on the left and right edges of the image
    edge = np.array([np.tan(angle / 2), 0.0, 1.0])
    np.testing.assert_allclose(pixel(K, edge), [WIDTH, HEIGHT / 2], atol=1e-9)
    np.testing.assert_allclose(pixel(K, edge * [-1, 1, 1]), [0.0, HEIGHT / 2], atol=1e-9)
    np.testing.assert_allclose(pixel(K, np.array([0.0, 0.0, 1.0])), [WIDTH / 2, HEIGHT / 2])  # the axis: the centre
    assert K[1, 1] == K[0, 0]  # square pixels when fl_y is not given


def test_a_tiny_videos_known_cameras_see_the_stated_field_of_view():
    data = transforms_json(np.eye(4)[None], WIDTH, HEIGHT)
    K = np.array([[data["fl_x"], 0, data["cx"]], [0, data["fl_y"], data["cy"]], [0, 0, 1]])
    edge = np.array([np.tan(np.radians(FIELD_OF_VIEW_X / 2)), 0.0, 1.0])
    np.testing.assert_allclose(pixel(K, edge), [WIDTH, HEIGHT / 2], atol=1e-9)
    np.testing.assert_allclose(pixel(K, np.array([0.0, 0.0, 1.0])), [WIDTH / 2, HEIGHT / 2])
    assert (data["w"], data["h"]) == (WIDTH, HEIGHT)


SHOTS = [range(0, 10), range(10, 12), range(12, 15)]  # a shot of 10 frames, one of 2, one of 3


def test_shot_numbers_run_from_0_to_the_last_shot():
    assert [choose_shot(SHOTS, k, "v.mp4") for k in (0, 2)] == [0, 2]
    for k in (-1, 3):
        with pytest.raises(DimensionXError, match=rf"--shot {k} does not exist: v.mp4 has 3 shot\(s\) .*"
                                                  r"pass --shot between 0 and 2"):
            choose_shot(SHOTS, k, "v.mp4")


def test_a_shot_needs_three_frames():
    assert choose_shot(SHOTS, 2, "v.mp4") == 2  # exactly 3: enough
    with pytest.raises(DimensionXError, match=r"shot 1 of v.mp4 has 2 frame\(s\), too few to reconstruct"):
        choose_shot(SHOTS, 1, "v.mp4")
