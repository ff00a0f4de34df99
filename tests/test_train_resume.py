"""Resume in the middle of an epoch, with gradient accumulation: the resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dimensionx.cli import main
from dimensionx.outputs import OUTPUT_MARKER
from dimensionx.videofiles import write_video

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--pre-encode", "--micro-batch", "1"]


def write_distinct_clips(root: Path, count: int, frames: int = 13) -> Path:
    """``count`` 96x64 clips of a disc at a different height each (any two differ), and metadata.csv."""
    (root / "videos").mkdir(parents=True)
    t = np.arange(frames)[:, None, None]
    y, x = np.mgrid[0:64, 0:96]
    rows = []
    for k in range(count):
        disc = (x - 20 - 6 * t) ** 2 + (y - 12 - 12 * k) ** 2 < 80  # [T, 64, 96]
        rgb = np.stack([disc * 255, np.broadcast_to(x * 2, disc.shape), np.full(disc.shape, 40 * k)], -1)
        write_video(rgb.astype(np.uint8), root / "videos" / f"clip{k}.mp4", 8)
        rows.append(f"videos/clip{k}.mp4,a red disc on row {k}\n")
    (root / "metadata.csv").write_text("video,caption\n" + "".join(rows))
    return root


def train(data: Path, out: Path, *flags: str) -> None:
    assert main(["train", *TINY, "--data", str(data), "--output-dir", str(out), *flags]) == 0


def resumed_from(run: Path, step: int, data: Path, out: Path, *flags: str) -> None:
    """A fresh run folder holding only ``run``'s checkpoint of ``step``, trained on to the end."""
    checkpoint = f"step_{step:06d}"
    shutil.copytree(run / "checkpoints" / checkpoint, out / "checkpoints" / checkpoint)
    shutil.copy(run / OUTPUT_MARKER, out)  # a run folder: --resume continues only a folder train made
    train(data, out, *flags, "--resume")


def assert_same_lora(expected_run: Path, got_run: Path) -> None:
    expected = load_file(expected_run / "pytorch_lora_weights.safetensors")
    got = load_file(got_run / "pytorch_lora_weights.safetensors")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"resumed LoRA differs from the uninterrupted run in {len(different)} tensors, e.g. {different[0]}"


def logged_losses(run: Path) -> dict[int, float]:
    return {line["step"]: line["loss"] for line in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())}


@pytest.mark.parametrize(
    "clips, accumulation, steps, resume_at",
    [
        (4, 2, 4, 3),  # 4 micro-batches an epoch, 2 steps an epoch: step 3 ends in the middle of epoch 1
        (3, 2, 4, 3),  # 3 micro-batches: steps of 2, then 1 (the epoch's end closes a step); step 3 is epoch 1's first
    ],
    ids=["accumulation-divides-epoch", "epoch-end-closes-a-short-step"],
)
def test_resume_in_the_middle_of_an_epoch_matches_an_uninterrupted_run(tmp_path, clips, accumulation, steps, resume_at):
    data = write_distinct_clips(tmp_path / "clips", clips)
    flags = ["--grad-accumulation", str(accumulation), "--max-steps", str(steps), "--checkpoint-every", str(resume_at)]
    train(data, tmp_path / "full", *flags)
    resumed_from(tmp_path / "full", resume_at, data, tmp_path / "resumed", *flags)
    assert_same_lora(tmp_path / "full", tmp_path / "resumed")
    full, resumed = logged_losses(tmp_path / "full"), logged_losses(tmp_path / "resumed")
    assert sorted(resumed) == list(range(resume_at + 1, steps + 1))
    assert all(resumed[s] == pytest.approx(full[s], rel=1e-6) for s in resumed), "the resumed steps saw other batches"
