"""The 4D grid's bookkeeping without a model: which frame each row is made from, which row is the key,
the times the rows stand for, and how ``--gpus N`` shares and gathers the groups of videos.

The denoising is stood in for by functions that return their input frame as a "spatial video", so
each row of the grid can be traced back to the T-Director frame it came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dimensionx.fourd import grid
from dimensionx.fourd.config import FourDConfig
from dimensionx.fourd.grid import generate_rows, pick_times, time_values
from dimensionx.fourd.shard import Shard

CONFIG = FourDConfig(time_frames=17, times=5, views=3, batch=2)  # rows from frames 0, 4, 8, 12, 16


class Decoder:
    """The generator's decode: the stand-in latents are already frames."""

    @staticmethod
    def decode(latents: np.ndarray) -> np.ndarray:
        return latents[0]


def spatial_video(image) -> np.ndarray:
    """[views, H, W, 3]: the frame seen from every view (its view index in pixel (0, 0))."""
    frames = np.repeat(np.asarray(image)[None], CONFIG.views, axis=0)
    frames[:, 0, 0, 0] = np.arange(CONFIG.views)
    return frames


@pytest.fixture
def no_model(monkeypatch):
    for name in ("use_director", "text_inputs", "initial_noise"):
        monkeypatch.setattr(grid, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(grid, "denoise", lambda generator, image, *args: spatial_video(image)[None])
    monkeypatch.setattr(grid, "identity_preserving", lambda generator, images, *args: [spatial_video(i) for i in images])


def temporal_video(moving: int) -> np.ndarray:
    """[17, 8, 8, 3]: frame t carries t in pixel (1, 1); only frame ``moving`` has an object (a bright square)."""
    frames = np.zeros((CONFIG.time_frames, 8, 8, 3), np.uint8)
    frames[:, 1, 1, 0] = np.arange(CONFIG.time_frames)
    frames[moving, 4:, 4:] = 255
    return frames


@pytest.mark.parametrize("moving", [12, 0])
def test_each_row_is_its_frames_spatial_video_and_the_key_row_moves_most(no_model, moving):
    result = generate_rows(Decoder(), temporal_video(moving), CONFIG)
    assert result.times == [0, 4, 8, 12, 16]
    assert result.key == result.times.index(moving)  # the only frame with something that moved
    assert result.frames.shape == (5, 3, 8, 8, 3)  # [times, views, H, W, 3]
    for m, t in enumerate(result.times):
        assert (result.frames[m, :, 1, 1, 0] == t).all()  # row m: frame times[m], ...
        assert result.frames[m, :, 0, 0, 0].tolist() == [0, 1, 2]  # ... its views in order


def test_the_rows_times_run_from_0_to_1():
    times = pick_times(49, 9)
    assert time_values(times, 49) == pytest.approx(np.linspace(0.0, 1.0, 9))  # the first frame 0, the last 1


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n_groups", [0, 1, 2, 5, 7])
def test_every_group_is_made_by_exactly_one_process(world, n_groups):
    groups = [[2 * g, 2 * g + 1] for g in range(n_groups)]
    shares = [Shard(rank, world).mine(groups) for rank in range(world)]
    assert sorted(g for share in shares for g in share) == groups  # each group once, none lost
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # shared evenly


def test_every_process_gathers_the_videos_of_all(monkeypatch):
    made = [{0: np.zeros(1), 2: np.ones(1)}, {1: np.full(1, 5.0)}]  # rank 0 made videos 0 and 2, rank 1 video 1

    def all_gather_object(parts, mine):
        assert mine is made[0]
        parts[:] = made

    monkeypatch.setattr(torch.distributed, "all_gather_object", all_gather_object)
    gathered = Shard(0, 2).gather(made[0])
    assert sorted(gathered) == [0, 1, 2] and gathered[1][0] == 5.0
    assert Shard().gather(made[0]) is made[0]  # one process: nothing to gather
