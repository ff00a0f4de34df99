"""The tiny model's 4D grid is noise, which SfM cannot register: its views take the known cameras of the
space director's path, so ``scene4d --model tiny`` needs no --cameras (the README's CPU path)."""

from __future__ import annotations

import json

import numpy as np

from dimensionx.fourd.config import FourDConfig
from dimensionx.fourd.scene import reference_cameras


def test_tiny_views_take_the_space_directors_known_path(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (9, 64, 96, 3), dtype=np.uint8)  # [K, H, W, 3]: nothing to match
    config = FourDConfig(model="tiny", views=9, space_director="orbit_left", init_points=50)
    viewmats, Ks, views, points, colors, source = reference_cameras(noise, tmp_path, config)
    assert source == "known cameras of orbit_left (tiny model)" and views.tolist() == list(range(9))
    written = json.loads((tmp_path / "known_cameras.json").read_text())
    assert written["motion"] == "orbit_left:1" and len(written["frames"]) == 9
    # orbit_left: 30 degrees round the centre 1 unit ahead, to the first camera's left (-x, OpenCV axes)
    centres = np.linalg.inv(viewmats)[:, :3, 3]  # [K, 3]
    assert np.allclose(centres[0], 0, atol=1e-6)
    assert np.allclose(np.linalg.norm(centres - [0, 0, 1], axis=1), 1.0)
    assert np.allclose(centres[-1], [-np.sin(np.radians(30)), 0, 1 - np.cos(np.radians(30))], atol=1e-6)
    assert np.allclose(Ks[:, 0, 2], 48) and np.allclose(Ks[:, 1, 2], 32)  # intrinsics at the grid's 96x64 px
    assert len(points) == 50


def test_a_real_model_never_takes_a_directors_path_for_its_cameras(tmp_path, monkeypatch):
    import dimensionx.fourd.scene as scene

    asked = []
    monkeypatch.setattr(scene, "sfm_cameras", lambda *a, **k: asked.append(1) or (_ for _ in ()).throw(RuntimeError("sfm")))
    config = FourDConfig(model="THUDM/CogVideoX-5b-I2V", views=9)
    try:
        reference_cameras(np.zeros((9, 64, 96, 3), np.uint8), tmp_path, config)
    except RuntimeError:
        pass
    assert asked == [1] and not (tmp_path / "known_cameras.json").exists()
