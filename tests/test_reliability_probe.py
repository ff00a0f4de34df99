"""Bad inputs found by a probe of every command and flag beyond issue #31's list (docs/reliability.md, "Probe"),
through the real CLI: one line naming the input, the problem and the fix, exit 2, nothing written or replaced."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_reliability import FAST_VIDEO, assert_refused, cli, files, work  # noqa: F401 - work is a fixture
from test_reliability_train import TINY_TRAIN, clips  # noqa: F401 - clips is a fixture
from test_reliability_train import scene as recon_scene  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ["--device", "cpu", "--motion", "orbit_left", *FAST_VIDEO]
TINY_4D = ["--config", ROOT / "configs" / "fourd_tiny.yaml", "--out", "scene"]
HOLDOUT_RULE = "pass K >= 2 to hold out every K-th frame or view for evaluation, or 0 to hold out none"  # recon's and scene4d's


# ---- video ------------------------------------------------------------------------------------

def test_an_empty_image_file_is_named(work):
    (work / "empty.png").write_bytes(b"")
    before = files(work)
    result = cli("video", "empty.png", *VIDEO, "--out", "clip.mp4", cwd=work)
    assert_refused(result, "input image empty.png cannot be read as an image (UnidentifiedImageError: the file is "
                           "empty (0 bytes))", work, before)


def test_an_empty_first_frame_of_a_frame_folder_is_named(work):
    (work / "frames").mkdir()
    (work / "frames" / "f0.png").write_bytes(b"")
    for i in (1, 2, 3):
        (work / "frames" / f"f{i}.png").write_bytes((work / "photo.png").read_bytes())
    before = files(work)
    result = cli("recon", "frames", "--out", "scene", "--device", "cpu", cwd=work)
    assert_refused(result, "frame frames/f0.png cannot be read as an image (UnidentifiedImageError: the file is empty",
                   work, before)


def test_a_model_name_that_is_no_folder_nor_hub_id_is_named(work):
    before = files(work)
    result = cli("video", "photo.png", *VIDEO, "--model", "nosuchdir/", "--out", "clip.mp4", cwd=work)
    assert_refused(result, "--model nosuchdir/ is neither an existing folder nor a hub id of the form owner/name", work, before)


def test_a_symlink_as_out_is_not_replaced_without_overwrite(work):
    os.symlink(work / "elsewhere" / "clip.mp4", work / "link.mp4")  # the user's link, to a folder not made yet
    before = files(work)
    result = cli("video", "photo.png", *VIDEO, "--out", "link.mp4", cwd=work)
    assert_refused(result, "link.mp4 already exists: pass --overwrite to replace it", work, before)
    assert os.readlink(work / "link.mp4") == str(work / "elsewhere" / "clip.mp4")


@pytest.mark.parametrize("batch, out, message", [
    (b"\xff\xfe\x00photo.png@@a photo\n", "videos", "--batch lines.txt is not a text file (invalid start byte at byte 0)"),
    (b"photo.png@@a photo\n", "photo.png", "with --batch, --out is a folder for all the videos, not the file photo.png"),
])
def test_a_batch_file_that_is_no_text_or_an_out_that_is_a_file_is_refused(work, batch, out, message):
    (work / "lines.txt").write_bytes(batch)
    before = files(work)
    result = cli("video", "--batch", "lines.txt", *VIDEO, "--out", out, cwd=work)
    assert_refused(result, message, work, before)


SIZE_LIMIT = "the file reached this process's file-size limit (`ulimit -f`); raise the limit (`ulimit -f unlimited`), then "


def under_size_limit(limit: int | None, *args, cwd: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI with a file-size limit of ``limit`` bytes (`ulimit -f`; None: none) and, if given, the model cache ``cache``."""
    setlimit = None if limit is None else lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, preexec_fn=setlimit, env={**os.environ, **({"DIMENSIONX_CACHE": str(cache)} if cache else {})})


def test_an_mp4_cut_by_the_file_size_limit_is_not_published(work, tiny_model_dir):
    """imageio-ffmpeg never reads ffmpeg's exit status: a limit (`ulimit -f`) reached while encoding left a cut mp4
    and a sidecar naming it, with exit 0."""
    before = files(work)
    result = under_size_limit(4000, "video", "photo.png", *VIDEO, "--motion", "none", "--out", "clip.mp4", cwd=work)  # the mp4: ~18 kB
    assert_refused(result, f"cannot write clip.mp4: {SIZE_LIMIT}run the command again", work, before)


def test_a_first_build_of_the_tiny_model_under_a_file_size_limit_is_one_line_and_leaves_none_of_it(work, tmp_path):
    """Its writers raise their own types for EFBIG (tokenizers' `Exception`, `SafetensorError`): a traceback. A 4 kB
    limit stops tokenizer.json, 200 kB the transformer's safetensors (336 kB); then a run without a limit builds it."""
    cache = tmp_path / "cache"
    before = files(work)
    for limit in (4000, 200_000):
        result = under_size_limit(limit, "video", "photo.png", *VIDEO, "--motion", "none", "--out", "clip.mp4", cwd=work,
                                  cache=cache)
        assert_refused(result, f"cannot write {cache / 'tiny-v1' / 'CogVideoX-tiny-I2V'}: {SIZE_LIMIT}run the command "
                               "again", work, before)
        assert [path for path in cache.rglob("*") if not path.is_dir()] == []
    result = under_size_limit(None, "video", "photo.png", *VIDEO, "--motion", "none", "--out", "clip.mp4", cwd=work,
                              cache=cache)
    assert result.returncode == 0 and (work / "clip.mp4").is_file(), result.stderr[-2000:]


def test_a_first_build_of_the_tiny_directors_under_a_file_size_limit_is_one_line(work, tmp_path, tiny_model_dir):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_model_dir, cache / "tiny-v1" / tiny_model_dir.name)
    before = files(work)
    result = under_size_limit(5000, "video", "photo.png", *VIDEO, "--out", "clip.mp4", cwd=work, cache=cache)  # each ~10 kB
    assert_refused(result, f"cannot write {cache / 'tiny-v1' / 'loras'}: {SIZE_LIMIT}run the command again", work, before)
    assert sorted(path.name for path in (cache / "tiny-v1").iterdir()) == [tiny_model_dir.name]


@pytest.mark.parametrize("limit", [5000, 20_000])  # the LoRA's safetensors (~10 kB), torch.save's optimizer.bin (~30 kB)
def test_train_names_the_file_size_limit_met_while_checkpointing(work, clips, tiny_model_dir, limit):
    """safetensors' error names EFBIG only in its text, torch.save's not at all: train reported the disk's free space."""
    result = under_size_limit(limit, "train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--max-steps", 2,
                              "--checkpoint-every", 1, cwd=work)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert error == [f"dimensionx train: error: cannot write checkpoint run/checkpoints/step_000001: {SIZE_LIMIT}run "
                     "the command again"], result.stderr[-2000:]  # no checkpoint to resume from: the run folder is gone
    assert not (work / "run").exists()


# ---- render4d: flags checked before the scene loads --------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--out", "r.mp4", "--device", "tpu"], "--device tpu is unknown: pass auto, cuda, cuda:N or cpu"),
    (["--out", "r.mp4", "--fps", "100000"], "--fps 100000: frames per second must be from 1 to 240"),
    (["--out", "r.mp4", "--frames", "100000000"], "--frames 100000000: a video of 1 to 3600 frames"),
    (["--export", "ex", "--frames", "100000000"], "--frames 100000000: export 1 to 1000 times, one PLY each"),
])
def test_render4d_refuses_runaway_flags_before_the_scene_loads(work, flags, message):
    (work / "scene").mkdir()  # no scene in it: each flag is refused before the scene would be read
    before = files(work)
    result = cli("render4d", "scene", *flags, cwd=work)
    assert_refused(result, message, work, before)


# ---- scene4d: every number checked before the first video -------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps 0: use 1 to 1000"),
    (["--seed", "-1"], "--seed -1: use 0 to 9223372036854775807"),
    (["--time-frames", "100001"], "--time-frames 100001: every row and column of the grid is a CogVideoX video"),
    (["--gpus", "0"], "--gpus 0: 1 or more processes"),
    (["--iterations", "0"], "--iterations 0: the 4D fit needs at least 1 iteration"),
    (["--init-points", "-1"], "--init-points -1: 1 or more"),
    (["--render-frames", "100000000"], "--render-frames 100000000: a video of 1 to 3600 frames"),
    (["--config", "fps.yaml"], "render_fps 0: frames per second must be from 1 to 240 (default 12)"),
    (["--config", "half.yaml"], "invalid setting for FourDConfig in half.yaml: Value '0.5' of type 'float' could not be "
                                "converted to Integer"),  # whole frames per second, as the grid's videos
    (["--config", "holdout.yaml"], f"holdout 1: {HOLDOUT_RULE}"),
])
def test_scene4d_refuses_numbers_out_of_range_before_any_work(work, flags, message):
    (work / "fps.yaml").write_text(json.dumps({**{"model": "tiny", "device": "cpu"}, "render_fps": 0}))
    (work / "half.yaml").write_text(json.dumps({**{"model": "tiny", "device": "cpu"}, "render_fps": 0.5}))
    (work / "holdout.yaml").write_text(json.dumps({**{"model": "tiny", "device": "cpu"}, "holdout": 1}))
    before = files(work)
    result = cli("scene4d", "photo.png", *TINY_4D, *flags, cwd=work)
    assert_refused(result, message, work, before)


def test_scene4d_names_a_photo_that_is_no_image_before_making_the_scene_folder(work):
    (work / "notes.png").write_text("not an image")
    before = files(work)
    result = cli("scene4d", "notes.png", *TINY_4D, cwd=work)
    assert_refused(result, "input image notes.png cannot be read as an image", work, before)


# ---- recon, scene3d, make-dataset, orbit ----------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed -1: use 0 to 9223372036854775807"),
    (["--orbit-degrees", "nan"], "--orbit-degrees nan: the orbit's sweep in degrees, more than 0 and at most 720"),
    (["--max-size", "-1"], "--max-size -1: 0 or more"),
    (["--max-gaussians", "-1"], "--max-gaussians -1: 0 or more"),
    (["--orbit-frames", "100000000"], "--orbit-frames 100000000: 0 (no orbit video) to 3600"),
    (["--iterations", "1000000000000"], "--iterations 1000000000000: at most 1000000"),
    (["--config", "nan.yaml"], "lr_means nan: a finite number, 0 or more, is needed here"),
    (["--config", "sift.yaml"], "sift_max_features 0: 1 or more"),
    (["--config", "fps.yaml"], "orbit_fps 0.0: frames per second must be more than 0 and at most 240 (default 30)"),
    (["--holdout", "1"], f"--holdout 1: {HOLDOUT_RULE}"),
])
def test_recon_refuses_numbers_out_of_range_before_reading_the_video(work, flags, message):
    (work / "nan.yaml").write_text("lr_means: .nan\n")
    (work / "sift.yaml").write_text("sift_max_features: 0\n")
    (work / "fps.yaml").write_text("orbit_fps: 0\n")
    before = files(work)
    result = cli("recon", "photo.png", "--out", "scene", "--device", "cpu", *flags, cwd=work)
    assert_refused(result, message, work, before)


def test_scene3d_refuses_a_reconstruction_setting_before_it_makes_the_video(work):
    """It used to make the video (minutes on a GPU), then refuse the setting and leave the video behind."""
    before = files(work)
    result = cli("scene3d", "photo.png", *VIDEO[:4], "--model", "tiny", "--steps", "1", "--video-frames", "9",
                 "--out", "scene", "--iterations", "0", cwd=work)
    assert_refused(result, "--iterations 0: training needs at least 1 iteration", work, before)


@pytest.fixture
def scene(work, recon_scene) -> Path:
    """A copy, in the working folder, of a recon scene folder (five splats and one camera)."""
    import shutil

    return Path(shutil.copytree(recon_scene, work / "scene"))


@pytest.mark.parametrize("flags, damage, message", [
    (["--seed", "-1"], None, "--seed -1: use a number from 0 to 9223372036854775807"),
    ([], '"fl_x": NaN', "scene/transforms.json is not a usable transforms.json (ValueError('a camera matrix, the focal "
                        "length or the width is not a finite positive number'))"),
])
def test_make_dataset_refuses_a_bad_seed_or_cameras_of_nan(work, scene, flags, damage, message):
    if damage:
        (scene / "transforms.json").write_text((scene / "transforms.json").read_text().replace('"fl_x": 60', damage))
    before = files(work)
    result = cli("make-dataset", "scene", "--out", "data", "--device", "cpu", "--motions", "orbit_left", "--clips", "1",
                 "--frames", "3", "--size", "32x24", *flags, cwd=work)
    assert_refused(result, message, work, before)


def test_orbit_names_a_damaged_model_config(work):
    (work / "model" / "transformer").mkdir(parents=True)
    (work / "model" / "transformer" / "config.json").write_text("{not json")
    before = files(work)
    result = cli("orbit", "photo.png", "--model", "model", "--device", "cpu", cwd=work)
    assert_refused(result, "--model model: model/transformer/config.json is damaged (JSONDecodeError: ", work, before)


@pytest.mark.parametrize("flags, message", [
    (["--session-ttl-minutes", "nan"], "--session-ttl-minutes nan: more than 0 and at most 525600 (the default is 120)"),
    (["--session-ttl-minutes", "-5"], "--session-ttl-minutes -5.0: more than 0"),
    (["--max-image-megapixels", "inf"], "--max-image-megapixels inf: more than 0 and at most 300"),
    (["--max-upload-mb", "0"], "--max-upload-mb 0.0: more than 0"),
])
def test_app_refuses_limits_out_of_range_before_it_serves(work, flags, message):
    """A negative lifetime served the page (every session folder swept at once); NaN ended in a traceback."""
    before = files(work)
    result = cli("app", "--model", "tiny", "--port", "0", "--share-dir", "share", *flags, cwd=work)
    assert_refused(result, message, work, before)


@pytest.mark.parametrize("flags, message", [
    (["--share-dir", "photo.png"], "--share-dir photo.png: photo.png is a file, not a folder"),
    (["--share-dir", "photo.png/sessions"], "--share-dir photo.png/sessions: photo.png is a file, not a folder"),
    (["--recon-config", "bad.yaml"], "config file bad.yaml has settings that ReconConfig does not know: steps"),
])
def test_app_refuses_a_share_dir_under_a_file_or_a_bad_stage_config_before_it_serves(work, flags, message):
    (work / "bad.yaml").write_text("steps: many\n")
    before = files(work)
    result = cli("app", "--model", "tiny", "--port", "0", *flags, cwd=work)
    assert_refused(result, message, work, before)
