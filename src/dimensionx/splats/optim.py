"""One Adam step for all splat parameters with few kernel launches and little Python.

gsplat's densification strategies need one ``torch.optim.Adam`` per parameter: they replace
each one's parameter and state tensors when Gaussians are cloned, split or pruned. Those
optimisers stay and keep the state; only their ``step()`` is replaced. ``Adam.step`` spends far
more CPU time (hooks, grouping by device, checks) than the GPU spends in its one fused kernel,
and a training step is CPU-bound, so the six calls of a step become one ``_foreach_add_`` of the
step counts and one call of the same fused kernel (``torch._fused_adam_``, what ``Adam(fused=True)``
runs) per parameter: the same arithmetic, in the same order, on the same state.
"""

from __future__ import annotations

import torch


class SplatAdam:
    """``step()`` of every ``torch.optim.Adam`` in ``optimizers`` (one parameter each), then their grads cleared."""

    def __init__(self, optimizers: dict[str, torch.optim.Adam]):
        for name, optimizer in optimizers.items():
            groups = optimizer.param_groups
            if len(groups) != 1 or len(groups[0]["params"]) != 1 or groups[0]["weight_decay"] or groups[0]["amsgrad"]:
                raise ValueError(f"optimizer {name!r}: SplatAdam takes plain Adam over one parameter")
        self.optimizers = optimizers

    @torch.no_grad()
    def step(self) -> None:
        todo = []
        for optimizer in self.optimizers.values():
            group = optimizer.param_groups[0]
            param = group["params"][0]
            if param.grad is None:
                continue
            state = optimizer.state[param]
            if not state:  # the layout Adam(fused=True) creates, so the strategies and Adam read it alike
                state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            todo.append((group, param, state))
        if not todo:
            return
        torch._foreach_add_([state["step"] for _, _, state in todo], 1.0)
        for group, param, state in todo:
            beta1, beta2 = group["betas"]
            torch._fused_adam_([param], [param.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
                               [state["step"]], lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=group["eps"], amsgrad=False, maximize=group["maximize"])
            param.grad = None
