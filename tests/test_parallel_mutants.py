"""CFG-parallel's hook and launch, in one process: ``torch.distributed`` is replaced by a two-rank stand-in,
so each rule (which inputs are split, in which order the branches come back, when nothing is split, what
torchrun is asked to run) is checked against what CFG parallelism means, without spawning processes."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from dimensionx.errors import DimensionXError
from dimensionx.video import parallel
from dimensionx.video.parallel import CFGParallelHook


class TwoRanks:
    """``torch.distributed`` as seen by rank ``rank`` of 2; all_gather fills the other rank's part with ``other``."""

    def __init__(self, rank: int, other: torch.Tensor | None = None, initialized: bool = True):
        self.rank, self.other, self.initialized, self.gathers, self.destroyed = rank, other, initialized, 0, 0

    def get_world_size(self):
        return 2

    def get_rank(self):
        return self.rank

    def is_initialized(self):
        return self.initialized

    def destroy_process_group(self):
        self.destroyed += 1

    def all_gather(self, parts, tensor):
        self.gathers += 1
        for k, part in enumerate(parts):
            part.copy_(tensor if k == self.rank else self.other)


@pytest.mark.parametrize("rank", [0, 1])
def test_each_rank_keeps_its_own_branch_of_every_batched_input(monkeypatch, rank):
    monkeypatch.setattr(parallel, "dist", TwoRanks(rank))
    hidden, text = torch.arange(12.0).view(2, 6), torch.arange(10.0).view(2, 5)  # [uncond, cond]
    rotary = (torch.ones(2, 4), torch.zeros(2, 4))  # per token, not per branch: left as is
    kwargs = dict(hidden_states=hidden, encoder_hidden_states=text, timestep=torch.tensor([7, 7]), timestep_cond=None,
                  image_rotary_emb=rotary, ofs=torch.tensor(3.0))
    _, out = CFGParallelHook().pre_forward(None, **kwargs)
    assert torch.equal(out["hidden_states"], hidden[rank : rank + 1])
    assert torch.equal(out["encoder_hidden_states"], text[rank : rank + 1])
    assert torch.equal(out["timestep"], torch.tensor([7]))
    assert out["timestep_cond"] is None and out["image_rotary_emb"] is rotary and torch.equal(out["ofs"], torch.tensor(3.0))


def test_a_batched_input_of_another_length_is_not_cut(monkeypatch):
    monkeypatch.setattr(parallel, "dist", TwoRanks(1))
    odd = torch.arange(3.0)
    _, out = CFGParallelHook().pre_forward(None, hidden_states=torch.zeros(2, 4), encoder_hidden_states=torch.zeros(2, 1),
                                           timestep=torch.tensor(5), timestep_cond=odd)
    assert out["timestep_cond"] is odd and torch.equal(out["timestep"], torch.tensor(5))


@pytest.mark.parametrize("rank", [0, 1])
def test_the_branches_come_back_in_cfg_order_whatever_the_rank(monkeypatch, rank):
    mine, other = torch.full((1, 3), float(rank)), torch.full((1, 3), float(1 - rank))
    fake = TwoRanks(rank, other)
    monkeypatch.setattr(parallel, "dist", fake)
    hook = CFGParallelHook()
    hook.pre_forward(None, hidden_states=torch.zeros(2, 3))
    gathered, extra = hook.post_forward(None, (mine, "rest"))
    assert torch.equal(gathered, torch.tensor([[0.0] * 3, [1.0] * 3])) and extra == "rest"  # [uncond, cond]
    hook.pre_forward(None, hidden_states=torch.zeros(2, 3))
    output = hook.post_forward(None, SimpleNamespace(sample=mine))
    assert torch.equal(output.sample, torch.tensor([[0.0] * 3, [1.0] * 3])) and fake.gathers == 2


def test_a_batch_without_guidance_is_run_whole_and_not_gathered(monkeypatch):
    """guidance 1 (no CFG): batch 1 on each process; nothing split, nothing gathered."""
    fake = TwoRanks(1)
    monkeypatch.setattr(parallel, "dist", fake)
    hook = CFGParallelHook()
    hidden = torch.ones(1, 4)
    _, kwargs = hook.pre_forward(None, hidden_states=hidden, timestep=torch.tensor([3]))
    assert kwargs["hidden_states"] is hidden
    output = (torch.ones(1, 4),)
    assert hook.post_forward(None, output) is output and fake.gathers == 0


@pytest.mark.parametrize("world, distributed", [(None, False), ("1", False), ("2", True)])
def test_a_run_is_distributed_when_torchrun_started_more_than_one_process(monkeypatch, world, distributed):
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    assert parallel.is_distributed() is distributed


def test_only_rank_zero_or_a_single_process_is_main(monkeypatch):
    monkeypatch.setattr(parallel, "dist", TwoRanks(0, initialized=False))
    assert parallel.is_main_process()
    monkeypatch.setattr(parallel, "dist", TwoRanks(0))
    assert parallel.is_main_process()
    monkeypatch.setattr(parallel, "dist", TwoRanks(1))
    assert not parallel.is_main_process()


def test_leaving_closes_a_joined_group_only(monkeypatch):
    joined, alone = TwoRanks(0), TwoRanks(0, initialized=False)
    monkeypatch.setattr(parallel, "dist", joined)
    parallel.leave_process_group()
    monkeypatch.setattr(parallel, "dist", alone)
    parallel.leave_process_group()
    assert (joined.destroyed, alone.destroyed) == (1, 0)


def test_too_few_gpus_are_refused_before_joining(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DimensionXError, match=r"^--gpus 2 but only 1 CUDA GPU\(s\) are visible: lower --gpus \(or pass --device cpu for CPU processes\)$"):
        parallel.init_process("cuda")
    monkeypatch.setattr(parallel, "dist", TwoRanks(0))  # joined already: nothing to start
    assert parallel.init_process("cpu") == torch.device("cpu")  # --device cpu: the GPUs are not counted


def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(parallel, "dist", TwoRanks(0))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert parallel.init_process("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert parallel.init_process("auto") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 0), torch.device("cuda", 1)]


def test_launch_runs_the_same_command_under_torchrun_with_one_process_per_gpu(monkeypatch):
    seen = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: seen.append(command) or SimpleNamespace(returncode=3))
    assert parallel.launch(["video", "photo.png", "--gpus", "2"], 2) == 3
    (command,) = seen
    assert command[:2] == [sys.executable, "-c"] and "from torch.distributed.run import main" in command[2]
    assert command[3:] == ["--standalone", "--nproc_per_node=2", "-m", "dimensionx.cli", "video", "photo.png", "--gpus", "2"]
    with pytest.raises(DimensionXError, match="--gpus 3: CFG-parallel splits the two guidance branches"):
        parallel.launch(["video"], 3)
    assert len(seen) == 1
