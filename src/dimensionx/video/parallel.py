"""CFG-parallel generation over several processes (``dimensionx video --gpus 2``), and the torchrun
launch that it, ``orbit``, ``scene3d`` and the sharded ``video --batch FILE --gpus N`` share.

With classifier-free guidance the transformer sees a batch of two per step: the
unconditional and the conditional branch. Here each process runs ONE branch and the two
predictions are all-gathered after every step, so every process holds the same latents
and steps the scheduler identically (the noise comes from the same seeded CPU generator).
It is added as a diffusers hook on the transformer; the pipeline is untouched.

diffusers' context parallelism (``enable_parallelism``) would split the sequence instead,
but CogVideoX declares no ``_cp_plan`` in diffusers 0.42, so it is not offered here.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys

import torch
import torch.distributed as dist
from diffusers.hooks import HookRegistry, ModelHook

from ..errors import DimensionXError
from .inputs import check_gpus

logger = logging.getLogger(__name__)

HOOK_NAME = "dimensionx_cfg_parallel"
_BATCHED = ("hidden_states", "encoder_hidden_states", "timestep", "timestep_cond")


class CFGParallelHook(ModelHook):
    """Runs batch element ``rank`` of a CFG batch and all-gathers the outputs."""

    def pre_forward(self, module, *args, **kwargs):
        world, rank = dist.get_world_size(), dist.get_rank()
        self._split = kwargs["hidden_states"].shape[0] == world
        if self._split:
            for name in _BATCHED:
                value = kwargs.get(name)
                if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == world:
                    kwargs[name] = value[rank : rank + 1]
        return args, kwargs

    def post_forward(self, module, output):
        if not self._split:
            return output
        sample = output[0] if isinstance(output, tuple) else output.sample  # [1, F, C, H, W]
        parts = [torch.empty_like(sample) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, sample.contiguous())
        gathered = torch.cat(parts, dim=0)  # [world, F, C, H, W], in rank order = CFG order
        if isinstance(output, tuple):
            return (gathered, *output[1:])
        output.sample = gathered
        return output


def enable_cfg_parallel(transformer: torch.nn.Module) -> None:
    HookRegistry.check_if_exists_or_initialize(transformer).register_hook(CFGParallelHook(), HOOK_NAME)


def disable_cfg_parallel(transformer: torch.nn.Module) -> None:
    """Each process makes whole videos again (``--batch`` over several processes), not one guidance branch of each."""
    HookRegistry.check_if_exists_or_initialize(transformer).remove_hook(HOOK_NAME)


def cfg_processes(transformer: torch.nn.Module) -> int:
    """Processes that share each video ``transformer`` makes: the world while the CFG hook is on, else 1."""
    registry = getattr(transformer, "_diffusers_hook", None)
    return dist.get_world_size() if registry is not None and registry.get_hook(HOOK_NAME) is not None else 1


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process(device: str) -> torch.device:
    """Joins the process group started by :func:`launch`; returns this process's device."""
    use_cuda = device != "cpu" and torch.cuda.is_available()
    check_visible_gpus(int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])), device)  # this machine's share
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        atexit.register(leave_process_group)
    if not use_cuda:
        return torch.device("cpu")
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(local)
    return local


def check_visible_gpus(processes: int, device: str) -> None:
    """One GPU per process of this machine: refuses more processes than CUDA GPUs are visible (CPU processes pass)."""
    if device != "cpu" and torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise DimensionXError(f"--gpus {processes} but only {torch.cuda.device_count()} CUDA GPU(s) are visible: lower --gpus "
                              "(or pass --device cpu for CPU processes)")


def leave_process_group() -> None:
    """Closes this process's share of the group, if it joined one; run at exit by every process that
    :func:`init_process` joined. A process that exits with its gloo group still open can abort in the
    group's destructor ("terminate called without an active exception"), failing the whole launch
    after its work is done."""
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


# torchrun (``python -m torch.distributed.run``) whose exit status is the first failed process's, without its
# traceback and failure table: that process has said what failed in one line already.
TORCHRUN = """import sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
try:
    main()
except ChildFailedError as failed:
    code = failed.get_first_failure()[1].exitcode
    sys.exit(code if code > 0 else 128 - code)
"""


def launch(argv: list[str], processes: int, batch: bool = False) -> int:
    """:func:`torchrun` for ``video``, ``orbit`` and ``scene3d``; ``batch``: the processes share a ``--batch``
    file's lines instead of each video's guidance branches (the rule is :func:`check_gpus`'s)."""
    check_gpus(processes, batch)
    return torchrun(argv, processes)


def torchrun(argv: list[str], processes: int) -> int:
    """Re-runs ``dimensionx`` with ``argv`` under torchrun (``--standalone``), ``processes`` processes on this machine,
    one GPU each; returns its exit status. Every command that shares its work over GPUs starts them here."""
    command = [sys.executable, "-c", TORCHRUN, "--standalone", f"--nproc_per_node={processes}", "-m", "dimensionx.cli", *argv]
    logger.info("launching %d processes: torchrun %s", processes, " ".join(command[3:]))
    return subprocess.run(command, check=False).returncode
