"""Densification: gsplat's ``DefaultStrategy``, its per-step statistics gathered without host syncs.

After every backward pass the strategy adds each visible Gaussian's image-plane gradient norm
and a count of 1 to its running statistics. gsplat selects the visible Gaussians of an
unpacked render with ``torch.where`` and boolean indexing before ``index_add_``: three host
syncs a step, each making the CPU wait until the GPU has finished the backward pass. Here the
same sums are masked dense adds that the GPU runs in order. Growing, pruning and opacity
resets are the parent's; ``cap`` (the 4D fit's ``max_gaussians``) only chooses which Gaussians
may grow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gsplat.strategy import DefaultStrategy


@dataclass
class SyncFreeDefaultStrategy(DefaultStrategy):
    """``cap``: at most this many Gaussians after growing (0: no limit). Each clone or split adds one
    Gaussian, so when more Gaussians qualify than there is room for, only those with the largest
    mean image-plane gradient grow: a fit whose count would keep growing (a long run, or a video
    that never agrees with itself) stays within a known time and memory per iteration."""

    cap: int = 0

    def _update_state(self, params, state, info, packed=False):
        if packed:  # gsplat's packed path already has the visible ids: nothing to gain
            return super()._update_state(params, state, info, packed=packed)
        grads = info[self.key_for_gradient].absgrad if self.absgrad else info[self.key_for_gradient].grad  # [C, N, 2]
        n = len(params["means"])
        for key in ("grad2d", "count") + (("radii",) if self.refine_scale2d_stop_iter > 0 else ()):
            if state[key] is None:
                state[key] = torch.zeros(n, device=grads.device)
        c = info["n_cameras"]
        to_screen = (info["width"] / 2.0 * c, info["height"] / 2.0 * c)  # px -> [-1, 1] screen units, as gsplat
        for grad, radii in zip(grads, info["radii"]):  # one camera at a time: [N, 2] each
            visible = (radii > 0).all(dim=-1)  # [N]
            norm = torch.hypot(grad[:, 0] * to_screen[0], grad[:, 1] * to_screen[1])  # [N]
            state["grad2d"] += norm * visible
            state["count"] += visible
            if self.refine_scale2d_stop_iter > 0:  # largest radius seen, as a fraction of the image size
                largest = radii.max(dim=-1).values * visible / float(max(info["width"], info["height"]))
                torch.maximum(state["radii"], largest, out=state["radii"])

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step):
        if self.cap > 0:  # the statistics of the Gaussians that may not grow are cleared: they are reset after this step anyway
            room = max(self.cap - len(params["means"]), 0)
            grads = state["grad2d"] / state["count"].clamp_min(1)
            candidates = grads > self.grow_grad2d
            if step < self.refine_scale2d_stop_iter:
                candidates |= state["radii"] > self.grow_scale2d
            if int(candidates.sum()) > room:
                keep = torch.zeros_like(candidates)
                keep[torch.where(candidates, grads, -1.0).topk(room).indices] = True
                state["grad2d"].mul_(keep)
                if state.get("radii") is not None:
                    state["radii"].mul_(keep)
        return super()._grow_gs(params, optimizers, state, step)
