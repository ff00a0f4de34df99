"""`train`, `make-dataset` and the files they read, through the real CLI: a damaged input is named in
one line (exit 2, no traceback) and nothing is left half-written (docs/reliability.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_reliability import assert_refused, cli, files
from train_synthetic import write_clips, write_cut_short

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--config", ROOT / "configs" / "train" / "tiny.yaml"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"), frames=25)


def test_a_clip_cut_short_is_named_with_the_frames_it_holds_not_trained_on(clips, tmp_path):
    write_cut_short(clips / "videos" / "clip0.mp4", tmp_path / "cut.mp4")
    (tmp_path / "metadata.csv").write_text("video,caption\ncut.mp4,a disc\n")
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", tmp_path, "--output-dir", tmp_path / "run", cwd=tmp_path)
    assert_refused(result, "none of its 1 rows is usable", tmp_path, before)
    warning = re.search(r"skipping line 2 \(cut\.mp4\): \S*cut\.mp4 is cut short: its header declares 25 frames but only "
                        r"frames 0-(\d+) \((\d+)\) decode", result.stderr)
    assert warning and int(warning[2]) == int(warning[1]) + 1 < 25, result.stderr


@pytest.mark.parametrize("flag, message", [
    (["--learning-rate", "nan"], "learning_rate nan: use a number from 1e-08 to 1 (the default is 0.001)"),
    (["--learning-rate", "inf"], "learning_rate inf: use a number from 1e-08 to 1"),
    (["--rank", "100000"], "rank 100000: use a number from 1 to 3072 (the default is 256)"),
    (["--micro-batch", "0"], "micro_batch 0: use a number from 1 to 64"),
    (["--frames", "100001"], "frames 100001: use a number from 5 to 161"),
    (["--frames", "10"], "frames 10: CogVideoX takes 4k+1 frames"),
])
def test_flags_out_of_range_are_refused_before_the_run_folder_is_made(clips, tmp_path, flag, message):
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", tmp_path / "run", *flag, cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


@pytest.mark.parametrize("text, message", [
    ("- model\n- tiny\n", "holds a list or a single value, not a mapping of settings: write one `name: value` per line"),
    ("rank: [4\n", "is not valid YAML/JSON (while parsing a flow sequence"),
])
def test_a_config_file_that_is_no_mapping_is_named(clips, tmp_path, text, message):
    (tmp_path / "preset.yaml").write_text(text)
    before = files(tmp_path)
    result = cli("train", "--config", "preset.yaml", "--data", clips, "--output-dir", "run", cwd=tmp_path)
    assert_refused(result, f"config file preset.yaml {message}", tmp_path, before)


@pytest.mark.parametrize("text, message", [
    ("model: [unclosed\n", "--sat-config sat.yaml is not valid YAML/JSON"),
    ("- a\n- b\n", "--sat-config sat.yaml holds a list or a single value, not a mapping of settings"),
    ("model:\n  network_config:\n    params:\n      num_frames: many\n",
     "--sat-config sat.yaml: invalid literal for int() with base 10: 'many'; num_frames, latent_height"),
])
def test_convert_sat_names_a_bad_sat_config(tmp_path, text, message):
    (tmp_path / "sat.yaml").write_text(text)
    before = files(tmp_path)
    result = cli("convert-sat", "ckpt", "--sat-config", "sat.yaml", "--out", "converted", cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """A scene folder as `recon` writes it: five splats and one camera."""
    import json

    import numpy as np
    import torch

    from dimensionx.splats.export import write_ply

    folder = tmp_path_factory.mktemp("scene")
    n = 5
    splats = {"means": torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), "scales": torch.full((n, 3), -2.0),
              "quats": torch.tensor([[1.0, 0, 0, 0]] * n), "opacities": torch.full((n,), 6.0),
              "sh0": torch.full((n, 1, 3), 0.5), "shN": torch.zeros(n, 0, 3)}
    write_ply(splats, folder / "point_cloud.ply")
    c2w = np.diag([1.0, -1.0, -1.0, 1.0])
    c2w[:3, 3] = [0, 0, -4]
    frame = {"file_path": "f.png", "fl_x": 60, "fl_y": 60, "w": 64, "h": 48, "transform_matrix": c2w.tolist()}
    (folder / "transforms.json").write_text(json.dumps({"frames": [frame]}))
    return folder


def test_make_dataset_names_a_truncated_ply(scene, tmp_path):
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (scene / "point_cloud.ply").read_bytes()
    (cut / "point_cloud.ply").write_bytes(data[:-50])  # the last splat's row is cut short
    (cut / "transforms.json").write_text((scene / "transforms.json").read_text())
    before = files(tmp_path)
    result = cli("make-dataset", "cut", "--out", "data", "--device", "cpu", cwd=tmp_path)
    assert_refused(result, "cut/point_cloud.ply is damaged or not a 3DGS PLY (PlyElementParseError: element 'vertex': "
                           "row 4: early end-of-file): re-run `dimensionx recon`", tmp_path, before)
