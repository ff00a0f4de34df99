"""Every bad input of docs/reliability.md, through the real CLI: exit 2, the message, no traceback,
nothing written. Rows that need a loaded model or SfM are at the end of each section."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dimensionx.imagefiles import MAX_IMAGE_PIXELS
from dimensionx.videofiles import write_video

FAST_VIDEO = ["--model", "tiny", "--steps", "1", "--frames", "9"]
FAST_RECON = ["--max-size", "160", "--iterations", "30", "--orbit-frames", "6", "--no-progress"]
LORA_KEY = "transformer_blocks.0.attn1.to_q.lora_{}.weight"


def cli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_refused(result: subprocess.CompletedProcess, message: str, folder: Path, before: set[str]) -> None:
    """Exit 2, one error line naming the problem, no traceback, and no new file (output or temp) in ``folder``."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(error) == 1 and error[0].startswith("dimensionx "), result.stderr[-2000:]
    assert message in error[0], error[0]
    assert files(folder) == before


def png(path: Path, pixels: np.ndarray) -> Path:
    """Writes ``pixels`` ([H, W] or [H, W, 3|4], uint8 or uint16) as a PNG, byte by byte (Pillow
    cannot write 16-bit RGB)."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", w, h, depth, {1: 0, 3: 2, 4: 6}[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    return path


def huge_png_header(path: Path, side: int) -> Path:
    """A PNG whose header says ``side`` x ``side`` px: what a decoder sees before decoding anything."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture
def work(tmp_path, photo) -> Path:
    """The user's working folder: the photo and nothing else."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "photo.png").write_bytes(photo.read_bytes())
    return folder


def unwritable_folder(work: Path) -> Path:
    """A folder this process cannot write in (root ignores file modes: then /sys, read-only for it)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = work / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# ---- video: refused before any model loads -------------------------------------------------

def make_lora(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.safetensors"
    a, b = torch.randn(4, 16), torch.randn(16, 4)
    if kind == "corrupt":
        path.write_bytes(os.urandom(300))
    elif kind == "empty":
        save_file({}, path)
    elif kind == "one_d":
        save_file({LORA_KEY.format("A"): torch.randn(16), LORA_KEY.format("B"): b}, path)
    elif kind == "nan":
        a[1, 2] = float("nan")
        save_file({LORA_KEY.format("A"): a, LORA_KEY.format("B"): b}, path)
    elif kind == "pickle":
        path = folder / "director.pt"
        torch.save({LORA_KEY.format("A"): a, LORA_KEY.format("B"): b}, path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "is not a readable safetensors LoRA file"),
    ("empty", "holds no tensors"),
    ("one_d", "is damaged: 1 tensor(s) are not matrices"),
    ("nan", "is damaged: 1 tensor(s) hold NaN or infinite values (transformer_blocks.0.attn1.to_q.lora_A.weight)"),
    ("pickle", "is a PyTorch pickle (torch.save), not a safetensors file. Pickles can run code"),
])
def test_bad_lora_files_are_refused_by_name(work, kind, message):
    lora = make_lora(work, kind)
    before = files(work)
    result = cli("video", "photo.png", "--lora", lora.name, *FAST_VIDEO, cwd=work)
    assert_refused(result, f"{lora.name} {message}", work, before)


def test_pickle_message_says_how_to_convert(work):
    make_lora(work, "pickle")
    result = cli("video", "photo.png", "--lora", "director.pt", *FAST_VIDEO, cwd=work)
    assert "torch.load('director.pt', weights_only=True), 'director.safetensors'" in result.stderr


@pytest.mark.parametrize("make, message", [
    (lambda w: (w / "notes.png").write_text("not an image") and "notes.png", "notes.png cannot be read as an image"),
    (lambda w: Image.new("RGB", (1, 1)).save(w / "dot.png") or "dot.png", "is 1x1 px; the smallest side must be at least 64"),
    (lambda w: huge_png_header(w / "huge.png", 20000).name,
     f"huge.png is 20000x20000 px (400 Mpx), more than the {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit"),
    (lambda w: "missing.png", "input image missing.png does not exist"),
])
def test_bad_photos_are_refused(work, make, message):
    image = make(work)
    before = files(work)
    assert_refused(cli("video", image, "--motion", "none", *FAST_VIDEO, cwd=work), message, work, before)


@pytest.mark.parametrize("flags, message", [
    (["--motion", "orbit_lef"], "unknown motion 'orbit_lef'"),
    (["--motion", "orbit_left:abc"], "weight 'abc' of orbit_left is not a number"),
    (["--motion", "orbit_left:nan"], "weight nan of orbit_left must be a finite number >= 0"),
    (["--motion", "orbit_left:inf,z_zoom_in"], "weight inf of orbit_left must be a finite number >= 0"),
    (["--motion", "orbit_left:-0.5"], "weight -0.5 of orbit_left must be a finite number >= 0"),
    (["--motion", "none", "--frames", "50"], "--frames 50: CogVideoX makes 4k+1 frames"),
    (["--motion", "none", "--steps", "0"], "--steps 0: use 1 to 1000"),
    (["--motion", "none", "--guidance", "-5"], "--guidance -5.0: the guidance scale must be >= 0"),
    (["--motion", "none", "--guidance", "51"], "--guidance 51.0: at most 50"),
    (["--motion", "none", "--seed", "-1"], "--seed -1: use 0 to 9223372036854775807"),
    (["--motion", "none", "--seed", str(2**63)], f"--seed {2**63}: use 0 to"),
    (["--motion", "orbit_left", "--lora-scale", "nan"], "--lora-scale nan: a multiplier of B@A from 0 to 10"),
    (["--motion", "orbit_left", "--lora-scale", "11"], "--lora-scale 11.0: a multiplier of B@A from 0 to 10"),
    (["--motion", "none", "--gpus", "0"], "--gpus 0: CFG-parallel splits the two guidance branches"),
    (["--motion", "none", "--out", "myvideo"], "name the file *.mp4"),
    ([], "no director chosen"),
])
def test_bad_flags_are_refused(work, flags, message):
    before = files(work)
    assert_refused(cli("video", "photo.png", *FAST_VIDEO, *flags, cwd=work), message, work, before)


def test_existing_video_is_kept_and_folder_out_refused(work):
    (work / "clip.mp4").write_bytes(b"my video")
    (work / "renders").mkdir()
    before = files(work)
    result = cli("video", "photo.png", "--motion", "none", "--out", "clip.mp4", *FAST_VIDEO, cwd=work)
    assert_refused(result, "clip.mp4 already exists: pass --overwrite", work, before)
    result = cli("video", "photo.png", "--motion", "none", "--out", "renders", "--overwrite", *FAST_VIDEO, cwd=work)
    assert_refused(result, "renders is a folder", work, before)
    assert (work / "clip.mp4").read_bytes() == b"my video"


def test_unwritable_out_folder_is_refused_before_models_load(work):
    folder = unwritable_folder(work)
    before = files(work)
    result = cli("video", "photo.png", "--motion", "none", "--out", folder / "clip.mp4", *FAST_VIDEO, cwd=work)
    assert_refused(result, f"cannot write {folder / 'clip.mp4'}: {folder} is not writable", work, before)


def test_missing_base_model_and_director_are_named_together(work, tmp_path):
    empty_cache = tmp_path / "hf-empty"
    empty_cache.mkdir()
    before = files(work)
    result = cli("video", "photo.png", "--model", "someone/cogvideox-missing", "--motion", "orbit_left", cwd=work,
                 env={"HF_HOME": str(empty_cache), "HF_HUB_OFFLINE": "1"})
    assert_refused(result, "2 things are missing: (1) the orbit_left director LoRA", work, before)
    assert "(2) model weights (someone/cogvideox-missing) not found in the local Hugging Face cache" in result.stderr


def test_lora_for_another_model_is_refused_after_loading(work):
    path = work / "other.safetensors"
    save_file({LORA_KEY.format("A"): torch.randn(4, 3072), LORA_KEY.format("B"): torch.randn(3072, 4)}, path)
    before = files(work)
    result = cli("video", "photo.png", "--lora", path.name, *FAST_VIDEO, cwd=work)
    assert_refused(result, "does not fit this model", work, before)


def test_batch_reduces_a_huge_photo_and_skips_one_beyond_the_limit(work):
    """16000 x 16000 px (256 Mpx, flat) is reduced and made; 20000 x 20000 px is skipped by name; the rest go on,
    large palette and 1-bit photos too (reduced after conversion: Pillow reduces neither mode)."""
    Image.new("RGB", (16000, 16000), (90, 140, 200)).save(work / "big.png", compress_level=1)
    huge_png_header(work / "huge.png", 20000)
    Image.new("CMYK", (120, 80), (0, 120, 200, 10)).save(work / "cmyk.jpg")
    Image.new("RGBA", (120, 80), (255, 0, 0, 128)).save(work / "rgba.png")
    png(work / "grey16.png", np.full((80, 120), 0x8000, np.uint16))
    Image.new("RGB", (4200, 4200), (200, 30, 30)).quantize(4).save(work / "palette.png")  # 17.6 Mpx, reduced as read
    Image.new("1", (4200, 4200), 1).save(work / "bits.png")
    (work / "lines.txt").write_text("big.png@@a sky\nhuge.png@@a sky\ncmyk.jpg@@x\nrgba.png@@x\ngrey16.png@@x\n"
                                    "palette.png@@x\nbits.png@@x\n")
    result = cli("video", "--batch", "lines.txt", "--motion", "none", "--out", "videos", *FAST_VIDEO, cwd=work)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "batch line 2 skipped: input image" in result.stderr and "more than the 300 Mpx limit" in result.stderr
    made = sorted(p.name for p in (work / "videos").glob("*.mp4"))
    assert made == ["0001_big_none.mp4", "0003_cmyk_none.mp4", "0004_rgba_none.mp4", "0005_grey16_none.mp4",
                    "0006_palette_none.mp4", "0007_bits_none.mp4"]
    assert not [p for p in (work / "videos").iterdir() if p.name.startswith(".")]


# ---- no H.264 encoder: every command that writes an mp4 says so before it computes anything ----

@pytest.fixture
def no_encoder(tmp_path) -> dict:
    """Environment of a Python where neither imageio-ffmpeg nor PyAV can be imported."""
    stubs = tmp_path / "stubs"
    for name in ("imageio_ffmpeg", "av"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(stubs), os.environ.get("PYTHONPATH")]))}


def test_commands_that_write_mp4s_are_refused_without_an_encoder(work, no_encoder):
    fix = "has no H.264 encoder: pip install imageio-ffmpeg (or PyAV built with libx264)"
    (work / "scene3d_out").mkdir()
    for name in ("point_cloud.ply", "transforms.json"):
        (work / "scene3d_out" / name).write_text("")
    before = files(work)
    for args, message in [
        (["video", "photo.png", "--motion", "none", "--out", "clip.mp4", *FAST_VIDEO], "--out clip.mp4 is an H.264 mp4 and this Python " + fix),
        (["orbit", "photo.png", "--model", "tiny-orbit", "--steps", "1", "--out", "orbit.mp4"], "--out orbit.mp4 is an H.264 mp4"),
        (["scene3d", "photo.png", "--motion", "orbit_left", "--model", "tiny", "--out", "scene"], "the generated video is an H.264 mp4"),
        (["scene4d", "photo.png", "--model", "tiny", "--out", "flag4d"], "each video of the grid is an H.264 mp4"),
        (["render4d", "flag4d", "--out", "frozen.mp4"], "--out frozen.mp4 is an H.264 mp4"),
        (["make-dataset", "scene3d_out", "--out", "data"], "each clip is an H.264 mp4"),
        (["recon", "missing.mp4", "--out", "scene"], "renders/orbit.mp4 is an H.264 mp4 and this Python " + fix
         + ", or pass --orbit-frames 0 to skip it"),
        (["recon", "missing.mp4", "--out", "scene", "--orbit-frames", "0"], "missing.mp4 does not exist"),  # the way round
    ]:
        assert_refused(cli(*args, cwd=work, env=no_encoder), message, work, before)


# ---- recon --------------------------------------------------------------------------------

def textured_frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 96, 128, 3), dtype=np.uint8)


def test_recon_bad_inputs_are_refused(work):
    (work / "empty").mkdir()
    mixed = work / "mixed"
    mixed.mkdir()
    for i, frame in enumerate(textured_frames(5)):
        Image.fromarray(frame).save(mixed / f"frame_{i:03d}.png")
    (mixed / "frame_002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_video(textured_frames(2), work / "two.mp4", fps=8)
    before = files(work)
    for args, message in [
        (["missing.mp4"], "missing.mp4 does not exist"),
        (["empty"], "empty holds no images"),
        (["mixed"], f"frame {Path('mixed') / 'frame_002.png'} cannot be read as an image"),
        (["two.mp4"], "two.mp4 has 2 frame(s): reconstruction needs at least 3 views"),
        (["two.mp4", "--iterations", "0"], "--iterations 0: training needs at least 1 iteration"),
    ]:
        assert_refused(cli("recon", "--out", "scene", *FAST_RECON, *args, cwd=work), message, work, before)


def test_recon_unwritable_out_is_refused(work):
    write_video(textured_frames(4), work / "clip.mp4", fps=8)
    folder = unwritable_folder(work)
    before = files(work)
    result = cli("recon", "clip.mp4", "--out", folder / "scene", *FAST_RECON, cwd=work)
    assert_refused(result, f"{folder} is not writable", work, before)


@pytest.mark.parametrize("name, frames", [
    ("static", np.repeat(textured_frames(1), 12, axis=0)),
    ("unrelated", textured_frames(12)),
])
def test_recon_without_a_camera_path_fails_with_the_sfm_error(work, name, frames):
    write_video(frames, work / f"{name}.mp4", fps=8)
    before = files(work)
    result = cli("recon", f"{name}.mp4", "--out", "scene", *FAST_RECON, cwd=work)
    assert_refused(result, "structure from motion registered only", work, before)


def test_scene3d_keeps_the_generated_video_when_sfm_fails(work):
    from dimensionx.directors.tiny import tiny_lora_dir

    lora = tiny_lora_dir() / "orbit_left_lora_weights.safetensors"  # a file alone: no known cameras, so SfM meets noise
    before = files(work)
    result = cli("scene3d", "photo.png", "--motion", "none", "--lora", lora, "--model", "tiny", "--steps", "1",
                 "--video-frames", "9", "--out", "scene", *FAST_RECON, cwd=work)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    kept = work / "scene.video.mp4"
    assert f"The generated video is kept as {kept.relative_to(work)}" in result.stderr
    assert "dimensionx recon scene.video.mp4 --out scene" in result.stderr
    assert files(work) == before | {"scene.video.mp4", "scene.video.json"}
    assert json.loads(kept.with_suffix(".json").read_text())["config"]["lora"] == str(lora)
