"""CFG-parallel (`--gpus 2`): two processes (gloo on CPU) give the frames of one process."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dimensionx.cli import main
from dimensionx.videofiles import read_frames

FAST = ["--model", "tiny", "--steps", "3", "--frames", "9", "--prompt", "a barn", "--motion", "orbit_left", "--device", "cpu"]


def test_two_processes_make_the_frames_of_one(photo, tmp_path):
    single, split = tmp_path / "single.mp4", tmp_path / "split.mp4"
    assert main(["video", str(photo), *FAST, "--out", str(single)]) == 0
    assert main(["video", str(photo), *FAST, "--gpus", "2", "--out", str(split)]) == 0

    a, b = (read_frames(p)[0].astype(np.int16) for p in (single, split))
    assert a.shape == b.shape == (9, 64, 96, 3)
    assert np.abs(a - b).max() <= 2  # same noise, same scheduler; only batch-1 vs batch-2 matmul rounding may differ
    assert json.loads(split.with_suffix(".json").read_text())["processes"] == 2


class Recorder(torch.nn.Module):
    """Stands in for the transformer: records the batch it sees, returns a per-sample function of it."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, hidden_states, encoder_hidden_states, timestep, return_dict=False):
        self.batches.append(hidden_states.shape[0])
        return (hidden_states * 2 + encoder_hidden_states.mean() + timestep.view(-1, 1),)


def _worker(rank: int, store: str, results) -> None:
    from dimensionx.video.parallel import enable_cfg_parallel

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    module = Recorder()
    enable_cfg_parallel(module)
    hidden = torch.arange(8.0).view(2, 4)  # [uncond, cond]
    text = torch.ones(2, 3)
    out = module(hidden_states=hidden, encoder_hidden_states=text, timestep=torch.tensor([5.0, 5.0]))[0]
    results[rank] = (module.batches, out)
    dist.destroy_process_group()


def test_each_process_runs_one_branch_and_gathers_both(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "store"), results), nprocs=2, join=True)
    expected = torch.arange(8.0).view(2, 4) * 2 + 1 + 5
    for rank in (0, 1):
        batches, out = results[rank]
        assert batches == [1]
        torch.testing.assert_close(out, expected)
