"""`dimensionx video` on the tiny model, as a user runs it: files, sidecar, errors, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dimensionx.atomic import file_sha256
from dimensionx.cli import main
from dimensionx.directors.lora import LORA_TARGETS, save_lora
from dimensionx.videofiles import read_frames

FAST = ["--model", "tiny", "--steps", "2", "--frames", "9", "--prompt", "a red barn in a field"]


def video(*args: str) -> int:
    return main(["video", *map(str, args)])


def frames_of(path: Path) -> np.ndarray:
    frames, _ = read_frames(path)
    return frames.astype(np.int16)


def test_default_run_makes_49_frame_mp4_and_complete_sidecar(photo, tmp_path):
    out = tmp_path / "barn.mp4"
    assert video(photo, "--model", "tiny", "--motion", "orbit_left", "--steps", "2", "--out", out) == 0

    frames, fps = read_frames(out)
    assert frames.shape == (49, 64, 96, 3) and fps == 8
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["config"]["motion"] == "orbit_left" and sidecar["config"]["seed"] == 42
    assert sidecar["config"]["guidance"] == 6.0 and sidecar["config"]["dynamic_cfg"] is True
    assert sidecar["model"]["id"] == "tiny" and Path(sidecar["model"]["model_path"], "model_index.json").is_file()
    (director,) = sidecar["directors"]
    assert director["name"] == "orbit_left" and director["multiplier"] == pytest.approx(1 / director["rank"])
    assert len(director["sha256"]) == 64 and Path(director["file"]).is_file()
    assert sidecar["scheduler"]["class"] == "CogVideoXDPMScheduler" and sidecar["scheduler"]["timestep_spacing"] == "trailing"
    assert sidecar["video"] == {"frames": 49, "height": 64, "width": 96, "fps": 8, "sha256": file_sha256(out)}
    assert {"load", "fuse", "denoise", "decode"} <= set(sidecar["seconds"])
    assert {"torch", "diffusers", "transformers", "peft", "dimensionx"} <= set(sidecar["versions"])


def test_sidecar_reproduces_the_same_frames(photo, tmp_path):
    first = tmp_path / "first.mp4"
    assert video(photo, *FAST, "--motion", "orbit_left:0.6,z_zoom_in:0.4", "--seed", "7", "--out", first) == 0
    again = tmp_path / "again.mp4"
    assert video("--config", first.with_suffix(".json"), "--out", again) == 0
    assert np.array_equal(frames_of(first), frames_of(again))
    a, b = (json.loads(p.with_suffix(".json").read_text()) for p in (first, again))
    assert a["directors"] == b["directors"] and a["config"]["seed"] == b["config"]["seed"] == 7

    other_seed = tmp_path / "other.mp4"
    assert video("--config", first.with_suffix(".json"), "--seed", "8", "--out", other_seed) == 0
    assert not np.array_equal(frames_of(first), frames_of(other_seed))


def write_lora(model_dir: Path, path: Path, zero_b: bool) -> Path:
    from diffusers import CogVideoXTransformer3DModel

    transformer = CogVideoXTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.endswith(LORA_TARGETS):
            out_features, in_features = module.weight.shape
            tensors[f"{name}.lora_A.weight"] = torch.randn(8, in_features, generator=generator)
            tensors[f"{name}.lora_B.weight"] = torch.zeros(out_features, 8) if zero_b else torch.randn(out_features, 8, generator=generator)
    save_lora(tensors, path)
    return path


def test_zero_lora_keeps_frames_and_random_lora_changes_them(photo, tmp_path, tiny_model_dir):
    base = tmp_path / "base.mp4"
    assert video(photo, *FAST, "--motion", "none", "--out", base) == 0
    zero = tmp_path / "zero.mp4"
    assert video(photo, *FAST, "--lora", write_lora(tiny_model_dir, tmp_path / "zero.safetensors", True), "--out", zero) == 0
    moved = tmp_path / "moved.mp4"
    assert video(photo, *FAST, "--lora", write_lora(tiny_model_dir, tmp_path / "rand.safetensors", False), "--out", moved) == 0

    assert np.array_equal(frames_of(base), frames_of(zero))
    assert np.abs(frames_of(base) - frames_of(moved)).mean() > 1.0
    assert json.loads(zero.with_suffix(".json").read_text())["directors"][0]["name"] == "custom:zero"


def test_lora_with_motion_replaces_that_directors_file(photo, tmp_path, tiny_model_dir):
    out = tmp_path / "x.mp4"
    lora = write_lora(tiny_model_dir, tmp_path / "mine.safetensors", False)
    assert video(photo, *FAST, "--motion", "orbit_right", "--lora", lora, "--out", out) == 0
    (director,) = json.loads(out.with_suffix(".json").read_text())["directors"]
    assert director["name"] == "orbit_right" and Path(director["file"]) == lora.resolve()


def test_lora_dir_finds_directors_by_name(photo, tmp_path, tiny_model_dir):
    folder = tmp_path / "loras" / "orbit_left"
    folder.mkdir(parents=True)
    write_lora(tiny_model_dir, folder / "pytorch_lora_weights.safetensors", False)
    out = tmp_path / "x.mp4"
    assert video(photo, *FAST, "--motion", "orbit_left", "--lora-dir", tmp_path / "loras", "--out", out) == 0
    (director,) = json.loads(out.with_suffix(".json").read_text())["directors"]
    assert Path(director["file"]).parent.name == "orbit_left"


def test_existing_output_is_kept_without_overwrite(photo, tmp_path, capsys):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    assert video(photo, *FAST, "--motion", "pan_left", "--out", out) == 2
    assert out.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    assert video(photo, *FAST, "--motion", "pan_left", "--out", out, "--overwrite") == 0
    assert read_frames(out)[0].shape[0] == 9


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: (d / "notes.png").write_text("not an image") and d / "notes.png", "cannot be read as an image"),
        (lambda d: Image.new("RGB", (40, 30)).save(d / "small.png") or d / "small.png", "at least 64 px"),
    ],
    ids=["missing", "non-image", "tiny-image"],
)
def test_bad_images_fail_before_any_model_loads(tmp_path, capsys, monkeypatch, make, message):
    import dimensionx.video.generator as generate

    monkeypatch.setattr(generate, "resolve_model", lambda *_: pytest.fail("model loaded for a bad image"))
    assert video(make(tmp_path), *FAST, "--motion", "orbit_left", "--out", tmp_path / "x.mp4") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_unknown_motion_suggests_names(photo, tmp_path, capsys):
    assert video(photo, *FAST, "--motion", "orbit_lft", "--out", tmp_path / "x.mp4") == 2
    err = capsys.readouterr().err
    assert "unknown motion 'orbit_lft'" in err and "orbit_left" in err


def test_missing_weights_offline_names_the_download_command(photo, tmp_path, capsys):
    assert video(photo, "--motion", "orbit_left", "--out", tmp_path / "x.mp4") == 2
    err = capsys.readouterr().err
    assert "hf download ShuoChen20/DimensionX_4_orbit_camera_lora" in err and "--lora-dir DIR" in err
    assert video(photo, "--model", "THUDM/CogVideoX-5b-I2V", "--motion", "none", "--out", tmp_path / "x.mp4") == 2
    err = capsys.readouterr().err
    assert "hf download THUDM/CogVideoX-5b-I2V" in err and "--model DIR" in err
    assert not (tmp_path / "x.mp4").exists()


def test_bad_frame_count_and_yaml_preset(photo, tmp_path, capsys):
    assert video(photo, *FAST, "--motion", "orbit_left", "--frames", "10", "--out", tmp_path / "x.mp4") == 2
    assert "4k+1" in capsys.readouterr().err
    preset = tmp_path / "preset.yaml"
    preset.write_text("model: tiny\nsteps: 1\nframes: 5\nmotion: y_up\nseed: 3\nfps: 4\n")
    out = tmp_path / "p.mp4"
    assert video(photo, "--config", preset, "--fps", "6", "--out", out) == 0
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert (config["motion"], config["frames"], config["fps"], config["steps"]) == ("y_up", 5, 6, 1)
    preset.write_text("stepz: 3\n")
    assert video(photo, "--config", preset, "--out", tmp_path / "q.mp4") == 2
    assert "stepz" in capsys.readouterr().err


def test_batch_keeps_going_past_a_bad_line(photo, tmp_path, caplog):
    batch = tmp_path / "batch.txt"
    batch.write_text(f"{photo}@@a barn@@orbit_left\nmissing.png@@nothing\n{photo.name}@@same photo, relative path@@time\n")
    out_dir = tmp_path / "videos"
    assert video("--batch", batch, *FAST, "--out", out_dir) == 1
    written = sorted(p.name for p in out_dir.glob("*.mp4"))
    assert written == ["0001_photo_orbit_left.mp4", "0003_photo_time.mp4"]
    assert "batch line 2 skipped: input image missing.png does not exist" in caplog.text
    # Swapping orbit_left for time inside the batch restores the base weights exactly.
    single = tmp_path / "single_time.mp4"
    assert video(photo, *FAST, "--prompt", "same photo, relative path", "--motion", "time", "--out", single) == 0
    assert np.array_equal(frames_of(out_dir / "0003_photo_time.mp4"), frames_of(single))


def test_console_script_and_motions_listing():
    listing = subprocess.run(["dimensionx", "motions", "--model", "tiny"], capture_output=True, text=True, check=True).stdout
    for name in ("pan_rotation_left", "z_zoom_out", "orbit_down", "time"):
        assert name in listing
    assert "ShuoChen20/DimensionX_4_orbit_camera_lora" in listing and "not found locally" not in listing
    offline = subprocess.run(["dimensionx", "motions"], capture_output=True, text=True, check=True).stdout
    assert offline.count("not found locally") == 17


def test_inference_py_keeps_the_original_flags(photo, tmp_path, tiny_model_dir):
    lora = write_lora(tiny_model_dir, tmp_path / "orbit_left_lora_weights.safetensors", False)
    out = tmp_path / "output.mp4"
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "inference.py"), "--lora_path", str(lora), "--image_path", str(photo),
         "--prompt", "a barn", "--model", "tiny", "--steps", "2", "--frames", "9", "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    assert read_frames(out)[0].shape == (9, 64, 96, 3)
    # a log, not a terminal: no nested loading bars moving the cursor up, no mode notice, full paths written
    assert "\x1b[A" not in done.stderr and "Loading pipeline components" not in done.stderr
    assert "needs a CUDA GPU" not in done.stderr
    assert f"wrote {out} (9 frames, 96x64) and {out.with_suffix('.json')}" in done.stderr
    assert json.loads(out.with_suffix(".json").read_text())["directors"][0]["file"] == str(lora.resolve())


def test_local_model_folder_and_hub_cache_lookup(photo, tmp_path, tiny_model_dir, monkeypatch):
    """`--model DIR` loads through the same from_pretrained path; directors are found in the HF cache layout."""
    cache = tmp_path / "hf"
    snapshot = cache / "models--ShuoChen20--DimensionX_4_orbit_camera_lora" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--ShuoChen20--DimensionX_4_orbit_camera_lora" / "refs").mkdir()
    (cache / "models--ShuoChen20--DimensionX_4_orbit_camera_lora" / "refs" / "main").write_text("0" * 40)
    write_lora(tiny_model_dir, snapshot / "orbit_up_lora_weights.safetensors", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    out = tmp_path / "local.mp4"
    assert video(photo, "--model", tiny_model_dir, "--motion", "orbit_up", "--steps", "2", "--frames", "5", "--out", out) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert Path(sidecar["model"]["model_path"]) == tiny_model_dir.resolve()
    assert Path(sidecar["directors"][0]["file"]).parent == snapshot.resolve()
    assert video(photo, "--model", tmp_path, "--motion", "orbit_up", "--out", tmp_path / "y.mp4") == 2
